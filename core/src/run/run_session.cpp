// The plugin objects of a config in their roles (run_session.hpp).
#include "metareward/core/run/run_session.hpp"

#include "metareward/core/run/distributed_run.hpp"

#include <algorithm>
#include <cmath>
#include <thread>

#include <spdlog/spdlog.h>

#include "metareward/sdk/error.hpp"

namespace mr::core {

namespace fs = std::filesystem;

std::uint64_t stage_seed(std::uint64_t run_seed, int iteration, int stage) {
  return sdk::derive_seed(sdk::derive_seed(run_seed, 0x6974657200000000ULL + iteration),
                          static_cast<std::uint64_t>(stage));
}

RunSession::RunSession(const PluginRegistry& registry,
                       const ResolvedConfig& config,
                       fs::path run_dir)
    : registry_(registry), config_(config), run_dir_(std::move(run_dir)) {
  const sdk::Config& run = config.section("run");
  seed_ = static_cast<std::uint64_t>(run.get_int("seed"));
  const auto threads = run.get_int("threads");
  threads_ = threads > 0 ? static_cast<int>(threads)
                         : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const sdk::Config& roles = config.section("roles");
  actor_ = roles.get_string("actor");
  judge_ = roles.get_string("judge");
  meta_judge_ = roles.get_string("meta_judge");
  train_ = roles.get_string("train");
  if (train_.empty()) train_ = actor_;
}

template <class Interface>
std::shared_ptr<Interface> RunSession::make(const std::string& section) {
  const std::string& name = config_.plugin_of.at(section);
  const RegisteredPlugin* plugin = registry_.find(name);
  if (plugin == nullptr)
    throw sdk::PluginError("plugin '" + name + "' for [" + section + "] is not loaded");
  auto object =
      create_configured_plugin<Interface>(registry_, config_, section, seed_, run_dir_, threads_);
  return guard_plugin(std::move(object), *plugin, context_);
}

void RunSession::create_text_plugins(bool with_optimizer) {
  if (!rubric_) rubric_ = make<sdk::JudgeRubric>("judge_rubric");
  if (!meta_) meta_ = make<sdk::MetaJudgeStrategy>("meta_judge");
  if (!pair_policy_) pair_policy_ = make<sdk::PairSelectionPolicy>("pair_selection");
  if (with_optimizer && !optimizer_) optimizer_ = make<sdk::Optimizer>("optimizer");
  if (with_optimizer && !seed_optimizer_ && has_seed_stage())
    seed_optimizer_ = make<sdk::Optimizer>(kSeedStageTable);
  if (evaluators_.empty())
    for (const auto& [section, plugin] : config_.plugin_of)
      if (section == "evaluation" || section.rfind("evaluation.", 0) == 0)
        evaluators_.emplace_back(section, make<sdk::Evaluator>(section));
}

void RunSession::create_models() {
  for (const std::string& name : {actor_, judge_, meta_judge_}) create_model(name);
}

void RunSession::create_model(const std::string& name) {
  if (models_.count(name)) return;
  const std::string section = "models." + name;
  if (!config_.plugin_of.count(section))
    throw sdk::ConfigError(config_.file.string() + ": [roles] names model '" + name +
                           "' but there is no [" + section + "] table");
  spdlog::info("loading model '{}' ([{}], plugin '{}')", name, section,
               config_.plugin_of.at(section));
  std::shared_ptr<sdk::ModelBackend> model = make<sdk::ModelBackend>(section);
  if (coordinator_ != nullptr) {
    if (model->generates_remotely())
      spdlog::info("model '{}' generates remotely: rank 0 alone sends it requests", name);
    else
      model = shard_model(std::move(model), name, *coordinator_);
  }
  models_[name] = std::move(model);
}

void RunSession::share_threads(int local_ranks) {
  if (local_ranks > 1) threads_ = std::max(1, threads_ / local_ranks);
}

std::int64_t RunSession::check_replicas_every_steps() const {
  return config_.section("distributed").get_int("check_replicas_every_steps");
}

bool RunSession::separate_train_model() const {
  return train_ != actor_ && train_ != judge_ && train_ != meta_judge_;
}

sdk::ModelBackend& RunSession::train_model(const fs::path& checkpoint) {
  if (!separate_train_model()) return model(train_);
  if (!train_model_) {
    const std::string section = "models." + train_;
    spdlog::info("loading model '{}' to train ([{}], plugin '{}')", train_, section,
                 config_.plugin_of.at(section));
    train_model_ = make<sdk::ModelBackend>(section);
    const sdk::Config& c = config_.section(section);
    const fs::path configured = c.has("path") ? fs::path(c.get_string("path")) : fs::path();
    if (fs::weakly_canonical(configured) != fs::weakly_canonical(checkpoint)) {
      spdlog::info("model '{}' <- {}", train_, checkpoint.string());
      train_model_->reload(checkpoint);
    }
  }
  return *train_model_;
}

void RunSession::release_train_model() {
  train_model_.reset();
}

std::vector<std::string> RunSession::policy_models() const {
  std::vector<std::string> out{actor_};
  for (const std::string& name : config_.section("roles").get_string_list("policy_models"))
    if (std::find(out.begin(), out.end(), name) == out.end() && models_.count(name))
      out.push_back(name);
  return out;
}

bool RunSession::has_seed_stage() const {
  return config_.plugin_of.count(kSeedStageTable) > 0;
}

sdk::ModelBackend& RunSession::model(const std::string& name) const {
  auto it = models_.find(name);
  if (it == models_.end())
    throw sdk::PluginError("model '" + name + "' is not loaded (RunSession::create_models)");
  return *it->second;
}

sdk::IterationInfo RunSession::info(int t, StageCode stage) const {
  return {t, config_.iterations, stage_seed(seed_, t, static_cast<int>(stage))};
}

sdk::ModelBackend& RunSession::evaluation_model(const std::string& name) {
  if (auto it = models_.find(name); it != models_.end()) return *it->second;
  if (auto it = evaluation_models_.find(name); it != evaluation_models_.end()) return *it->second;
  const std::string section = "models." + name;
  if (!config_.plugin_of.count(section))
    throw sdk::ConfigError(config_.file.string() + ": [evaluation] asks for model '" + name +
                           "' but there is no [" + section + "] table");
  spdlog::info("loading model '{}' for the evaluation ([{}], plugin '{}')", name, section,
               config_.plugin_of.at(section));
  return *(evaluation_models_[name] = make<sdk::ModelBackend>(section));
}

std::map<std::string, double> RunSession::evaluate(int t,
                                                   const fs::path& out_dir,
                                                   const fs::path& cache_dir,
                                                   std::function<bool()> stop_requested) {
  if (evaluators_.empty())
    throw sdk::ConfigError("no [evaluation] table: nothing evaluates the models");
  std::map<std::string, double> metrics;
  for (const auto& [section, evaluator] : evaluators_) {
    // [evaluation.NAME]: its own rows directory and metric names.
    const std::string name = section == "evaluation" ? "" : section.substr(11);
    const fs::path rows_dir = name.empty() ? out_dir : out_dir / name;
    for (const fs::path& dir : {rows_dir, cache_dir}) {
      std::error_code ec;
      fs::create_directories(dir, ec);
      if (ec)
        throw sdk::DataError("cannot create the evaluation directory '" + dir.string() +
                             "': " + ec.message());
    }
    sdk::EvaluationRequest request;
    request.info = info(t, StageCode::Evaluation);
    request.actor = &actor();
    request.judge = &judge();
    request.meta_judge = &meta_judge();
    request.rubric = rubric_.get();
    request.meta = meta_.get();
    request.output_dir = rows_dir;
    request.cache_dir = cache_dir;
    request.model = [this](const std::string& model_name) { return &evaluation_model(model_name); };
    request.stop_requested = stop_requested ? stop_requested : [] { return false; };
    set_stage((name.empty() ? std::string("evaluation") : "evaluation '" + name + "'") +
              ", iteration " + std::to_string(t));
    const std::string where = "evaluator '" + config_.plugin_of.at(section) + "'" +
                              (name.empty() ? "" : " ([" + section + "])") + " at iteration " +
                              std::to_string(t);
    for (auto& [key, value] : evaluate_checked(*evaluator, request, where))
      metrics.emplace(name.empty() ? key : name + "/" + key, value);
  }
  return metrics;
}

std::map<std::string, double> evaluate_checked(sdk::Evaluator& evaluator,
                                               const sdk::EvaluationRequest& request,
                                               const std::string& where) {
  sdk::EvaluationResult result;
  try {
    result = evaluator.evaluate(request);
  } catch (const sdk::Error&) {
    throw;  // Already named by the guard (or the host's own error).
  } catch (const std::exception& e) {
    throw sdk::PluginError(where + " failed: " + e.what());
  }
  for (const auto& [key, value] : result.metrics) {
    if (key.empty()) throw sdk::PluginError(where + " reported a metric with an empty name");
    if (!std::isfinite(value))
      throw sdk::PluginError(where + " reported a non-finite value for '" + key + "' (" +
                             std::to_string(value) + "); values must be finite");
  }
  return result.metrics;
}

}  // namespace mr::core
