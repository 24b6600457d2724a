// `metareward eval CONFIG [--model DIR] [--set K=V]... [--out DIR] [--iteration N]`: runs a run
// config's [evaluation] plugin on its models (in their roles, with its rubric and meta-judge
// strategy) without training, the way the loop evaluates after an iteration.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <thread>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "metareward/core/artifact_io.hpp"
#include "metareward/core/logging.hpp"
#include "metareward/core/run_loop.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::core::cli {

namespace po = boost::program_options;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

/// The evaluation stage's code in stage_seed(): the loop and `eval` derive the same seed.
constexpr int kEvaluationStage = 7;

/// `text` as a TOML basic string, so that any path survives the override parser.
std::string toml_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

/// The model named by roles.actor once `overrides` are applied (the schema default when unset):
/// the model that --model replaces.
std::string actor_model_of(const std::string& file, const std::vector<std::string>& overrides) {
  ConfigDocument doc = parse_config_file(file);
  apply_overrides(doc, overrides);
  if (auto roles = doc.root.find("roles"); roles != doc.root.end() && roles->second.is_table()) {
    const auto& table = roles->second.as_table();
    if (auto actor = table.find("actor"); actor != table.end() && actor->second.is_string())
      return actor->second.as_string();
  }
  for (const auto& [section, schema] : host_sections())
    if (section == "roles")
      for (const auto& spec : schema)
        if (spec.key == "actor") return spec.default_value.as_string();
  return "policy";
}

/// The plugin objects one evaluation needs, each with its own host context.
class EvalSession {
 public:
  EvalSession(const PluginRegistry& registry, const ResolvedConfig& config)
      : registry_(registry), config_(config) {
    const sdk::Config& run = config.section("run");
    seed_ = static_cast<std::uint64_t>(run.get_int("seed"));
    const auto threads = run.get_int("threads");
    threads_ = threads > 0 ? static_cast<int>(threads)
                           : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    const sdk::Config& roles = config.section("roles");
    actor_ = roles.get_string("actor");
    judge_ = roles.get_string("judge");
    meta_judge_ = roles.get_string("meta_judge");
    for (const std::string& name : {actor_, judge_, meta_judge_}) {
      if (models_.count(name)) continue;
      spdlog::info("loading model '{}' ([models.{}], plugin '{}')", name, name,
                   config.plugin_of.at("models." + name));
      models_[name] = make<sdk::ModelBackend>("models." + name);
    }
    rubric_ = make<sdk::JudgeRubric>("judge_rubric");
    meta_ = make<sdk::MetaJudgeStrategy>("meta_judge");
    evaluator_ = make<sdk::Evaluator>("evaluation");
  }

  /// Evaluates with iteration `iteration`'s seed into `out_dir`; the metrics as a JSON object.
  json evaluate(int iteration, const fs::path& out_dir) {
    const std::string where = "evaluator '" + config_.plugin_of.at("evaluation") + "' (iteration " +
                              std::to_string(iteration) + ")";
    sdk::EvaluationRequest request;
    request.info = {iteration, config_.iterations, stage_seed(seed_, iteration, kEvaluationStage)};
    request.actor = models_.at(actor_).get();
    request.judge = models_.at(judge_).get();
    request.meta_judge = models_.at(meta_judge_).get();
    request.rubric = rubric_.get();
    request.meta = meta_.get();
    request.output_dir = out_dir;
    request.stop_requested = [] { return false; };
    json metrics = json::object();
    for (const auto& [key, value] : evaluate_checked(*evaluator_, request, where))
      metrics[key] = value;
    return metrics;
  }

 private:
  template <class Interface>
  std::shared_ptr<Interface> make(const std::string& section) {
    return create_configured_plugin<Interface>(registry_, config_, section, seed_, fs::path(),
                                               threads_);
  }

  const PluginRegistry& registry_;
  const ResolvedConfig& config_;
  std::uint64_t seed_ = 0;
  int threads_ = 1;
  std::string actor_, judge_, meta_judge_;
  std::map<std::string, std::shared_ptr<sdk::ModelBackend>> models_;
  std::shared_ptr<sdk::JudgeRubric> rubric_;
  std::shared_ptr<sdk::MetaJudgeStrategy> meta_;
  std::shared_ptr<sdk::Evaluator> evaluator_;
};

}  // namespace

int eval_command(const GlobalOptions& globals, const std::vector<std::string>& args) {
  po::options_description options("Options");
  options.add_options()("file", po::value<std::string>()->value_name("FILE"), "Run config (TOML).")(
      "model", po::value<std::string>()->value_name("DIR"),
      "Checkpoint of the actor's model (overrides models.<roles.actor>.path), e.g. a run's "
      "iter_2/model.")("set",
                       po::value<std::vector<std::string>>()->composing()->value_name("KEY=VALUE"),
                       "Override a config value, e.g. --set evaluation.prompts=100 (repeatable).")(
      "out", po::value<std::string>()->value_name("DIR"),
      "Output directory for metrics.json and the evaluator's rows (default: ./eval).")(
      "iteration", po::value<int>()->default_value(0)->value_name("N"),
      "Iteration the models stand for (0 = seed models); selects the evaluation seed.");
  po::positional_options_description positional;
  positional.add("file", 1);
  po::variables_map vm;
  if (!parse_command_args("eval",
                          "FILE [--model DIR] [--set KEY=VALUE]... [--out DIR] [--iteration N]",
                          options, positional, args, vm))
    return 0;
  if (!vm.count("file")) throw UsageError("eval: missing the config FILE argument");
  const int iteration = vm["iteration"].as<int>();
  if (iteration < 0) throw UsageError("eval: --iteration must be >= 0");
  const std::string file = vm["file"].as<std::string>();

  std::vector<std::string> overrides =
      vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
  if (vm.count("model"))
    overrides.push_back("models." + actor_model_of(file, overrides) +
                        ".path=" + toml_string(vm["model"].as<std::string>()));

  PluginRegistry registry;
  const ResolvedConfig resolved = load_run_config(registry, globals, file, overrides);
  if (!resolved.plugin_of.count("evaluation")) {
    const auto names = registry.names(sdk::PluginKind::Evaluator);
    std::string available;
    for (const auto& n : names) available += (available.empty() ? "" : ", ") + n;
    throw sdk::ConfigError(file +
                           ": no [evaluation] table; `metareward eval` needs one whose "
                           "'type' names an evaluator plugin (available: " +
                           (available.empty() ? std::string("none loaded") : available) + ")");
  }

  const fs::path out_dir = vm.count("out") ? fs::path(vm["out"].as<std::string>()) : "eval";
  std::error_code ec;
  // Never write into a directory that holds something else (e.g. a mistyped --out).
  if (fs::exists(out_dir, ec) &&
      (!fs::is_directory(out_dir, ec) ||
       (!fs::is_empty(out_dir, ec) && !fs::exists(out_dir / "metrics.json", ec))))
    throw sdk::ConfigError("eval: output directory '" + out_dir.string() +
                           "' exists and holds no evaluation (no metrics.json); choose another "
                           "with --out DIR");
  fs::create_directories(out_dir, ec);
  if (ec) throw sdk::DataError("eval: cannot create '" + out_dir.string() + "': " + ec.message());

  EvalSession session(registry, resolved);
  spdlog::info("evaluating (iteration {}) into {}", iteration, out_dir.string());
  const json document = {{"iteration", iteration},
                         {"evaluation", session.evaluate(iteration, out_dir)}};
  write_file_atomic(out_dir / "metrics.json", document.dump(2) + "\n");
  std::cout << document.dump(2) << "\n";
  return 0;
}

}  // namespace mr::core::cli
