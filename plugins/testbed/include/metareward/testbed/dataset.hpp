/// @file dataset.hpp
/// The bootstrap dataset of the testbed: SFT rows for the seed model (instruction, judge and
/// meta-judge examples), the loop's training prompts and the held-out evaluation prompts. The
/// files are byte-identical for the same options (seed included) on every platform.
///
/// Files written by write_dataset (one JSON object per line, keys in this order):
/// - `sft.jsonl`: {"id": "sft-000001", "kind": "instruction" | "judge" | "meta_judge",
///   "messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}
/// - `judge_sft.jsonl`: the judge and meta-judge rows of sft.jsonl, same lines in the same order
///   (the bootstrap's judge warm-up trains on them before the mixed SFT)
/// - `train_prompts.jsonl`: {"id": "train-000001", "prompt": ...} (no answers)
/// - `eval_prompts.jsonl`: {"id": "eval-000001", "prompt": ..., "task": ..., "answer": ...}
/// - `manifest.json`: the options, the templates and the row counts.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "metareward/sdk/types.hpp"
#include "metareward/testbed/judge_data.hpp"
#include "metareward/testbed/tasks.hpp"
#include "metareward/testbed/teacher.hpp"

namespace mr::plugins::testbed {

/// A prompt is held out for evaluation iff FNV-1a-64(prompt) % kEvalSplitModulus == 0. The split
/// is a property of the prompt text, so train and eval prompts (and every SFT example) are
/// disjoint whatever the seed and the counts.
inline constexpr std::uint64_t kEvalSplitModulus = 8;

/// True when `prompt` belongs to the held-out evaluation side of the split.
bool is_eval_prompt(std::string_view prompt);

/// Everything that determines the dataset.
struct DatasetOptions {
  std::uint64_t seed = 1;             ///< Base seed of the three file streams.
  std::int64_t sft_examples = 8000;   ///< Rows of sft.jsonl (all kinds together).
  std::int64_t train_prompts = 2000;  ///< Rows of train_prompts.jsonl (distinct prompts).
  std::int64_t eval_prompts = 200;    ///< Rows of eval_prompts.jsonl (distinct prompts).
  double judge_share = 0.45;          ///< Share of SFT rows that are judge examples (rounded).
  double meta_share = 0.1;            ///< Share of SFT rows that are meta-judge examples (rounded).
  /// The task families of the prompts and SFT rows, in the order prompts cycle through them;
  /// all five by default. Off-task responses still answer any family's task.
  std::vector<TaskFamily> families{kAllFamilies.begin(), kAllFamilies.end()};
  TeacherOptions teacher;            ///< Instruction answers, and the responses judged.
  double p_off_task = 0.3;           ///< Share of judged responses that answer another task.
  JudgeNoiseOptions judge_noise;     ///< Noise and length bias of the judge targets.
  MetaJudgeNoiseOptions meta_noise;  ///< Noise of the meta-judge labels.
  std::string judge_template = kTestbedJudgeTemplate;     ///< additive5 `template` to render.
  std::string meta_template = kTestbedMetaJudgeTemplate;  ///< pairwise_elo `template`.

  /// Throws mr::sdk::ConfigError naming the option when a value is out of range (negative
  /// counts, probabilities outside [0, 1], shares summing above 1, templates without their
  /// placeholders, no family or a family twice).
  void validate() const;
};

/// One SFT example.
struct SftRow {
  std::string id;
  std::string kind;  ///< "instruction", "judge" or "meta_judge".
  mr::sdk::Conversation messages;
};

/// The generated dataset, in file order.
struct Dataset {
  std::vector<SftRow> sft;
  std::vector<TaskInstance> train;  ///< Distinct prompts, none on the eval side of the split.
  std::vector<TaskInstance> eval;   ///< Distinct prompts, all on the eval side of the split.
  std::map<std::string, std::int64_t> sft_kind_counts;  ///< Rows per kind.
  /// How often each score 0..5 is the target of a judge example.
  std::array<std::int64_t, kOracleCriteria + 1> judge_target_histogram{};
};

/// Builds the dataset (validates `options` first). Independent seeded streams per file, so the
/// eval prompts do not depend on the SFT or train counts, and N prompts are a prefix of N+1.
/// Train and eval prompts cycle through the families; a family whose side of the split runs out
/// of distinct prompts (multiply has 169 in all) is skipped from then on. SFT examples draw a
/// uniformly random family each and may repeat prompts. Throws mr::sdk::DataError when more
/// distinct prompts are asked for than the task families can supply.
Dataset build_dataset(const DatasetOptions& options);

/// One sft.jsonl line (without newline): {"id", "kind", "messages"}.
std::string sft_line(const SftRow& row);
/// The lines of sft.jsonl (without newlines).
std::vector<std::string> sft_lines(const Dataset& dataset);
/// The lines of judge_sft.jsonl: those of sft.jsonl whose kind is "judge" or "meta_judge".
std::vector<std::string> judge_sft_lines(const Dataset& dataset);
/// The lines of train_prompts.jsonl (without newlines).
std::vector<std::string> train_prompt_lines(const Dataset& dataset);
/// The lines of eval_prompts.jsonl (without newlines).
std::vector<std::string> eval_prompt_lines(const Dataset& dataset);
/// manifest.json's text (pretty-printed, ends with a newline).
std::string manifest_text(const Dataset& dataset, const DatasetOptions& options);

/// Writes `text` to `file` through a temporary file in the same directory renamed into place, so
/// readers never see a partial file. Throws mr::sdk::DataError naming the file on failure.
void write_text_atomic(const std::filesystem::path& file, const std::string& text);

/// Writes sft.jsonl, judge_sft.jsonl, train_prompts.jsonl, eval_prompts.jsonl and manifest.json
/// into `dir`
/// (created if missing), each through a temporary file renamed into place. Throws
/// mr::sdk::DataError naming the file on any I/O failure.
void write_dataset(const Dataset& dataset,
                   const DatasetOptions& options,
                   const std::filesystem::path& dir);

}  // namespace mr::plugins::testbed
