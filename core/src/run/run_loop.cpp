// The Meta-Rewarding loop (run_loop.hpp): checks and creates the run directory, builds the
// session's plugins, then sequences the stages of every iteration (stages.hpp) and records the
// manifest, metrics and timings. What each stage does, and every row schema, lives elsewhere:
// stages.cpp, train_stage.cpp, artifact_rows.cpp, generation_engine.cpp.
#include "metareward/core/run/run_loop.hpp"

#include <chrono>
#include <set>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "metareward/core/artifact_io.hpp"
#include "metareward/core/logging.hpp"
#include "metareward/core/prompt_pool.hpp"
#include "metareward/core/run/artifact_rows.hpp"
#include "metareward/core/run/run_directory.hpp"
#include "metareward/core/run/run_session.hpp"
#include "metareward/core/run/seed_stage.hpp"
#include "metareward/core/sha256.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/sdk/version.hpp"
#include "run_summary.hpp"
#include "stages.hpp"

#ifndef MR_SOURCE_DIR_FOR_GIT
#define MR_SOURCE_DIR_FOR_GIT ""
#endif

namespace mr::core {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

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

double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class Runner {
 public:
  Runner(const PluginRegistry& registry,
         const ResolvedConfig& config,
         const RunLoopOptions& options)
      : registry_(registry),
        config_(config),
        options_(options),
        dir_(fs::path(config.section("run").get_string("output_dir"))),
        session_(registry, config, dir_.root()) {
    session_.share_threads(options.local_ranks);
    session_.distribute(options.coordinator);
  }

  RunLoopResult run() {
    // Nothing is written before the prompts are read, the directory is checked and every plugin
    // is constructed: a bad prompt file, an existing run or a plugin that rejects its options
    // leaves no run directory that would block the corrected retry.
    try {
      pool_.emplace(PromptPool::load(PromptPoolOptions::from_config(config_)));
    } catch (const sdk::DataError& e) {
      throw sdk::DataError(config_.file.string() + ": [prompts] " + e.what());
    }
    const bool resuming = check_directory();
    const int iterations = config_.iterations;
    if (resuming) {
      for (const auto& path : dir_.remove_stale_root_temporaries())
        spdlog::info("removed '{}' left by an interrupted write", path.string());
      set_aside_invalid_markers(iterations);
      remove_finished_train_states(iterations);
    }
    const int first = resuming ? dir_.first_incomplete(iterations) : 1;
    RunLoopResult result{dir_.root(), iterations, 0};
    if (first > iterations) {
      spdlog::info("run {}: all {} iterations are complete; nothing to do", dir_.root().string(),
                   iterations);
      return result;
    }
    // The seed stage runs only while iteration 1 is not complete: a later one would train a
    // model that nothing starts from.
    const bool seed_stage = session_.has_seed_stage();
    const bool run_seed = seed_stage && first == 1 && !(resuming && dir_.seed_stage_complete());
    // M_0 is the seed stage's checkpoint when it has one (a [seed_sft] added with --force after
    // iteration 1 has none), else the models as configured.
    const bool seed_model_exists = run_seed || (seed_stage && dir_.seed_stage_complete());
    if (run_seed) seed_data_.emplace(load_seed_stage_data(config_));
    session_.set_stage("plugin construction");
    session_.create_text_plugins();
    session_.create_models();
    session_.set_stage("");
    record_directory(resuming);
    try {
      if (first > 1)
        spdlog::info("run {}: iterations 1-{} complete, continuing with iteration {}",
                     dir_.root().string(), first - 1, first);
      else if (seed_stage && !run_seed)
        spdlog::info("run {}: the seed stage (iteration 0) is complete", dir_.root().string());
      write_manifest();
      if (run_seed) run_seed_iteration();
      const fs::path seed_model = dir_.file(0, RunDirectory::kModel);
      if (session_.has_evaluation() && !dir_.complete(0)) {
        if (seed_model_exists) reload_policy(seed_model);
        evaluate_seed_models();
      }
      if (first > 1)
        reload_policy(dir_.file(first - 1, RunDirectory::kModel));
      else if (seed_model_exists)
        reload_policy(seed_model);
      for (int t = first; t <= iterations; ++t) {
        run_iteration(t);
        ++result.ran_iterations;
        if (!config_.section("run").get_bool("keep_merged_models")) remove_merged_models(t);
        if (t < iterations) reload_policy(dir_.file(t, RunDirectory::kModel));
      }
    } catch (const sdk::Interrupted& e) {
      log_to_files(spdlog::level::warn, std::string("interrupted: ") + e.what());
      throw;
    } catch (const std::exception& e) {
      // stderr gets the message from the CLI; run.log keeps it with the run.
      log_to_files(spdlog::level::err, std::string("error: ") + e.what());
      throw;
    }
    spdlog::info("run {}: complete ({} iterations). Report: metareward report {}",
                 dir_.root().string(), iterations, dir_.root().string());
    return result;
  }

 private:
  bool stop_requested() const { return options_.stop_requested && options_.stop_requested(); }

  // ---- directory, config record, manifest ----------------------------------------------------

  /// Refuses what must not go on (an existing run without --resume, a foreign directory, a
  /// changed config without --force) before anything is written. True when resuming a run.
  /// A completion record (metrics.json) that is truncated, not JSON or another iteration's
  /// must not make --resume skip its stage: it is moved to FILE.invalid (kept for inspection)
  /// and the stage redone.
  void set_aside_invalid_markers(int iterations) const {
    auto set_aside = [](const fs::path& file, const std::string& problem, const std::string& what) {
      fs::path aside = file;
      aside += ".invalid";
      std::error_code ec;
      fs::rename(file, aside, ec);
      if (ec)
        throw sdk::DataError(file.string() + " " + problem + " and cannot be moved aside (" +
                             ec.message() + "); delete it to redo " + what);
      spdlog::warn("{} {}: it does not mark {} complete; moved to {}, redoing {}", file.string(),
                   problem, what, aside.filename().string(), what);
    };
    if (const std::string p = dir_.seed_stage_problem(); !p.empty())
      set_aside(dir_.seed_stage_metrics(), p, "the seed stage");
    for (int t = 0; t <= iterations; ++t)
      if (const std::string p = dir_.completion_problem(t); !p.empty())
        set_aside(dir_.metrics(t), p,
                  t == 0 ? std::string("the seed evaluation") : "iteration " + std::to_string(t));
  }

  bool check_directory() const {
    const fs::path& root = dir_.root();
    std::error_code ec;
    const bool exists = fs::exists(root, ec);
    const bool has_run = exists && dir_.holds_run();
    if (exists && !fs::is_directory(root, ec))
      throw sdk::ConfigError("run.output_dir '" + root.string() + "' is not a directory");
    if (has_run && !options_.resume)
      throw sdk::ConfigError("run directory '" + root.string() +
                             "' already holds a run; continue it with --resume, or choose "
                             "another directory with --out DIR");
    // A start killed while writing the config record leaves only its temporary: start over.
    if (exists && !has_run && !fs::is_empty(root, ec) && !dir_.holds_only_interrupted_start())
      throw sdk::ConfigError("run.output_dir '" + root.string() +
                             "' exists, is not empty and holds no run (no config.resolved.toml); "
                             "choose another directory with --out DIR");
    if (exists && !has_run && dir_.holds_only_interrupted_start())
      for (const auto& e : fs::directory_iterator(root, ec)) fs::remove(e.path(), ec);
    if (has_run) {
      const std::string diff = config_diff(read_file_text(dir_.config_record()), config_.to_toml());
      if (!diff.empty() && !options_.force)
        throw sdk::ConfigError(
            "the config differs from the one this run was started with (" +
            dir_.config_record().string() + "):\n" + diff +
            "Resuming with another config would mix two experiments in one record. Undo the "
            "change, start a new run with --out DIR, or pass --force to resume anyway.");
    }
    return has_run;
  }

  /// Creates the directory and its config record (or, resuming with --force, records the new
  /// config and keeps the old one), and opens run.log.
  void record_directory(bool resuming) {
    const std::string current = config_.to_toml();
    if (resuming) {
      const std::string before = read_file_text(dir_.config_record());
      const std::string diff = config_diff(before, current);
      if (!diff.empty()) {
        spdlog::warn("resuming with a changed config (--force):\n{}", diff);
        write_file_atomic(
            dir_.root() / (std::string(RunDirectory::kConfigRecord) + ".before_force"), before);
        write_file_atomic(dir_.config_record(), current);
      }
    } else {
      std::error_code ec;
      fs::create_directories(dir_.root(), ec);
      if (ec)
        throw sdk::DataError("cannot create run directory '" + dir_.root().string() +
                             "': " + ec.message());
      write_file_atomic(dir_.config_record(), current);
    }
    add_log_file(dir_.log());
    spdlog::info("run {}: {} ({} iterations, seed {}, {} threads)", dir_.root().string(),
                 resuming ? "resuming" : "starting", config_.iterations, session_.seed(),
                 session_.threads());
  }

  json base_manifest() const {
    json m;
    m["metareward_version"] = MR_SDK_VERSION;
    m["git_revision"] = git_revision();
    m["plugin_api_version"] = MR_PLUGIN_API_VERSION;
    m["build_fingerprint"] = host_fingerprint();
    m["config_file"] = config_.file.string();
    m["config_sha256"] = sha256_hex(config_.to_toml());
    m["seed"] = session_.seed();
    m["iterations"] = config_.iterations;
    m["threads"] = session_.threads();
    m["roles"] = {{"actor", session_.actor_name()},
                  {"judge", session_.judge_name()},
                  {"meta_judge", session_.meta_judge_name()}};
    if (session_.train_name() != session_.actor_name()) m["roles"]["train"] = session_.train_name();
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
    const fs::path file = dir_.manifest();
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
      for (const auto& [name, model] : session_.models()) {
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

  /// Loads `checkpoint` into the actor's model, unless it was the last one loaded (training
  /// changes the model in memory, so the loop reloads after every training, never twice).
  void reload_policy(const fs::path& checkpoint) {
    if (loaded_checkpoint_ == checkpoint) return;
    std::error_code ec;
    if (!fs::exists(checkpoint, ec))
      throw sdk::DataError("cannot load model '" + session_.actor_name() + "' from '" +
                           checkpoint.string() +
                           "': it does not exist (removed by run.keep_merged_models = false? "
                           "rebuild it with metareward merge-lora)");
    session_.set_stage("reload");
    for (const std::string& name : session_.policy_models()) {
      spdlog::info("model '{}' <- {}", name, checkpoint.string());
      session_.model(name).reload(checkpoint);
    }
    loaded_checkpoint_ = checkpoint;
  }

  /// run.keep_merged_models = false, after iteration t: the merged models before M_t that an
  /// adapter rebuilds.
  void remove_merged_models(int t) {
    for (const auto& model : dir_.remove_rebuildable_models(t))
      spdlog::info(
          "removed the merged model {} (run.keep_merged_models = false; rebuild it "
          "with metareward merge-lora --adapter {})",
          model.string(), (model.parent_path() / RunDirectory::kAdapter).string());
  }

  // ---- evaluation ----------------------------------------------------------------------------

  /// Runs the evaluator on the models as they are now into `out_dir`; the metrics as a JSON
  /// object. `out_dir` is kept from an interrupted attempt (it belongs to the same, durable
  /// models), so an evaluator resumes from the rows it recorded there; RUN/eval_cache holds what
  /// it keys by content across iterations.
  json evaluate_models(int t, const fs::path& out_dir) {
    if (stop_requested())
      throw sdk::Interrupted("stopped before the evaluation of iteration " + std::to_string(t));
    json metrics = json::object();
    for (const auto& [key, value] :
         session_.evaluate(t, out_dir, dir_.eval_cache(), [this] { return stop_requested(); }))
      metrics[key] = value;
    return metrics;
  }

  /// Evaluates the seed models as iteration 0 into RUN/iter_0/eval, unless already recorded
  /// there (its metrics.json, written last, marks the evaluation complete).
  void evaluate_seed_models() {
    if (dir_.complete(0)) return;
    spdlog::info("=== evaluating the seed models (iteration 0) ===");
    const auto start = Clock::now();
    const json evaluation = evaluate_models(0, dir_.iteration(0) / RunDirectory::kEval);
    write_file_atomic(dir_.metrics(0),
                      json({{"iteration", 0}, {"evaluation", evaluation}}).dump(2) + "\n");
    spdlog::info("iteration 0 (seed models) evaluation: {} ({})", evaluation_line(evaluation),
                 duration(since(start)));
  }

  // ---- the seed stage (iteration 0) ---------------------------------------------------------

  void run_seed_iteration() {
    fs::create_directories(dir_.iteration(0));
    remove_stale_temporaries(0);
    json timings = {{"stages", json::object()}, {"throughput", json::object()}};
    const StageContext ctx{session_,
                           dir_,
                           0,
                           "iter 0/" + std::to_string(config_.iterations),
                           [this] { return stop_requested(); },
                           timings};
    run_seed_stage(ctx, *seed_data_);
    loaded_checkpoint_.clear();  // Trained in memory.
  }

  // ---- one iteration ---------------------------------------------------------------------------

  void run_iteration(int t) {
    const fs::path dir = dir_.iteration(t);
    fs::create_directories(dir);
    remove_stale_temporaries(t);
    const bool train_judge = config_.section("run").get_bool("train_judge", t);
    const int iterations = config_.iterations;
    const std::string tag = "iter " + std::to_string(t) + "/" + std::to_string(iterations);
    spdlog::info("=== {}{} ===", tag,
                 train_judge ? " (trains actor and judge)" : " (trains actor)");
    const auto iteration_start = Clock::now();
    json timings = {{"stages", json::object()}, {"throughput", json::object()}};
    const StageContext ctx{session_, dir_, t, tag, [this] { return stop_requested(); }, timings};

    const std::vector<PoolPrompt> prompts = pool_->slice(t);
    const auto prompt_by_id = run_prompts_stage(ctx, prompts);
    std::vector<sdk::PromptGroup> groups = run_actor_stage(ctx, prompts, prompt_by_id);
    const json judge_metrics = run_judge_stage(ctx, groups);
    const sdk::PairSelectionResult selection = run_actor_pair_stage(ctx, groups);
    MetaJudgeOutcome meta;
    if (train_judge)
      meta = run_meta_judge_stage(ctx, groups, static_cast<std::int64_t>(selection.pairs.size()));
    const json training = run_train_stage(ctx, selection.pairs, meta.judge_pairs);
    loaded_checkpoint_.clear();  // Trained in memory (or M_t copied from M_{t-1}).

    // Evaluation of M_t, before metrics.json (which marks the iteration complete) is written.
    json evaluation = json::object();
    if (session_.has_evaluation()) {
      reload_policy(dir_.file(t, RunDirectory::kModel));
      const auto start = Clock::now();
      evaluation = evaluate_models(t, dir_.file(t, RunDirectory::kEval));
      timings["stages"]["evaluation"] = since(start);
    }
    session_.set_stage("");

    json drops = json::object();
    for (const auto& [k, v] : selection.drops) drops[k] = v;
    json actor_pair_metrics = rows::pair_metrics(selection.pairs, true);
    actor_pair_metrics["drops"] = drops;
    const json metrics = {{"iteration", t},
                          {"iterations", iterations},
                          {"train_judge", train_judge},
                          {"prompts", prompts.size()},
                          {"actor", rows::actor_metrics(dir_.file(t, RunDirectory::kResponses))},
                          {"judge", judge_metrics},
                          {"actor_pairs", actor_pair_metrics},
                          {"meta_judge", meta.metrics},
                          {"judge_pairs", meta.judge_pair_metrics},
                          {"training", training},
                          {"evaluation", evaluation}};
    timings["stages"]["total"] = since(iteration_start);
    write_file_atomic(dir_.file(t, RunDirectory::kTimings), timings.dump(2) + "\n");
    // metrics.json last: its presence marks the iteration complete.
    write_file_atomic(dir_.metrics(t), metrics.dump(2) + "\n");
    std::error_code ec;
    fs::remove_all(dir_.file(t, RunDirectory::kTrainState), ec);
    log_summary(t, iterations, session_.has_evaluation(), metrics, timings);
  }

  /// A completed stage deletes its trainer state right after its metrics.json; a crash or an
  /// I/O error between the two leaves it behind. It is never read again: delete it now.
  void remove_finished_train_states(int iterations) const {
    for (int t = 0; t <= iterations; ++t) {
      const bool done = t == 0 ? dir_.seed_stage_complete() : dir_.complete(t);
      const fs::path state = dir_.file(t, RunDirectory::kTrainState);
      std::error_code ec;
      if (!done || !fs::exists(state, ec)) continue;
      fs::remove_all(state, ec);
      if (ec)
        throw sdk::DataError("cannot remove the finished trainer state '" + state.string() +
                             "': " + ec.message());
      spdlog::info("removed the trainer state '{}' left by a finished stage", state.string());
    }
  }

  /// Removes what atomic writers killed mid-write left in iter_t: the stage that wrote them
  /// runs again.
  void remove_stale_temporaries(int t) const {
    for (const auto& path : dir_.remove_stale_temporaries(t))
      spdlog::info("removed '{}' left by an interrupted write", path.string());
  }

  const PluginRegistry& registry_;
  const ResolvedConfig& config_;
  RunLoopOptions options_;
  RunDirectory dir_;
  RunSession session_;
  std::optional<PromptPool> pool_;
  std::optional<SeedStageData> seed_data_;  ///< Read only when the seed stage runs.
  fs::path loaded_checkpoint_;  ///< What the actor's model holds; empty = changed in memory.
};

}  // namespace

RunLoopResult run_loop(const PluginRegistry& registry,
                       const ResolvedConfig& config,
                       const RunLoopOptions& options) {
  Runner runner(registry, config, options);
  return runner.run();
}

}  // namespace mr::core
