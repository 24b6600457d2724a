/// @file torch_backend.hpp
/// The `torch` model backend plugin: a Llama/Qwen2 causal LM on libtorch, loaded from a Hugging
/// Face checkpoint, that generates (batched sampling with a KV cache, prefix sharing for n
/// samples), scores completions and exposes a TrainableModel (with LoRA adapters and activation
/// checkpointing) for the optimizer plugins; plus the library's CLI commands `init-model`,
/// `merge-lora` and `tokenize`. Text-level header (no libtorch).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "metareward/sdk/config.hpp"
#include "metareward/sdk/host.hpp"
#include "metareward/sdk/model_backend.hpp"
#include "metareward/sdk/plugin.hpp"

namespace mr::plugins::torch_backend {

/// Library name and version reported by MR_PLUGIN.
inline constexpr const char* kLibraryName = "mr-torch-backend";
inline constexpr const char* kLibraryVersion = "0.1.0";

/// Config keys of `torch`: path (required), dtype, device, chat_template, chat_format,
/// max_batch_size, prefix_cache_mib, prefix_block_tokens, continuous_batching, max_context,
/// adapter.
mr::sdk::Schema torch_backend_schema();

/// Prompt-token accounting of a `torch` backend's generate() calls since it was built. The n
/// samples of one request share one prefill, with or without the prefix cache.
struct PrefillCounters {
  std::int64_t prompt_tokens = 0;    ///< Tokens of the prompts prefilled (once per request).
  std::int64_t reused_tokens = 0;    ///< Of those, taken from the prefix cache.
  std::int64_t computed_tokens = 0;  ///< Of those, run through the model.
  std::int64_t prefill_passes = 0;   ///< Batched prefill passes (admission waves).
  std::int64_t evicted_blocks = 0;   ///< Prefix-cache blocks evicted to stay in the budget.
  std::int64_t invalidations = 0;    ///< Times the weights changed under a filled cache.
};

/// The counters of `backend` if it is a `torch` backend, else nullopt.
std::optional<PrefillCounters> prefill_counters(const mr::sdk::ModelBackend& backend);

/// Builds the backend from `ctx.config()` (a validated `torch` table): loads tokenizer, chat
/// template and weights, and sets libtorch's intra-op threads to ctx.threads(). Throws
/// ConfigError (bad device/dtype/format options) or BackendError (unreadable checkpoint).
std::unique_ptr<mr::sdk::ModelBackend> make_torch_backend(mr::sdk::HostContext& ctx);

/// The Jinja chat template that init-model writes into tokenizer_config.json of a byte-level
/// tokenizer: the `plain` format in Jinja, so HF tools render it too. chat_template = "auto"
/// recognises exactly this text as `plain`.
extern const char* const kPlainChatTemplateJinja;

/// `metareward init-model --config FILE --out DIR [--seed S] [--tokenizer DIR]
/// [--dtype float32|bfloat16]`: writes a randomly initialised checkpoint with a usable tokenizer.
/// Options are parsed with Boost.Program_options (`--flag value` or `--flag=value`). Returns the
/// exit status: 0 ok (also for --help, the usage on `out`), 2 usage error (the message and the
/// usage on `err`); a runtime error throws (the host exits 1).
int init_model_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

/// Loads the checkpoint `model_dir` in float32, folds the PEFT LoRA adapter in `adapter_dir`
/// into it and writes the merged checkpoint to `out_dir` (atomically, tokenizer files copied
/// from `model_dir`) in `dtype` ("auto" = the base checkpoint's on-disk dtype, "float32",
/// "bfloat16"). Returns a one-line summary. Throws BackendError naming the file that does not
/// fit.
std::string merge_lora_checkpoint(const std::string& model_dir,
                                  const std::string& adapter_dir,
                                  const std::string& out_dir,
                                  const std::string& dtype);

/// `metareward merge-lora --model BASE --adapter DIR --out DIR [--dtype auto|float32|bfloat16]`:
/// merge_lora_checkpoint() from the command line. Returns the exit status as init_model_command.
int merge_lora_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

/// `metareward tokenize --tokenizer DIR`: JSONL {"text": ...} rows on `in`, one
/// {"text", "ids"} row per input row on `out`; a bad row yields {"line", "error"} instead and is
/// counted in the summary on `err`. Returns the exit status (0; 0 for --help; 2 for a usage
/// error, with the usage on `err`).
int tokenize_command(const std::vector<std::string>& args,
                     std::istream& in,
                     std::ostream& out,
                     std::ostream& err);

/// Registers: model_backend `torch`; commands `init-model`, `merge-lora`, `tokenize`.
void register_torch_backend_plugins(mr::sdk::Registrar& registrar);

}  // namespace mr::plugins::torch_backend
