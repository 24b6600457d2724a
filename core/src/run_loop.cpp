// The Meta-Rewarding loop: stages of one iteration, their artifacts, resume and the summaries.
#include "metareward/core/run_loop.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "metareward/core/artifact_io.hpp"
#include "metareward/core/logging.hpp"
#include "metareward/core/prompt_pool.hpp"
#include "metareward/core/sha256.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/sdk/evaluator.hpp"
#include "metareward/sdk/judge_rubric.hpp"
#include "metareward/sdk/meta_judge.hpp"
#include "metareward/sdk/model_backend.hpp"
#include "metareward/sdk/optimizer.hpp"
#include "metareward/sdk/pair_selection.hpp"
#include "metareward/sdk/version.hpp"

#ifndef MR_SOURCE_DIR_FOR_GIT
#define MR_SOURCE_DIR_FOR_GIT ""
#endif

namespace mr::core {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

enum Stage : int {
  kActorStage = 1,
  kJudgeStage = 2,
  kActorPairStage = 3,
  kMetaPlanStage = 4,
  kMetaGenerationStage = 5,
  kTrainStage = 6,
  kEvaluationStage = 7,
};

std::uint64_t stage_seed(std::uint64_t run_seed, int iteration, int stage) {
  return sdk::derive_seed(sdk::derive_seed(run_seed, 0x6974657200000000ULL + iteration),
                          static_cast<std::uint64_t>(stage));
}

namespace {

// ---------------------------------------------------------------------------------------------
// Small helpers

json conversation_to_json(const sdk::Conversation& c) {
  json a = json::array();
  for (const auto& m : c) a.push_back({{"role", m.role}, {"content", m.content}});
  return a;
}

sdk::Conversation conversation_from_json(const json& a) {
  sdk::Conversation c;
  for (const auto& m : a)
    c.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>()});
  return c;
}

std::int64_t utf8_length(const std::string& s) {
  std::int64_t n = 0;
  for (unsigned char ch : s)
    if ((ch & 0xC0) != 0x80) ++n;
  return n;
}

const char* finish_name(sdk::FinishReason r) {
  switch (r) {
    case sdk::FinishReason::Stop:
      return "stop";
    case sdk::FinishReason::Length:
      return "length";
    case sdk::FinishReason::Error:
      return "error";
  }
  return "error";
}

json opt_number(const std::optional<double>& v) {
  return v ? json(*v) : json(nullptr);
}

double mean(const std::vector<double>& v) {
  if (v.empty()) return 0.0;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size()));
}

/// Parses one line of an artifact the run itself wrote; a bad line means the directory was
/// edited or corrupted, which resuming cannot repair silently.
json parse_artifact_line(const std::string& line, const fs::path& file, std::size_t index) {
  try {
    return json::parse(line);
  } catch (const json::exception& e) {
    throw sdk::DataError(file.string() + ":" + std::to_string(index + 1) + ": not valid JSON (" +
                         e.what() +
                         "); the run directory is damaged: delete this file to redo its stage");
  }
}

std::vector<json> read_artifact(const fs::path& file) {
  std::vector<json> rows;
  const auto lines = read_complete_lines(file);
  rows.reserve(lines.size());
  for (std::size_t i = 0; i < lines.size(); ++i)
    rows.push_back(parse_artifact_line(lines[i], file, i));
  return rows;
}

std::string pair_role_name(sdk::PairRole r) {
  return r == sdk::PairRole::Actor ? "actor" : "judge";
}

std::string pair_json(const sdk::PreferencePair& p) {
  json meta = json::object();
  for (const auto& [k, v] : p.meta) meta[k] = v;
  json row = {{"id", p.id},
              {"role", pair_role_name(p.role)},
              {"prompt", conversation_to_json(p.prompt)},
              {"chosen", json::array({{{"role", "assistant"}, {"content", p.chosen}}})},
              {"rejected", json::array({{{"role", "assistant"}, {"content", p.rejected}}})},
              {"prompt_id", p.prompt_id},
              {"chosen_id", p.chosen_id},
              {"rejected_id", p.rejected_id},
              {"chosen_score", opt_number(p.chosen_score)},
              {"rejected_score", opt_number(p.rejected_score)},
              {"meta", meta}};
  return row.dump();
}

std::string git_revision() {
  const std::string dir = MR_SOURCE_DIR_FOR_GIT;
  if (dir.empty() || !fs::exists(fs::path(dir) / ".git")) return "unknown";
  // Read .git/HEAD directly: no child process, works without git installed.
  try {
    std::string head = read_file_text(fs::path(dir) / ".git" / "HEAD");
    while (!head.empty() && (head.back() == '\n' || head.back() == '\r')) head.pop_back();
    if (head.rfind("ref: ", 0) != 0) return head;
    const std::string ref = head.substr(5);
    const fs::path loose = fs::path(dir) / ".git" / ref;
    if (fs::exists(loose)) {
      std::string rev = read_file_text(loose);
      while (!rev.empty() && (rev.back() == '\n' || rev.back() == '\r')) rev.pop_back();
      return rev;
    }
    const fs::path packed = fs::path(dir) / ".git" / "packed-refs";
    if (fs::exists(packed))
      for (const auto& line : read_complete_lines(packed))
        if (line.size() > 41 && line.compare(41, std::string::npos, ref) == 0)
          return line.substr(0, 40);
  } catch (const std::exception&) {
  }
  return "unknown";
}

std::string duration(double seconds) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(seconds < 10 ? 2 : 1) << seconds << "s";
  return s.str();
}

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

// ---------------------------------------------------------------------------------------------
// The run

/// Config of one generation role for one iteration.
struct RoleSampling {
  sdk::SamplingParams sampling;
  int samples = 1;
  std::int64_t batch_size = 1;
};

class Runner {
 public:
  Runner(const PluginRegistry& registry,
         const ResolvedConfig& config,
         const RunLoopOptions& options)
      : registry_(registry), config_(config), options_(options) {
    const sdk::Config& run = config.section("run");
    seed_ = static_cast<std::uint64_t>(run.get_int("seed"));
    iterations_ = config.iterations;
    const auto threads = run.get_int("threads");
    threads_ = threads > 0 ? static_cast<int>(threads)
                           : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    run_dir_ = fs::path(run.get_string("output_dir"));
    const sdk::Config& roles = config.section("roles");
    actor_model_ = roles.get_string("actor");
    judge_model_ = roles.get_string("judge");
    meta_model_ = roles.get_string("meta_judge");
  }

  RunLoopResult run() {
    // Prompts first: a missing or empty prompt file must not leave a run directory behind.
    try {
      pool_.emplace(PromptPool::load(PromptPoolOptions::from_config(config_)));
    } catch (const sdk::DataError& e) {
      throw sdk::DataError(config_.file.string() + ": [prompts] " + e.what());
    }
    prepare_directory();
    if (!fs::exists(run_dir_ / "manifest.json")) write_manifest_skeleton();

    int first = 1;
    while (first <= iterations_ && fs::exists(iter_dir(first) / "metrics.json")) ++first;
    RunLoopResult result{run_dir_, iterations_, 0};
    if (first > iterations_) {
      spdlog::info("run {}: all {} iterations are complete; nothing to do", run_dir_.string(),
                   iterations_);
      return result;
    }
    if (first > 1)
      spdlog::info("run {}: iterations 1-{} complete, continuing with iteration {}",
                   run_dir_.string(), first - 1, first);

    create_plugins();
    // The seed models are evaluated before any checkpoint is loaded, also when resuming.
    if (evaluator_) evaluate_seed_models();
    if (first > 1) reload_policy(iter_dir(first - 1) / "model");
    write_manifest();

    for (int t = first; t <= iterations_; ++t) {
      run_iteration(t);
      ++result.ran_iterations;
      // With an evaluator, run_iteration() already reloaded M_t to evaluate it.
      if (t < iterations_ && !evaluator_) reload_policy(iter_dir(t) / "model");
    }
    spdlog::info("run {}: complete ({} iterations). Report: metareward report {}",
                 run_dir_.string(), iterations_, run_dir_.string());
    return result;
  }

 private:
  fs::path iter_dir(int t) const { return run_dir_ / ("iter_" + std::to_string(t)); }

  bool stop_requested() const { return options_.stop_requested && options_.stop_requested(); }

  void check_stop(const std::string& where) const {
    if (stop_requested()) throw sdk::Interrupted("stopped " + where);
  }

  // ---- directory, config record, manifest ----------------------------------------------------

  void prepare_directory() {
    const fs::path recorded = run_dir_ / "config.resolved.toml";
    const std::string current = config_.to_toml();
    std::error_code ec;
    const bool exists = fs::exists(run_dir_, ec);
    const bool has_run = exists && fs::exists(recorded, ec);
    if (exists && !fs::is_directory(run_dir_, ec))
      throw sdk::ConfigError("run.output_dir '" + run_dir_.string() + "' is not a directory");
    if (has_run && !options_.resume)
      throw sdk::ConfigError("run directory '" + run_dir_.string() +
                             "' already holds a run; continue it with --resume, or choose "
                             "another directory with --out DIR");
    if (exists && !has_run && !fs::is_empty(run_dir_, ec))
      throw sdk::ConfigError("run.output_dir '" + run_dir_.string() +
                             "' exists, is not empty and holds no run (no config.resolved.toml); "
                             "choose another directory with --out DIR");
    if (has_run) {
      const std::string before = read_file_text(recorded);
      const std::string diff = config_diff(before, current);
      if (!diff.empty()) {
        if (!options_.force)
          throw sdk::ConfigError(
              "the config differs from the one this run was started with (" + recorded.string() +
              "):\n" + diff +
              "Resuming with another config would mix two experiments in one record. Undo the "
              "change, start a new run with --out DIR, or pass --force to resume anyway.");
        spdlog::warn("resuming with a changed config (--force):\n{}", diff);
        write_file_atomic(run_dir_ / ("config.resolved.toml.before_force"), before);
        write_file_atomic(recorded, current);
      }
    } else {
      fs::create_directories(run_dir_, ec);
      if (ec)
        throw sdk::DataError("cannot create run directory '" + run_dir_.string() +
                             "': " + ec.message());
      write_file_atomic(recorded, current);
    }
    add_log_file(run_dir_ / "run.log");
    spdlog::info("run {}: {} ({} iterations, seed {}, {} threads)", run_dir_.string(),
                 has_run ? "resuming" : "starting", iterations_, seed_, threads_);
  }

  void write_manifest_skeleton() {
    // Written first so that even a run that fails while loading models has a manifest.
    manifest_ = base_manifest();
    write_file_atomic(run_dir_ / "manifest.json", manifest_.dump(2) + "\n");
  }

  json base_manifest() const {
    json m;
    m["metareward_version"] = MR_SDK_VERSION;
    m["git_revision"] = git_revision();
    m["plugin_api_version"] = MR_PLUGIN_API_VERSION;
    m["build_fingerprint"] = host_fingerprint();
    m["config_file"] = config_.file.string();
    m["config_sha256"] = sha256_hex(config_.to_toml());
    m["seed"] = seed_;
    m["iterations"] = iterations_;
    m["threads"] = threads_;
    m["roles"] = {{"actor", actor_model_}, {"judge", judge_model_}, {"meta_judge", meta_model_}};
    const PromptPoolStats& s = pool_->stats();
    json files = json::array();
    for (const auto& f : pool_->options().files) files.push_back(f.string());
    json dropped = json::object();
    for (const auto& [k, v] : s.bad_rows) dropped[k] = v;
    m["prompt_pool"] = {{"files", files},
                        {"rows", s.rows},
                        {"accepted", s.accepted},
                        {"pool", s.pool},
                        {"duplicates", s.duplicates},
                        {"dropped", dropped}};
    json plugins = json::array();
    std::set<std::string> names;
    for (const auto& [path, name] : config_.plugin_of) names.insert(name);
    for (const auto& name : names) {
      const RegisteredPlugin* p = registry_.find(name);
      if (p == nullptr) continue;
      json e = {{"name", name},
                {"kind", sdk::plugin_kind_name(p->descriptor.kind())},
                {"version", p->descriptor.version},
                {"library", p->library_path.string()}};
      e["sha256"] =
          p->library_path.empty() ? json(nullptr) : json(sha256_file_hex(p->library_path));
      plugins.push_back(e);
    }
    m["plugins"] = plugins;
    return m;
  }

  void write_manifest() {
    // The first invocation's manifest is the record; a resume only fills in what it lacked.
    const fs::path file = run_dir_ / "manifest.json";
    json m = base_manifest();
    if (fs::exists(file)) {
      try {
        m = json::parse(read_file_text(file));
      } catch (const json::exception&) {
        spdlog::warn("{} is not valid JSON; rewriting it", file.string());
      }
    }
    if (!m.contains("models") || m["models"].empty()) {
      json models = json::object();
      for (const auto& [name, model] : models_) {
        const sdk::ModelInfo info = model->info();
        models[name] = {{"architecture", info.architecture},
                        {"path", config_.section("models." + name).has("path")
                                     ? config_.section("models." + name).get_string("path")
                                     : info.path},
                        {"parameters", info.parameters},
                        {"context_length", info.context_length}};
      }
      m["models"] = models;
      write_file_atomic(file, m.dump(2) + "\n");
    }
  }

  // ---- plugins -------------------------------------------------------------------------------

  template <class Interface>
  std::shared_ptr<Interface> make(const std::string& section) {
    return create_configured_plugin<Interface>(registry_, config_, section, seed_, run_dir_,
                                               threads_);
  }

  void create_plugins() {
    for (const std::string& name : {actor_model_, judge_model_, meta_model_}) {
      if (models_.count(name)) continue;
      const std::string section = "models." + name;
      if (!config_.plugin_of.count(section))
        throw sdk::ConfigError(config_.file.string() + ": [roles] names model '" + name +
                               "' but there is no [" + section + "] table");
      spdlog::info("loading model '{}' ([{}], plugin '{}')", name, section,
                   config_.plugin_of.at(section));
      models_[name] = make<sdk::ModelBackend>(section);
    }
    rubric_ = make<sdk::JudgeRubric>("judge_rubric");
    meta_ = make<sdk::MetaJudgeStrategy>("meta_judge");
    pair_policy_ = make<sdk::PairSelectionPolicy>("pair_selection");
    optimizer_ = make<sdk::Optimizer>("optimizer");
    if (config_.plugin_of.count("evaluation")) evaluator_ = make<sdk::Evaluator>("evaluation");
  }

  void reload_policy(const fs::path& checkpoint) {
    spdlog::info("model '{}' <- {}", actor_model_, checkpoint.string());
    models_.at(actor_model_)->reload(checkpoint);
  }

  // ---- evaluation ----------------------------------------------------------------------------

  /// Runs the evaluator on the models as they are now, with iteration `t`'s seed, into
  /// `out_dir` (emptied first, so that a rerun after an interruption leaves no stale rows).
  /// Returns the metrics as a JSON object; a non-finite value is a PluginError naming its key.
  json evaluate_models(int t, const fs::path& out_dir) {
    const std::string& name = config_.plugin_of.at("evaluation");
    const std::string where = "evaluator '" + name + "' at iteration " + std::to_string(t);
    check_stop("before the evaluation of iteration " + std::to_string(t));
    std::error_code ec;
    fs::remove_all(out_dir, ec);
    fs::create_directories(out_dir, ec);
    if (ec)
      throw sdk::DataError("cannot create the evaluation directory '" + out_dir.string() +
                           "': " + ec.message());
    sdk::EvaluationRequest request;
    request.info = info(t, kEvaluationStage);
    request.actor = models_.at(actor_model_).get();
    request.judge = models_.at(judge_model_).get();
    request.meta_judge = models_.at(meta_model_).get();
    request.rubric = rubric_.get();
    request.meta = meta_.get();
    request.output_dir = out_dir;
    request.stop_requested = [this] { return stop_requested(); };
    json metrics = json::object();
    for (const auto& [key, value] : evaluate_checked(*evaluator_, request, where))
      metrics[key] = value;
    return metrics;
  }

  /// Evaluates the seed models as iteration 0 into RUN/iter_0/eval, unless already recorded
  /// there (its metrics.json, written last, marks the evaluation complete).
  void evaluate_seed_models() {
    const fs::path dir = iter_dir(0) / "eval";
    if (fs::exists(dir / "metrics.json")) return;
    spdlog::info("=== evaluating the seed models (iteration 0) ===");
    const auto start = Clock::now();
    const json evaluation = evaluate_models(0, dir);
    write_file_atomic(dir / "metrics.json",
                      json({{"iteration", 0}, {"evaluation", evaluation}}).dump(2) + "\n");
    spdlog::info("iteration 0 (seed models) evaluation: {} ({})", evaluation_line(evaluation),
                 duration(std::chrono::duration<double>(Clock::now() - start).count()));
  }

  /// "actor/score 2.9, judge/spearman 0.41" (4 significant digits); "(no metrics)" when empty.
  static std::string evaluation_line(const json& evaluation) {
    std::ostringstream s;
    s << std::setprecision(4);
    for (const auto& [key, value] : evaluation.items()) {
      if (s.tellp() > 0) s << ", ";
      s << key << " ";
      if (value.is_number())
        s << value.get<double>();
      else
        s << "-";
    }
    return s.tellp() > 0 ? s.str() : "(no metrics)";
  }

  // ---- per-iteration config -------------------------------------------------------------------

  RoleSampling sampling(const std::string& role, int t) const {
    const sdk::Config& c = config_.section("generation." + role);
    RoleSampling r;
    r.sampling.temperature = c.get_float("temperature", t);
    r.sampling.top_p = c.get_float("top_p", t);
    r.sampling.top_k = static_cast<int>(c.get_int("top_k", t));
    r.sampling.max_new_tokens = static_cast<int>(c.get_int("max_new_tokens", t));
    r.samples = c.has("samples") ? static_cast<int>(c.get_int("samples", t)) : 1;
    r.batch_size = c.get_int("batch_size", t);
    return r;
  }

  sdk::IterationInfo info(int t, int stage) const {
    return {t, iterations_, stage_seed(seed_, t, stage)};
  }

  // ---- generation stages ---------------------------------------------------------------------

  /// What a generation stage produced in this invocation (for timings).
  struct GenerationStats {
    double seconds = 0;
    std::uint64_t tokens = 0;
  };

  /// Generates `requests` in fixed batches into `file` (resuming after its last durable batch).
  /// `rows_of` turns one request's result into its JSONL rows.
  GenerationStats generate_stage(
      const std::string& label,
      const fs::path& file,
      sdk::ModelBackend& model,
      const std::vector<sdk::GenerationRequest>& requests,
      std::int64_t batch_size,
      const std::function<
          void(std::size_t, const sdk::GenerationResult&, std::vector<std::string>&)>& rows_of) {
    GenerationStats stats;
    BatchedJsonlWriter writer(file, batch_size);
    if (writer.complete()) return stats;
    const auto start = Clock::now();
    const std::size_t batch = static_cast<std::size_t>(batch_size);
    const std::size_t batches = (requests.size() + batch - 1) / batch;
    std::size_t next = static_cast<std::size_t>(writer.batches_done());
    if (next > batches)
      throw sdk::DataError(file.string() + ".partial.progress records " + std::to_string(next) +
                           " batches but the stage has only " + std::to_string(batches) +
                           "; delete the .partial files to redo the stage");
    if (next > 0)
      spdlog::info("{}: resuming after batch {}/{} ({} of {} requests done)", label, next, batches,
                   std::min(requests.size(), next * batch), requests.size());
    auto progress = make_progress(label, requests.size());
    if (next > 0) progress->advance(std::min(requests.size(), next * batch));
    std::int64_t failed = 0;
    for (; next < batches; ++next) {
      check_stop("during " + label + " (after " + std::to_string(next) + "/" +
                 std::to_string(batches) + " batches; they are saved)");
      const std::size_t lo = next * batch, hi = std::min(requests.size(), lo + batch);
      const std::vector<sdk::GenerationRequest> chunk(
          requests.begin() + static_cast<std::ptrdiff_t>(lo),
          requests.begin() + static_cast<std::ptrdiff_t>(hi));
      std::vector<sdk::GenerationResult> results = model.generate(chunk);
      if (results.size() != chunk.size())
        throw sdk::BackendError(label + ": the backend returned " + std::to_string(results.size()) +
                                " results for " + std::to_string(chunk.size()) + " requests");
      std::vector<std::string> lines;
      std::uint64_t tokens = 0;
      for (std::size_t j = 0; j < results.size(); ++j) {
        auto& r = results[j];
        if (r.error.empty() && r.completions.size() != static_cast<std::size_t>(chunk[j].n))
          r.error = "backend returned " + std::to_string(r.completions.size()) +
                    " completions, expected " + std::to_string(chunk[j].n);
        if (!r.error.empty()) {
          ++failed;
          spdlog::warn("{}: request '{}' failed: {}", label, chunk[j].id, r.error);
        }
        for (const auto& c : r.completions)
          tokens += static_cast<std::uint64_t>(std::max<std::int64_t>(0, c.tokens));
        rows_of(lo + j, r, lines);
      }
      writer.append_batch(lines);
      stats.tokens += tokens;
      progress->advance(hi - lo, tokens);
    }
    progress.reset();
    writer.finish();
    stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (failed > 0)
      spdlog::warn("{}: {} of {} requests failed (recorded)", label, failed, requests.size());
    return stats;
  }

  // ---- one iteration ---------------------------------------------------------------------------

  void run_iteration(int t) {
    const fs::path dir = iter_dir(t);
    fs::create_directories(dir);
    remove_stale_temporaries(dir);
    const bool train_judge = config_.section("run").get_bool("train_judge", t);
    const std::string tag = "iter " + std::to_string(t) + "/" + std::to_string(iterations_);
    spdlog::info("=== {}{} ===", tag,
                 train_judge ? " (trains actor and judge)" : " (trains actor)");
    const auto iteration_start = Clock::now();
    json timings = {{"stages", json::object()}, {"throughput", json::object()}};
    auto timed = [&timings](const char* stage, double seconds) {
      timings["stages"][stage] = seconds;
    };
    auto since = [](Clock::time_point s) {
      return std::chrono::duration<double>(Clock::now() - s).count();
    };

    // Prompts.
    auto t0 = Clock::now();
    const std::vector<PoolPrompt> prompts = pool_->slice(t);
    std::map<std::string, const PoolPrompt*> prompt_by_id;
    for (const auto& p : prompts) prompt_by_id[p.id] = &p;
    if (!fs::exists(dir / "prompts.jsonl")) {
      std::string text;
      for (const auto& p : prompts)
        text += json({{"prompt_id", p.id},
                      {"messages", conversation_to_json(p.messages)},
                      {"source", p.file.filename().string() + ":" + std::to_string(p.line)}})
                    .dump() +
                "\n";
      write_file_atomic(dir / "prompts.jsonl", text);
    }
    timed("prompts", since(t0));

    // Actor: K responses per prompt.
    const RoleSampling actor = sampling("actor", t);
    {
      std::vector<sdk::GenerationRequest> requests;
      const std::uint64_t s = stage_seed(seed_, t, kActorStage);
      for (std::size_t i = 0; i < prompts.size(); ++i)
        requests.push_back({prompts[i].id, prompts[i].messages, actor.sampling, actor.samples,
                            sdk::derive_seed(s, i)});
      const auto g = generate_stage(
          tag + " actor", dir / "responses.jsonl", *models_.at(actor_model_), requests,
          actor.batch_size,
          [&](std::size_t, const sdk::GenerationResult& r, std::vector<std::string>& lines) {
            if (!r.error.empty()) {
              lines.push_back(
                  json({{"prompt_id", r.request_id}, {"response_id", nullptr}, {"error", r.error}})
                      .dump());
              return;
            }
            for (std::size_t k = 0; k < r.completions.size(); ++k) {
              const auto& c = r.completions[k];
              lines.push_back(json({{"prompt_id", r.request_id},
                                    {"response_id", r.request_id + "/r" + std::to_string(k)},
                                    {"sample", k},
                                    {"text", c.text},
                                    {"tokens", c.tokens},
                                    {"length_chars", utf8_length(c.text)},
                                    {"finish_reason", finish_name(c.finish_reason)}})
                                  .dump());
            }
          });
      timed("actor", g.seconds);
      if (g.seconds > 0) timings["throughput"]["actor_tokens_per_s"] = g.tokens / g.seconds;
    }
    std::vector<sdk::PromptGroup> groups = read_responses(dir / "responses.jsonl", prompt_by_id);

    // Judge: N judgments per response.
    const RoleSampling judge = sampling("judge", t);
    {
      std::vector<sdk::GenerationRequest> requests;
      const std::uint64_t s = stage_seed(seed_, t, kJudgeStage);
      for (const auto& g : groups)
        for (const auto& r : g.responses)
          requests.push_back({r.id, rubric_->build_prompt(g.prompt, r.text), judge.sampling,
                              judge.samples, sdk::derive_seed(s, requests.size())});
      std::map<std::string, std::string> prompt_of_response;
      for (const auto& g : groups)
        for (const auto& r : g.responses) prompt_of_response[r.id] = g.prompt_id;
      const auto g = generate_stage(
          tag + " judge", dir / "judgments.jsonl", *models_.at(judge_model_), requests,
          judge.batch_size,
          [&](std::size_t, const sdk::GenerationResult& r, std::vector<std::string>& lines) {
            const std::string& prompt_id = prompt_of_response.at(r.request_id);
            if (!r.error.empty()) {
              lines.push_back(json({{"prompt_id", prompt_id},
                                    {"response_id", r.request_id},
                                    {"judgment_id", nullptr},
                                    {"error", r.error}})
                                  .dump());
              return;
            }
            for (std::size_t k = 0; k < r.completions.size(); ++k) {
              const auto& c = r.completions[k];
              const sdk::ParsedScore parsed = rubric_->parse(c.text);
              json row = {{"prompt_id", prompt_id},
                          {"response_id", r.request_id},
                          {"judgment_id", r.request_id + "/j" + std::to_string(k)},
                          {"sample", k},
                          {"text", c.text},
                          {"score", opt_number(parsed.score)}};
              if (!parsed.score)
                row["parse_error"] = parsed.error.empty() ? "no score" : parsed.error;
              row["tokens"] = c.tokens;
              row["finish_reason"] = finish_name(c.finish_reason);
              lines.push_back(row.dump());
            }
          });
      timed("judge", g.seconds);
      if (g.seconds > 0) timings["throughput"]["judge_tokens_per_s"] = g.tokens / g.seconds;
    }
    json judge_metrics = read_judgments(dir / "judgments.jsonl", groups);

    // Actor pairs.
    t0 = Clock::now();
    sdk::PairSelectionResult selection = pair_policy_->select(groups, info(t, kActorPairStage));
    for (auto& p : selection.pairs) p.role = sdk::PairRole::Actor;
    write_pairs(dir / "actor_pairs.jsonl", selection.pairs);
    timed("actor_pairs", since(t0));

    // Meta-judge and judge pairs.
    std::vector<sdk::PreferencePair> judge_pairs;
    json meta_metrics = nullptr, judge_pair_metrics = nullptr;
    if (train_judge) {
      t0 = Clock::now();
      std::vector<sdk::BattleRequest> plan = meta_->plan(groups, *rubric_, info(t, kMetaPlanStage));
      const RoleSampling mj = sampling("meta_judge", t);
      std::vector<sdk::GenerationRequest> requests;
      const std::uint64_t s = stage_seed(seed_, t, kMetaGenerationStage);
      for (std::size_t i = 0; i < plan.size(); ++i)
        requests.push_back({plan[i].id, plan[i].messages, mj.sampling, 1, sdk::derive_seed(s, i)});
      const auto g = generate_stage(
          tag + " meta-judge", dir / "meta_judgments.jsonl", *models_.at(meta_model_), requests,
          mj.batch_size,
          [&](std::size_t index, const sdk::GenerationResult& r, std::vector<std::string>& lines) {
            lines.push_back(battle_row(plan[index], r).dump());
          });
      if (g.seconds > 0) timings["throughput"]["meta_judge_tokens_per_s"] = g.tokens / g.seconds;
      std::vector<sdk::Battle> battles = read_battles(dir / "meta_judgments.jsonl", plan);
      sdk::MetaJudgeResult decided =
          meta_->decide(groups, *rubric_, std::move(battles), info(t, kMetaPlanStage),
                        static_cast<std::int64_t>(selection.pairs.size()));
      write_battles(dir / "meta_judgments.jsonl", decided.battles);
      for (auto& p : decided.judge_pairs) p.role = sdk::PairRole::Judge;
      write_pairs(dir / "judge_pairs.jsonl", decided.judge_pairs);
      judge_pairs = decided.judge_pairs;
      timed("meta_judge", since(t0));
      json diagnostics = json::object();
      for (const auto& [k, v] : decided.diagnostics) diagnostics[k] = v;
      json drops = json::object();
      for (const auto& [k, v] : decided.drops) drops[k] = v;
      std::int64_t failed = 0;
      for (const auto& b : decided.battles) failed += b.verdict_text.empty() ? 1 : 0;
      meta_metrics = {{"battles", decided.battles.size()},
                      {"empty_verdicts", failed},
                      {"diagnostics", diagnostics},
                      {"drops", drops}};
      judge_pair_metrics = pair_metrics(judge_pairs, false);
    }

    // Training.
    json training = train(t, dir, selection.pairs, judge_pairs, timings);

    // Evaluation of M_t, before metrics.json (which marks the iteration complete) is written.
    json evaluation = json::object();
    if (evaluator_) {
      reload_policy(dir / "model");
      t0 = Clock::now();
      evaluation = evaluate_models(t, dir / "eval");
      timed("evaluation", since(t0));
    }

    // Metrics.
    json drops = json::object();
    for (const auto& [k, v] : selection.drops) drops[k] = v;
    json actor_pair_metrics = pair_metrics(selection.pairs, true);
    actor_pair_metrics["drops"] = drops;
    json metrics = {{"iteration", t},
                    {"iterations", iterations_},
                    {"train_judge", train_judge},
                    {"prompts", prompts.size()},
                    {"actor", actor_metrics(dir / "responses.jsonl")},
                    {"judge", judge_metrics},
                    {"actor_pairs", actor_pair_metrics},
                    {"meta_judge", meta_metrics},
                    {"judge_pairs", judge_pair_metrics},
                    {"training", training},
                    {"evaluation", evaluation}};
    timings["stages"]["total"] = since(iteration_start);
    write_file_atomic(dir / "timings.json", timings.dump(2) + "\n");
    // metrics.json last: its presence marks the iteration complete.
    write_file_atomic(dir / "metrics.json", metrics.dump(2) + "\n");
    std::error_code ec;
    fs::remove_all(dir / "train_state", ec);
    log_summary(t, metrics, timings);
  }

  /// Removes what atomic writers killed mid-write left behind ("x.tmp", "model.tmp.1234"): the
  /// stage that wrote them runs again.
  static void remove_stale_temporaries(const fs::path& dir) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      const auto pos = name.find(".tmp");
      if (pos == std::string::npos) continue;
      if (pos + 4 != name.size() && name[pos + 4] != '.') continue;
      spdlog::info("removing '{}' left by an interrupted write", e.path().string());
      fs::remove_all(e.path(), ec);
    }
  }

  // ---- reading artifacts back ------------------------------------------------------------------

  std::vector<sdk::PromptGroup> read_responses(
      const fs::path& file, const std::map<std::string, const PoolPrompt*>& prompt_by_id) const {
    std::vector<sdk::PromptGroup> groups;
    std::map<std::string, std::size_t> index;
    const auto rows = read_artifact(file);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const json& row = rows[i];
      try {
        const std::string prompt_id = row.at("prompt_id").get<std::string>();
        auto it = prompt_by_id.find(prompt_id);
        if (it == prompt_by_id.end()) throw sdk::DataError("unknown prompt_id '" + prompt_id + "'");
        auto [pos, inserted] = index.emplace(prompt_id, groups.size());
        if (inserted) groups.push_back({prompt_id, it->second->messages, {}});
        if (row.at("response_id").is_null()) continue;  // The request failed; counted in metrics.
        sdk::ResponseCandidate r;
        r.id = row.at("response_id").get<std::string>();
        r.text = row.at("text").get<std::string>();
        r.length_chars = row.at("length_chars").get<std::int64_t>();
        r.length_tokens = row.at("tokens").get<std::int64_t>();
        groups[pos->second].responses.push_back(std::move(r));
      } catch (const json::exception& e) {
        throw sdk::DataError(file.string() + ":" + std::to_string(i + 1) + ": " + e.what());
      }
    }
    return groups;
  }

  /// Attaches judgments to `groups` and returns the judge metrics.
  json read_judgments(const fs::path& file, std::vector<sdk::PromptGroup>& groups) const {
    std::map<std::string, sdk::ResponseCandidate*> by_id;
    for (auto& g : groups)
      for (auto& r : g.responses) by_id[r.id] = &r;
    std::int64_t judgments = 0, failed = 0, parsed = 0;
    std::vector<double> scores;
    std::map<std::int64_t, std::int64_t> histogram;
    const auto rows = read_artifact(file);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const json& row = rows[i];
      try {
        auto it = by_id.find(row.at("response_id").get<std::string>());
        if (it == by_id.end())
          throw sdk::DataError("unknown response_id '" + row.at("response_id").get<std::string>() +
                               "'");
        if (row.at("judgment_id").is_null()) {
          ++failed;
          continue;
        }
        ++judgments;
        sdk::Judgment j;
        j.id = row.at("judgment_id").get<std::string>();
        j.text = row.at("text").get<std::string>();
        if (!row.at("score").is_null()) {
          j.score = row.at("score").get<double>();
          ++parsed;
          scores.push_back(*j.score);
          ++histogram[static_cast<std::int64_t>(std::llround(*j.score))];
        }
        it->second->judgments.push_back(std::move(j));
      } catch (const json::exception& e) {
        throw sdk::DataError(file.string() + ":" + std::to_string(i + 1) + ": " + e.what());
      }
    }
    std::int64_t unscored = 0;
    for (auto& g : groups)
      for (auto& r : g.responses) {
        std::vector<double> valid;
        for (const auto& j : r.judgments)
          if (j.score) valid.push_back(*j.score);
        if (valid.empty())
          ++unscored;
        else
          r.mean_score = mean(valid);
      }
    json hist = json::object();
    for (const auto& [bin, n] : histogram) hist[std::to_string(bin)] = n;
    return {{"judgments", judgments},
            {"failed_requests", failed},
            {"parsed", parsed},
            {"parse_failures", judgments - parsed},
            {"parse_failure_rate",
             judgments > 0 ? static_cast<double>(judgments - parsed) / judgments : 0.0},
            {"score_mean", mean(scores)},
            {"score_std", stddev(scores)},
            {"score_histogram", hist},
            {"responses_without_score", unscored}};
  }

  json actor_metrics(const fs::path& file) const {
    std::int64_t requests = 0, failed = 0, responses = 0, at_length = 0;
    std::vector<double> chars, tokens;
    std::set<std::string> prompts;
    for (const json& row : read_artifact(file)) {
      prompts.insert(row.at("prompt_id").get<std::string>());
      if (row.at("response_id").is_null()) {
        ++failed;
        continue;
      }
      ++responses;
      chars.push_back(row.at("length_chars").get<double>());
      tokens.push_back(row.at("tokens").get<double>());
      if (row.at("finish_reason") == "length") ++at_length;
    }
    requests = static_cast<std::int64_t>(prompts.size());
    return {{"requests", requests},        {"failed_requests", failed},
            {"responses", responses},      {"mean_length_chars", mean(chars)},
            {"mean_tokens", mean(tokens)}, {"finish_length", at_length}};
  }

  static json battle_row(const sdk::BattleRequest& b, const sdk::GenerationResult& r) {
    json row = {{"id", b.id},
                {"prompt_id", b.prompt_id},
                {"response_id", b.response_id},
                {"judgment_a_id", b.judgment_a_id},
                {"judgment_b_id", b.judgment_b_id}};
    if (!r.error.empty() || r.completions.empty()) {
      row["verdict_text"] = "";
      row["error"] = r.error.empty() ? "no completion" : r.error;
      row["tokens"] = 0;
      row["finish_reason"] = "error";
    } else {
      row["verdict_text"] = r.completions[0].text;
      row["tokens"] = r.completions[0].tokens;
      row["finish_reason"] = finish_name(r.completions[0].finish_reason);
    }
    return row;
  }

  std::vector<sdk::Battle> read_battles(const fs::path& file,
                                        const std::vector<sdk::BattleRequest>& plan) const {
    const auto rows = read_artifact(file);
    if (rows.size() != plan.size())
      throw sdk::DataError(file.string() + " has " + std::to_string(rows.size()) +
                           " battles but the meta-judge planned " + std::to_string(plan.size()) +
                           "; delete it to redo the stage");
    std::vector<sdk::Battle> battles;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (rows[i].value("id", std::string()) != plan[i].id)
        throw sdk::DataError(file.string() + ":" + std::to_string(i + 1) + ": battle '" +
                             rows[i].value("id", std::string()) + "' where '" + plan[i].id +
                             "' was planned; delete the file to redo the stage");
      sdk::Battle b;
      b.request = plan[i];
      b.verdict_text = rows[i].value("verdict_text", std::string());
      battles.push_back(std::move(b));
    }
    row_cache_ = rows;
    return battles;
  }

  void write_battles(const fs::path& file, const std::vector<sdk::Battle>& battles) const {
    // Same rows as generated, outcome added; read_battles() kept them in row_cache_.
    std::map<std::string, int> outcome;
    for (const auto& b : battles) outcome[b.request.id] = b.outcome;
    std::string text;
    for (json row : row_cache_) {
      auto it = outcome.find(row.at("id").get<std::string>());
      row["outcome"] = it == outcome.end() ? 0 : it->second;
      text += row.dump() + "\n";
    }
    write_file_atomic(file, text);
  }

  void write_pairs(const fs::path& file, const std::vector<sdk::PreferencePair>& pairs) const {
    std::string text;
    for (const auto& p : pairs) text += pair_json(p) + "\n";
    write_file_atomic(file, text);
  }

  static json pair_metrics(const std::vector<sdk::PreferencePair>& pairs, bool scores) {
    std::vector<double> chosen_len, rejected_len, chosen_score, rejected_score;
    for (const auto& p : pairs) {
      chosen_len.push_back(static_cast<double>(utf8_length(p.chosen)));
      rejected_len.push_back(static_cast<double>(utf8_length(p.rejected)));
      if (p.chosen_score) chosen_score.push_back(*p.chosen_score);
      if (p.rejected_score) rejected_score.push_back(*p.rejected_score);
    }
    json m = {{"pairs", pairs.size()},
              {"chosen_length_mean", mean(chosen_len)},
              {"rejected_length_mean", mean(rejected_len)}};
    if (scores) {
      m["chosen_score_mean"] = mean(chosen_score);
      m["rejected_score_mean"] = mean(rejected_score);
    }
    return m;
  }

  // ---- training -------------------------------------------------------------------------------

  json train(int t,
             const fs::path& dir,
             const std::vector<sdk::PreferencePair>& actor_pairs,
             const std::vector<sdk::PreferencePair>& judge_pairs,
             json& timings) {
    const fs::path model_dir = dir / "model";
    const fs::path metrics_file = dir / "train_metrics.jsonl";
    std::vector<sdk::PreferencePair> pairs = actor_pairs;
    pairs.insert(pairs.end(), judge_pairs.begin(), judge_pairs.end());
    json training = {{"pairs", pairs.size()},
                     {"actor_pairs", actor_pairs.size()},
                     {"judge_pairs", judge_pairs.size()}};
    const auto start = Clock::now();
    const fs::path partial = metrics_file.string() + ".partial";
    if (fs::exists(model_dir) && fs::exists(partial))
      finalize_train_metrics(partial, metrics_file);  // Crashed after saving the model.
    if (!fs::exists(model_dir)) {
      if (pairs.empty()) {
        spdlog::warn("iter {}: no preference pairs; M_{} is a copy of M_{}", t, t, t - 1);
        copy_previous_model(t, model_dir);
        write_file_atomic(metrics_file, "");
      } else {
        run_optimizer(t, dir, pairs, model_dir, metrics_file, timings);
      }
    }
    timings["stages"]["train"] = std::chrono::duration<double>(Clock::now() - start).count();
    // Summary from the recorded steps, so a resumed run reports the same numbers.
    std::int64_t steps = 0;
    json last = json::object();
    if (fs::exists(metrics_file))
      for (const json& row : read_artifact(metrics_file)) {
        ++steps;
        last = row;
      }
    training["steps"] = steps;
    training["final"] = last;
    return training;
  }

  /// Writes train_metrics.jsonl from the streamed rows: one row per step (the last one written
  /// for a step wins: it is the step as finally taken), torn lines from a crash skipped.
  static void finalize_train_metrics(const fs::path& partial, const fs::path& file) {
    std::map<std::int64_t, std::string> rows;
    for (const auto& line : read_complete_lines(partial)) {
      try {
        rows[json::parse(line).at("step").get<std::int64_t>()] = line;
      } catch (const json::exception&) {
      }
    }
    std::string text;
    for (const auto& [step, line] : rows) text += line + "\n";
    write_file_atomic(file, text);
    std::error_code ec;
    fs::remove(partial, ec);
  }

  void copy_previous_model(int t, const fs::path& model_dir) const {
    const fs::path from =
        t > 1 ? iter_dir(t - 1) / "model"
              : fs::path(config_.section("models." + actor_model_).get_string("path"));
    const fs::path tmp = model_dir.string() + ".tmp";
    std::error_code ec;
    fs::remove_all(tmp, ec);
    fs::copy(from, tmp, fs::copy_options::recursive, ec);
    if (ec)
      throw sdk::DataError("cannot copy the model '" + from.string() + "' to '" + tmp.string() +
                           "': " + ec.message());
    fs::rename(tmp, model_dir, ec);
    if (ec) throw sdk::DataError("cannot rename '" + tmp.string() + "': " + ec.message());
  }

  void run_optimizer(int t,
                     const fs::path& dir,
                     const std::vector<sdk::PreferencePair>& pairs,
                     const fs::path& model_dir,
                     const fs::path& metrics_file,
                     json& timings) {
    sdk::TrainableModel* trainable = models_.at(actor_model_)->trainable();
    if (trainable == nullptr)
      throw sdk::BackendError("model '" + actor_model_ + "' (plugin '" +
                              config_.plugin_of.at("models." + actor_model_) +
                              "') cannot train: its backend has no trainable view");
    // Steps recorded before an interruption stay in the partial file; a step repeated after
    // resuming appends a new row, and finalize_train_metrics() keeps the last row per step.
    const fs::path partial = metrics_file.string() + ".partial";
    std::FILE* out = std::fopen(partial.c_str(), "ab");
    if (out == nullptr)
      throw sdk::DataError("cannot open '" + partial.string() + "' for appending");
    double tokens_per_s_sum = 0;
    std::int64_t tokens_per_s_n = 0;
    sdk::TrainingJob job;
    job.info = info(t, kTrainStage);
    job.output_dir = model_dir;
    job.state_dir = dir / "train_state";
    job.on_step = [&](const sdk::StepMetrics& m) {
      json row = {{"step", m.step}};
      for (const auto& [k, v] : m.values) {
        if (k == "tokens_per_s") {  // Wall-clock: kept out of the deterministic record.
          tokens_per_s_sum += v;
          ++tokens_per_s_n;
          continue;
        }
        row[k] = v;
      }
      const std::string line = row.dump();
      std::fputs((line + "\n").c_str(), out);
      std::fflush(out);
    };
    job.stop_requested = options_.stop_requested;
    try {
      const sdk::TrainingSummary summary = optimizer_->train(*trainable, pairs, job);
      (void)summary;
    } catch (...) {
      std::fclose(out);
      throw;
    }
    std::fclose(out);
    finalize_train_metrics(partial, metrics_file);
    if (tokens_per_s_n > 0)
      timings["throughput"]["train_tokens_per_s"] = tokens_per_s_sum / tokens_per_s_n;
  }

  // ---- the per-iteration summary ---------------------------------------------------------------

  void log_summary(int t, const json& m, const json& timings) const {
    std::ostringstream s;
    auto num = [](const json& v, int digits) {
      return v.is_number() ? fixed(v.get<double>(), digits) : std::string("-");
    };
    const json& j = m["judge"];
    s << "iteration " << t << "/" << iterations_ << " summary\n";
    s << "  prompts            " << m["prompts"].get<std::int64_t>() << ", responses "
      << m["actor"]["responses"].get<std::int64_t>() << " (mean "
      << num(m["actor"]["mean_length_chars"], 1) << " chars, "
      << m["actor"]["finish_length"].get<std::int64_t>() << " hit max_new_tokens)\n";
    s << "  judgments          " << j["judgments"].get<std::int64_t>() << ", parse failures "
      << j["parse_failures"].get<std::int64_t>() << " ("
      << fixed(100 * j["parse_failure_rate"].get<double>(), 1) << "%), score mean "
      << num(j["score_mean"], 2) << " sd " << num(j["score_std"], 2) << "\n";
    s << "  score histogram   ";
    for (const auto& [bin, n] : j["score_histogram"].items())
      s << " " << bin << ":" << n.get<std::int64_t>();
    s << "\n";
    const json& ap = m["actor_pairs"];
    s << "  actor pairs        " << ap["pairs"].get<std::int64_t>() << " (chosen "
      << num(ap["chosen_length_mean"], 1) << " vs rejected " << num(ap["rejected_length_mean"], 1)
      << " chars; scores " << num(ap["chosen_score_mean"], 2) << " vs "
      << num(ap["rejected_score_mean"], 2) << ")";
    if (!ap["drops"].empty()) {
      s << ", dropped:";
      for (const auto& [k, v] : ap["drops"].items()) s << " " << k << "=" << v.get<std::int64_t>();
    }
    s << "\n";
    if (!m["meta_judge"].is_null()) {
      const json& d = m["meta_judge"]["diagnostics"];
      s << "  meta-judge         " << m["meta_judge"]["battles"].get<std::int64_t>()
        << " battles, positional bias "
        << (d.contains("positional_bias") ? num(d["positional_bias"], 3) : "-") << ", score bias "
        << (d.contains("score_bias") ? num(d["score_bias"], 3) : "-") << ", judge pairs "
        << m["judge_pairs"]["pairs"].get<std::int64_t>() << "\n";
    } else {
      s << "  meta-judge         (judge not trained this iteration)\n";
    }
    const json& f = m["training"]["final"];
    s << "  training           " << m["training"]["pairs"].get<std::int64_t>() << " pairs, "
      << m["training"]["steps"].get<std::int64_t>() << " steps; last step loss "
      << (f.contains("loss") ? num(f["loss"], 4) : "-") << " accuracy "
      << (f.contains("accuracy") ? num(f["accuracy"], 3) : "-") << " margin "
      << (f.contains("margin") ? num(f["margin"], 3) : "-") << "\n";
    if (evaluator_) s << "  evaluation         " << evaluation_line(m["evaluation"]) << "\n";
    s << "  stage times       ";
    for (const auto& [stage, sec] : timings["stages"].items())
      s << " " << stage << " " << duration(sec.get<double>());
    spdlog::info("{}", s.str());
  }

  const PluginRegistry& registry_;
  const ResolvedConfig& config_;
  RunLoopOptions options_;
  std::uint64_t seed_ = 0;
  int iterations_ = 1;
  int threads_ = 1;
  fs::path run_dir_;
  std::string actor_model_, judge_model_, meta_model_;
  std::optional<PromptPool> pool_;
  json manifest_;
  std::map<std::string, std::shared_ptr<sdk::ModelBackend>> models_;
  std::shared_ptr<sdk::JudgeRubric> rubric_;
  std::shared_ptr<sdk::MetaJudgeStrategy> meta_;
  std::shared_ptr<sdk::PairSelectionPolicy> pair_policy_;
  std::shared_ptr<sdk::Optimizer> optimizer_;
  std::shared_ptr<sdk::Evaluator> evaluator_;  ///< Null without an [evaluation] table.
  mutable std::vector<json> row_cache_;
};

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

std::string config_diff(const std::string& recorded, const std::string& current) {
  // Key = "[section] line-key"; compare values per key, so reordering is not a change.
  auto index = [](const std::string& text) {
    std::map<std::string, std::pair<std::string, std::string>> out;  // key -> (section, line)
    std::string section;
    for (const auto& line : split_lines(text)) {
      if (line.empty() || line[0] == '#') continue;
      if (line[0] == '[') {
        section = line;
        continue;
      }
      const auto eq = line.find(" = ");
      const std::string key = eq == std::string::npos ? line : line.substr(0, eq);
      out[section + "\x1f" + key] = {section, line};
    }
    return out;
  };
  const auto a = index(recorded), b = index(current);
  std::map<std::string, std::vector<std::string>> by_section;
  for (const auto& [key, v] : a) {
    auto it = b.find(key);
    if (it == b.end())
      by_section[v.first].push_back("- " + v.second);
    else if (it->second.second != v.second) {
      by_section[v.first].push_back("- " + v.second);
      by_section[v.first].push_back("+ " + it->second.second);
    }
  }
  for (const auto& [key, v] : b)
    if (!a.count(key)) by_section[v.first].push_back("+ " + v.second);
  std::string out;
  for (const auto& [section, lines] : by_section) {
    out += (section.empty() ? std::string("(top level)") : section) + "\n";
    for (const auto& l : lines) out += "  " + l + "\n";
  }
  return out;
}

std::map<std::string, double> evaluate_checked(sdk::Evaluator& evaluator,
                                               const sdk::EvaluationRequest& request,
                                               const std::string& where) {
  sdk::EvaluationResult result;
  try {
    result = evaluator.evaluate(request);
  } catch (const sdk::Interrupted&) {
    throw;
  } catch (const sdk::ConfigError& e) {
    throw sdk::ConfigError(where + ": " + e.what());
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

RunLoopResult run_loop(const PluginRegistry& registry,
                       const ResolvedConfig& config,
                       const RunLoopOptions& options) {
  Runner runner(registry, config, options);
  return runner.run();
}

}  // namespace mr::core
