/// @file run_record.hpp
/// Reading a run directory back (RunDirectory's layout, docs/run_artifacts.md) into one record:
/// the manifest, the config record, every iteration's metrics, training steps and timings, and
/// the seed models' evaluation. `metareward report` renders it, `metareward compare` tabulates
/// its evaluation numbers. Reading is tolerant of what a live or killed run leaves behind:
/// incomplete or missing iterations and missing or null optional fields become notes; malformed
/// JSON is a DataError naming the file and line, a malformed row of a .jsonl file is skipped and
/// counted.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mr::core {

/// One row of train_metrics.jsonl: every numeric field by name ("loss", "accuracy", ...).
struct TrainStep {
  double step = 0;
  std::map<std::string, double> values;
};

/// One iter_T directory as the report sees it.
struct IterationRecord {
  int iteration = 0;
  bool complete = false;           ///< iter_T/metrics.json exists.
  std::vector<std::string> files;  ///< The artifact names present, sorted.
  /// Every number of metrics.json by dotted path ("judge.score_mean", "training.final.loss",
  /// "meta_judge.diagnostics.positional_bias"); null and absent fields are absent here.
  std::map<std::string, double> metrics;
  std::optional<bool> train_judge;  ///< metrics.json "train_judge".
  bool has_meta_judge = false;      ///< metrics.json "meta_judge" is an object (not null).
  bool has_judge_pairs = false;     ///< metrics.json "judge_pairs" is an object (not null).
  /// Score bin -> count: metrics.json judge.score_histogram, else counted from judgments.jsonl.
  std::map<std::int64_t, std::int64_t> score_histogram;
  std::string histogram_source;  ///< "metrics.json", "judgments.jsonl" or "" (none).
  /// Drop reasons -> count of actor_pairs.drops and meta_judge.drops.
  std::map<std::string, double> actor_pair_drops, meta_judge_drops;
  std::map<std::string, double> evaluation;     ///< metrics.json "evaluation" (name -> number).
  std::vector<TrainStep> train_steps;           ///< By step; a repeated step keeps its last row.
  bool has_timings = false;                     ///< timings.json exists.
  std::map<std::string, double> stage_seconds;  ///< timings.json "stages".
  std::map<std::string, double> throughput;     ///< timings.json "throughput".

  /// The metrics.json number at `path`, nullopt when absent or null.
  std::optional<double> metric(const std::string& path) const;
};

/// A plugin library of manifest.json "plugins".
struct PluginRecord {
  std::string name, kind, version, library, sha256;
};

/// Everything the report shows about one run directory.
struct RunRecord {
  std::filesystem::path dir;
  bool has_manifest = false;
  /// Manifest scalars in display order ("metareward_version" -> "0.3.0", "seed" -> "11", ...);
  /// object values are flattened to one line ("actor: policy, judge: policy").
  std::vector<std::pair<std::string, std::string>> manifest_fields;
  std::vector<PluginRecord> plugins;
  /// manifest.json "models": name -> (field -> value text), e.g. "policy" -> {"path": ...}.
  std::map<std::string, std::map<std::string, std::string>> models;
  std::string resolved_config;              ///< config.resolved.toml, "" when absent.
  std::optional<int> planned_iterations;    ///< manifest "iterations" (else metrics.json's).
  std::vector<IterationRecord> iterations;  ///< Every iter_T directory, by T.
  /// The seed model's evaluation (iter_0/eval/metrics.json "evaluation"), shown as iteration 0
  /// in the evaluation table and plots; empty without an evaluator.
  std::map<std::string, double> seed_evaluation;
  /// The seed stage's numbers (iter_0/metrics.json "seed_sft": "examples", "steps",
  /// "final.loss", "drops.<reason>", ...); empty when the run had none or it is not complete.
  std::map<std::string, double> seed_stage;
  std::string seed_stage_type;     ///< Its optimizer plugin ("sft"); "" without a seed stage.
  std::vector<std::string> notes;  ///< Incomplete/missing iterations, skipped rows.

  /// The complete iterations, by T.
  std::vector<const IterationRecord*> complete() const;
};

/// Reads run directory `dir`. Throws sdk::DataError when `dir` is not a directory, has no
/// iter_T/metrics.json, or a JSON file (metrics.json, manifest.json, timings.json) is not valid
/// JSON or has a field of the wrong type (the message names the file, line or field).
RunRecord read_run_directory(const std::filesystem::path& dir);

/// The "evaluation" object of a metrics file (iter_T/metrics.json, iter_0/eval/metrics.json or
/// an `eval` output's metrics.json) as name -> number, null values left out. DataError naming
/// the file (and line) when it is not a JSON object, "evaluation" is not an object or a value is
/// not a number. `iteration`, when given, receives the file's "iteration" (0 when absent).
std::map<std::string, double> read_evaluation_metrics(const std::filesystem::path& file,
                                                      int* iteration = nullptr);

}  // namespace mr::core
