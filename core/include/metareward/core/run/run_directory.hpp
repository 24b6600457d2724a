/// @file run_directory.hpp
/// The layout of a run directory (docs/run_artifacts.md) in one place: the paths of every
/// artifact, which iterations exist and which are complete, and the config record with its
/// structural diff. The loop writes through it and `report`, `compare` and `eval` read through
/// it (with run_record.hpp), so there is one definition of "iteration T is done".
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mr::core {

/// One run directory: RUN/{config.resolved.toml, manifest.json, run.log, iter_T/...}.
class RunDirectory {
 public:
  /// File names inside RUN and RUN/iter_T, as documented in docs/run_artifacts.md.
  static constexpr const char* kConfigRecord = "config.resolved.toml";
  static constexpr const char* kManifest = "manifest.json";
  static constexpr const char* kLog = "run.log";
  static constexpr const char* kPrompts = "prompts.jsonl";
  static constexpr const char* kResponses = "responses.jsonl";
  static constexpr const char* kJudgments = "judgments.jsonl";
  static constexpr const char* kActorPairs = "actor_pairs.jsonl";
  static constexpr const char* kMetaJudgments = "meta_judgments.jsonl";
  static constexpr const char* kJudgePairs = "judge_pairs.jsonl";
  static constexpr const char* kTrainMetrics = "train_metrics.jsonl";
  static constexpr const char* kTrainState = "train_state";
  static constexpr const char* kModel = "model";
  /// A LoRA adapter in PEFT's layout, written beside `model` by an optimizer that trains one:
  /// iter_T/model = `metareward merge-lora --model <M_{T-1}> --adapter iter_T/adapter`.
  static constexpr const char* kAdapter = "adapter";
  static constexpr const char* kEval = "eval";
  /// RUN/eval_cache: what the evaluator keys by content (a judge's verdicts, a fixed baseline's
  /// answers), shared by every iteration's evaluation (EvaluationRequest::cache_dir).
  static constexpr const char* kEvalCache = "eval_cache";
  static constexpr const char* kTimings = "timings.json";
  /// Written last in an iteration (in iter_0 by the seed stage, and in iter_0/eval): its
  /// presence marks it complete.
  static constexpr const char* kMetrics = "metrics.json";

  explicit RunDirectory(std::filesystem::path root) : root_(std::move(root)) {}

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path config_record() const { return root_ / kConfigRecord; }
  std::filesystem::path manifest() const { return root_ / kManifest; }
  std::filesystem::path log() const { return root_ / kLog; }
  std::filesystem::path eval_cache() const { return root_ / kEvalCache; }
  /// RUN/iter_T (T = 0 holds the seed stage of a config with [seed_sft] and the seed models'
  /// evaluation, eval/).
  std::filesystem::path iteration(int t) const;
  /// RUN/iter_T/NAME.
  std::filesystem::path file(int t, const char* name) const { return iteration(t) / name; }
  /// The metrics file of iteration T: iter_T/metrics.json, or iter_0/eval/metrics.json for the
  /// seed models (T = 0).
  std::filesystem::path metrics(int t) const;

  /// True when RUN holds a run (its config record exists).
  bool holds_run() const;
  /// True when RUN is not empty but holds only what a start killed while writing its config
  /// record leaves (config.resolved.toml.tmp): such a directory is started like an empty one.
  bool holds_only_interrupted_start() const;
  /// True when iteration T's metrics file exists and is a valid record (T = 0: the seed
  /// evaluation is recorded).
  bool complete(int t) const;
  /// Why iteration T's metrics file, present, is not a valid completion record (not JSON, not
  /// an object, another iteration's); "" when it is valid or absent.
  std::string completion_problem(int t) const;
  /// The first of 1..iterations that is not complete; iterations + 1 when all are.
  int first_incomplete(int iterations) const;
  /// iter_0/metrics.json, written last by the seed stage ([seed_sft]).
  std::filesystem::path seed_stage_metrics() const { return file(0, kMetrics); }
  /// True when the seed stage is recorded (iter_0/metrics.json exists and holds "seed_sft").
  bool seed_stage_complete() const;
  /// Like completion_problem(), for iter_0/metrics.json.
  std::string seed_stage_problem() const;

  /// Removes from iter_T what atomic writers killed mid-write left behind ("x.tmp",
  /// "model.tmp.1234", "adapter.tmp*"); the stage that wrote them runs again. Returns them.
  std::vector<std::filesystem::path> remove_stale_temporaries(int t) const;
  /// Removes the files atomic writers killed mid-write left in the run directory itself
  /// ("manifest.json.tmp.1234", "config.resolved.toml.tmp.1234"): a resume rewrites those files.
  /// Returns them.
  std::vector<std::filesystem::path> remove_stale_root_temporaries() const;
  /// `[run] keep_merged_models = false`: removes iter_S/model for every S < `latest` whose
  /// iter_S/adapter exists (the model is rebuilt from the previous one and that adapter), so
  /// that only the latest model, unrebuildable ones (an iteration without pairs copies its
  /// model) and the config's own paths stay. Returns the removed directories.
  std::vector<std::filesystem::path> remove_rebuildable_models(int latest) const;
  /// Every iter_T directory (T >= 1, or T >= 0 with `with_seed`), by T.
  std::map<int, std::filesystem::path> iteration_dirs(bool with_seed = false) const;

  /// T of an "iter_T" directory name (T >= 0, no leading zero, at most 6 digits), else nullopt.
  static std::optional<int> iteration_number(const std::string& name);

 private:
  std::filesystem::path root_;
};

/// The differences between two config records (TOML texts), compared as data: table by table,
/// key by key, values as parsed (a multi-line string whose lines are reordered differs; a key
/// moved within its table does not). "- key = old" / "+ key = new" lines under their "[table]"
/// header, tables in name order; empty when equal. A text that is not valid TOML is compared as
/// one value and shown whole.
std::string config_diff(const std::string& recorded, const std::string& current);

}  // namespace mr::core
