/// @file bootstrap.hpp
/// `metareward testbed bootstrap`: the seed model of the testbed, made from scratch and
/// reproducibly in three steps:
///   1. the dataset (dataset.hpp) into OUT/data;
///   2. a small Llama-shaped config (byte-level vocabulary) into OUT/model_config.json and a
///      random checkpoint from it, `metareward init-model` -> OUT/init_model;
///   3. optionally a judge warm-up, SFT on OUT/data/judge_sft.jsonl (the judge and meta-judge
///      rows only) -> OUT/judge_warmup_model, then
///   4. SFT on OUT/data/sft.jsonl (all rows), `metareward sft` -> OUT/seed_model;
///   5. optionally (--own-sample-prompts) the paper's EFT on the model's own outputs: step 4
///      writes OUT/instruct_model instead, whose samples for training prompts
///      (`metareward generate`) are graded by the noisy oracle into judge rows, and SFT on those
///      (with replayed instruction rows) gives OUT/seed_model;
/// and OUT/bootstrap.json (the options and the commands run), written last. Steps 2 and 3 run in
/// the same process through HostContext::run_command.
#pragma once

#include <cstdint>
#include <filesystem>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "metareward/sdk/host.hpp"
#include "metareward/testbed/dataset.hpp"
#include "metareward/testbed/own_samples.hpp"

namespace mr::plugins::testbed {

/// Vocabulary of the byte-level tokenizer `init-model` writes without --tokenizer: 256 bytes and
/// <|bos|>, <|eos|>, <|pad|>.
inline constexpr std::int64_t kByteLevelVocabSize = 259;

/// Shape of the seed model (a LlamaForCausalLM config.json).
struct ModelShape {
  std::int64_t hidden_size = 128;
  std::int64_t intermediate_size = 384;
  std::int64_t layers = 4;
  std::int64_t heads = 4;
  std::int64_t kv_heads = 2;
  std::int64_t context = 384;  ///< max_position_embeddings (tokens = bytes).
};

/// The SFT step's optimizer settings (`sft` optimizer keys).
struct SftSettings {
  std::int64_t epochs = 4;
  /// Epochs of the judge warm-up on the judge and meta-judge rows alone, before the mixed SFT
  /// (0 = none). A judge's score hangs on one token of its judgment, and in the mixed data the
  /// many answer tokens of the instruction rows drown that token's gradient: without the warm-up
  /// a small seed only learns the marginal of the scores (docs/results.md).
  std::int64_t judge_warmup_epochs = 4;
  /// Peak learning rate of the judge warm-up. The judge's score token sits on a plateau at the
  /// marginal of the scores before it learns to check answers; narrower models leave it only
  /// at a higher rate (the reduced-size test uses 0.01 at width 64, with `learning_rate` 0.002
  /// so that the mixed SFT keeps what the warm-up taught).
  double judge_warmup_learning_rate = 3e-3;
  double learning_rate = 3e-3;
  std::int64_t batch_size = 16;
  std::int64_t max_length = 256;  ///< Prompt + answer tokens per example.
  double warmup_ratio = 0.05;
  /// Further `KEY=VALUE` optimizer overrides (KEY without "optimizer."), applied last.
  std::vector<std::string> extra;
};

/// Everything that determines the bootstrap.
struct BootstrapOptions {
  std::filesystem::path out;  ///< Output directory (required).
  std::uint64_t seed = 1;     ///< Data, init and SFT seed.
  std::string size = "small";
  DatasetOptions data;
  ModelShape model;
  SftSettings sft;
  /// The judge stage on the instruct model's own samples (own_samples.hpp); off by default.
  OwnSampleOptions own;
  /// Start the own-sample stage from this instruct model instead of training one (no
  /// init-model, no warm-up, no instruction SFT); empty = train it. Needs own.prompts > 0.
  std::filesystem::path own_from;
  int threads = 0;     ///< Passed to `sft --threads` (0 = all cores).
  bool force = false;  ///< Replace an earlier bootstrap in `out`.

  /// The defaults of a size preset: "tiny" (tests: seconds) or "small" (the demo). Throws
  /// UsageError for another name.
  static BootstrapOptions preset(std::string_view size);

  /// Throws UsageError for an inconsistent shape (hidden_size not a multiple of heads, heads not
  /// a multiple of kv_heads, odd head size, context shorter than max_length) or dataset options
  /// out of range.
  void validate() const;
};

/// The paths and commands of a bootstrap.
struct BootstrapPlan {
  std::filesystem::path data_dir;              ///< OUT/data
  std::filesystem::path model_config;          ///< OUT/model_config.json
  std::filesystem::path init_model;            ///< OUT/init_model
  std::filesystem::path judge_warmup_model;    ///< OUT/judge_warmup_model (warm-up only)
  std::filesystem::path judge_warmup_metrics;  ///< OUT/judge_warmup_metrics.jsonl (warm-up only)
  std::filesystem::path seed_model;            ///< OUT/seed_model
  /// The model the own-sample stage samples from: OUT/instruct_model (the instruction SFT's
  /// output when the stage is on), or --own-from; empty without the stage.
  std::filesystem::path instruct_model;
  std::filesystem::path own_prompts;      ///< OUT/data/own_sample_prompts.jsonl (stage only)
  std::filesystem::path own_samples;      ///< OUT/data/own_samples.jsonl (stage only)
  std::filesystem::path own_judge_sft;    ///< OUT/data/own_judge_sft.jsonl (stage only)
  std::filesystem::path own_sft_metrics;  ///< OUT/own_judge_sft_metrics.jsonl (stage only)
  std::filesystem::path sft_metrics;           ///< OUT/sft_metrics.jsonl
  std::filesystem::path manifest;              ///< OUT/bootstrap.json
  std::string model_config_json;               ///< The text of model_config.json.
  /// `metareward` argument lists, in order: init-model, the warm-up sft (when
  /// judge_warmup_epochs > 0), then the main sft.
  std::vector<std::vector<std::string>> commands;
  /// The own-sample stage's `metareward generate` and `metareward sft` (empty without it); the
  /// judge rows are written in between from the generated samples.
  std::vector<std::string> own_generate, own_sft;
};

/// The config.json text of a model of `shape` (LlamaForCausalLM, byte-level vocabulary).
std::string model_config_json(const ModelShape& shape);

/// What bootstrap will write and run for `options` (no I/O).
BootstrapPlan plan_bootstrap(const BootstrapOptions& options);

/// Parses `testbed bootstrap` arguments: --size picks the preset first, then every other flag
/// overrides it, whatever the order. Returns false for --help. Throws UsageError.
bool parse_bootstrap_args(const std::vector<std::string>& args, BootstrapOptions& options);

/// Usage text of `metareward testbed bootstrap`, with the defaults of both presets.
std::string bootstrap_usage();

/// Runs the plan: writes the data and model config, runs each command through
/// `ctx.run_command` and writes bootstrap.json. Refuses (returns 1) when `out` already holds a
/// bootstrap, unless `options.force`. Returns 1 when a command fails (nothing more is run and no
/// bootstrap.json is written). Progress on `out`, errors on `err`.
int run_bootstrap(const BootstrapOptions& options,
                  mr::sdk::HostContext& ctx,
                  std::ostream& out,
                  std::ostream& err);

/// `metareward testbed bootstrap ARGS`: parse, then run_bootstrap. 2 on a usage error.
int bootstrap_command(const std::vector<std::string>& args,
                      mr::sdk::HostContext& ctx,
                      std::ostream& out,
                      std::ostream& err);

}  // namespace mr::plugins::testbed
