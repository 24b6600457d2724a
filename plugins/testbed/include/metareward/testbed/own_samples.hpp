/// @file own_samples.hpp
/// The paper's seed stage on the testbed: judge fine-tuning on the *model's own* answers (EFT).
/// The judge of the plain bootstrap learns from teacher answers, which are right 60 % of the time
/// and wrapped in five fixed fillers; the policy's samples look different (other mistakes, other
/// lengths), so the judge grades a distribution it never saw. Here the instruct model's samples
/// for training prompts are graded by the oracle with the dataset's judge noise and length bias,
/// and become judge rows (and meta-judge rows, two judgments of the same own sample), mixed with
/// replayed instruction rows so that the actor keeps what the instruction SFT taught.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "metareward/testbed/dataset.hpp"
#include "metareward/testbed/oracle.hpp"

namespace mr::plugins::testbed {

/// Settings of the own-sample judge stage (`testbed bootstrap --own-*`).
struct OwnSampleOptions {
  std::int64_t prompts = 0;          ///< Train prompts sampled (the first ones; 0 = no stage).
  std::int64_t samples = 4;          ///< Samples per prompt (the runs' K).
  double temperature = 0.8;          ///< As the runs' [generation.actor].
  double top_p = 0.95;               ///< As the runs' [generation.actor].
  std::int64_t max_new_tokens = 96;  ///< As the runs' [generation.actor].
  std::int64_t epochs = 2;           ///< SFT epochs on the own-sample rows.
  double learning_rate = 1e-3;       ///< Peak SFT learning rate of the stage.
  double meta_share = 0.25;          ///< Probability that a sample also gets a meta-judge row.
  double replay = 0.5;               ///< Instruction rows replayed per judge / meta-judge row.

  /// Throws mr::sdk::ConfigError naming the option when a value is out of range.
  void validate() const;
};

/// What the own samples were like, and what was made of them.
struct OwnSampleStats {
  std::int64_t prompts = 0;               ///< Generated rows read.
  std::int64_t samples = 0;               ///< Completions graded.
  std::int64_t dropped = 0;               ///< Rows not graded (see OwnSampleJudgeData::drops).
  std::int64_t correct = 0;               ///< Samples with the exact answer (oracle >= 4).
  std::int64_t exact = 0;                 ///< Samples that are the bare answer (oracle 5).
  std::int64_t prompts_with_correct = 0;  ///< Prompts with at least one correct sample.
  std::int64_t prompts_mixed = 0;         ///< Prompts with correct and incorrect samples.
  std::array<std::int64_t, kOracleCriteria + 1> oracle_histogram{};  ///< Samples per score.
  std::int64_t judge_rows = 0;
  std::int64_t meta_rows = 0;
  std::int64_t replay_rows = 0;
  /// correct / samples (0 when none).
  double accuracy() const;
};

/// The rows of the stage and their statistics.
struct OwnSampleJudgeData {
  std::vector<SftRow> rows;  ///< Shuffled; ids "own-000001", ...
  OwnSampleStats stats;
  /// One line per dropped row: "line L: why" (bad JSON, no user turn, not a testbed prompt).
  std::vector<std::string> drops;
};

/// Builds the stage's rows from `generated` (the JSONL lines `metareward generate` writes:
/// {"id", "messages": [{"role": "user", ...}], "completions": [{"text"}, ...]}). Each completion
/// gets a judge row whose target is the oracle score with `data.judge_noise` (the length bias
/// counts a response as verbose when it holds text besides the graded answer), and with
/// probability `own.meta_share` a meta-judge row (`data.meta_noise`), both rendered with
/// `data`'s templates. round(own.replay x those rows) instruction rows of `instruction_rows`
/// are added (cycled in order; none when it is empty). Deterministic in `seed`.
OwnSampleJudgeData own_sample_judge_data(const std::vector<std::string>& generated,
                                         const std::vector<SftRow>& instruction_rows,
                                         const DatasetOptions& data,
                                         const OwnSampleOptions& own,
                                         std::uint64_t seed);

}  // namespace mr::plugins::testbed
