/// @file model_backend.hpp
/// The model backend plugin kind, generation side: the engine that plays actor, judge and
/// meta-judge. Text in, text out; no libtorch in this header. The training side of a backend
/// is TrainableModel (trainable_model.hpp), reached through ModelBackend::trainable().
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "metareward/sdk/types.hpp"

namespace mr::sdk {

class TrainableModel;  // trainable_model.hpp (needs libtorch)

/// Static facts about a loaded model, for logs and the run manifest.
struct ModelInfo {
  std::string name;          ///< Config name of the model (`[models.NAME]`).
  std::string architecture;  ///< e.g. "LlamaForCausalLM".
  std::string path;          ///< Checkpoint directory.
  std::int64_t parameters = 0;
  std::int64_t context_length = 0;
};

/// A request to score `completion` as the assistant's reply to `messages`.
struct ScoreRequest {
  std::string id;
  Conversation messages;   ///< Rendered with the chat template + generation prompt.
  std::string completion;  ///< Assistant content; the end-of-turn token is appended, as in DPO.
};

/// Log-probabilities of a completion's tokens given the prompt (the quantity DPO needs).
struct ScoreResult {
  std::string request_id;
  double logprob_sum = 0.0;             ///< Sum over the completion tokens (incl. end of turn).
  std::vector<double> token_logprobs;   ///< One per completion token, in order.
  std::vector<std::int64_t> token_ids;  ///< The completion tokens scored.
  std::string error;                    ///< Non-empty when this request failed.
};

/// A loaded model. Created by the factory from a `[models.NAME]` table (with `type` naming the
/// backend plugin). Methods are called from the host's main thread, one at a time; a backend may
/// use `HostContext::threads()` threads internally.
class ModelBackend {
 public:
  virtual ~ModelBackend();

  /// Required. Facts about the loaded model.
  virtual ModelInfo info() const = 0;

  /// Required. Generates completions for every request; returns one result per request, in the
  /// same order. Must be deterministic for equal (request, seed) regardless of how the host
  /// batches requests. A request that fails sets GenerationResult::error rather than throwing;
  /// throwing (BackendError) aborts the stage.
  virtual std::vector<GenerationResult> generate(
      const std::vector<GenerationRequest>& requests) = 0;

  /// Required. Number of tokens `text` encodes to (no special tokens added).
  virtual std::int64_t count_tokens(std::string_view text) const = 0;

  /// Optional. The token ids `text` encodes to (no special tokens added), for tokenize
  /// endpoints. Default: throws BackendError("tokenize not supported").
  virtual std::vector<std::int64_t> tokenize(std::string_view text) const;

  /// Optional. True when generate() honours GenerationRequest::prompt_text. Default: false.
  virtual bool supports_prompt_text() const { return false; }

  /// Optional. Frees what generation holds (an accelerator, managed inference servers) while the
  /// host trains another model; the next generate(), score() or reload() takes it back.
  /// Default: nothing.
  virtual void suspend() {}

  /// Optional. True when generation runs outside this process, on servers every rank of a
  /// distributed run would share (an inference server): the host then generates through this
  /// object on rank 0 only instead of sharding requests across ranks. Default: false.
  virtual bool generates_remotely() const { return false; }

  /// Optional. Log-probabilities of each request's completion, one result per request in order.
  /// Default: throws BackendError("scoring not supported").
  virtual std::vector<ScoreResult> score(const std::vector<ScoreRequest>& requests);

  /// Optional. The training view of this model, or nullptr when the backend cannot train.
  /// The returned object is owned by the backend and lives as long as it.
  virtual TrainableModel* trainable() { return nullptr; }

  /// Optional. Reloads weights from an HF-layout checkpoint directory written by an optimizer
  /// (the next iteration's model). Default: throws BackendError("reload not supported").
  virtual void reload(const std::filesystem::path& checkpoint_dir);
};

}  // namespace mr::sdk
