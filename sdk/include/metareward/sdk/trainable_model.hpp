/// @file trainable_model.hpp
/// The training side of a model backend. The only SDK header that includes libtorch; include it
/// from optimizer and backend implementations only.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "metareward/sdk/types.hpp"

namespace mr::sdk {

/// Token ids of one training example: prompt tokens then response tokens.
struct TokenizedExample {
  std::vector<std::int64_t> prompt_ids;    ///< Rendered conversation up to the assistant turn.
  std::vector<std::int64_t> response_ids;  ///< Assistant content plus the end-of-turn token.
};

/// A low-rank adapter (LoRA, Hu et al. 2021) in PEFT's terms: each targeted linear layer
/// y = x W^T computes y = x W^T + (alpha / r) · dropout(x) A^T B^T with trainable A [r, in]
/// (Kaiming-uniform init) and B [out, r] (zeros, so a fresh adapter leaves the model unchanged).
struct LoraSettings {
  int r = 16;             ///< Rank.
  double alpha = 32.0;    ///< Scaling numerator: the update is scaled by alpha / r.
  double dropout = 0.05;  ///< Dropout on the adapter's input while training (0 = off).
  /// Module names as PEFT matches them: the last component of a linear layer's name.
  std::vector<std::string> target_modules{"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                          "gate_proj", "up_proj", "down_proj"};
  std::uint64_t seed = 0;  ///< Seeds the initialisation of A.
};

/// A model an optimizer can train. Owned by its ModelBackend. Not thread-safe.
class TrainableModel {
 public:
  virtual ~TrainableModel();

  /// Required. Logits [batch, seq, vocab] (float32) for `input_ids` [batch, seq] (int64), with
  /// `attention_mask` [batch, seq] (1 = real token). Differentiable when grad mode is on.
  virtual torch::Tensor forward(const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask) = 0;

  /// Optional. Log-probabilities [R] (float32, or float64 for float64 logits) of the next tokens
  /// `target_ids` [R] (int64) at the positions `target_rows` [R] (int64 indices into the flattened
  /// [batch * seq] positions of `input_ids`), i.e. log softmax(forward(...)[row])[target] per
  /// entry; differentiable when grad mode is on. This is what preference and SFT losses need, and a
  /// backend can compute it without materialising [batch, seq, vocab] logits (and their gradient):
  /// the default calls forward() and gathers (half-precision logits in float32).
  virtual torch::Tensor target_logprobs(const torch::Tensor& input_ids,
                                        const torch::Tensor& attention_mask,
                                        const torch::Tensor& target_rows,
                                        const torch::Tensor& target_ids);

  /// Optional. Whether branched_target_logprobs() is implemented (false by default). When it is,
  /// the trainers compute a preference pair's shared prompt once for both responses.
  virtual bool supports_shared_prefix() const;

  /// Optional. target_logprobs() of rows that each pack one shared prefix followed by several
  /// continuations of it (e.g. a DPO prompt, then its chosen and its rejected response).
  /// `branch_ids` [batch, seq] (int64) tags every token: 0 = the shared prefix, k >= 1 =
  /// continuation k, -1 = padding. A token attends to the earlier prefix tokens and the earlier
  /// tokens of its own continuation only, at the RoPE positions `position_ids` [batch, seq] of
  /// its unpacked sequence (each continuation restarts where the prefix ends). Every log-prob then
  /// equals target_logprobs() of the unpacked prefix + continuation, up to float rounding, and
  /// the prefix is computed once. Throws PluginError when unsupported.
  virtual torch::Tensor branched_target_logprobs(const torch::Tensor& input_ids,
                                                 const torch::Tensor& branch_ids,
                                                 const torch::Tensor& position_ids,
                                                 const torch::Tensor& target_rows,
                                                 const torch::Tensor& target_ids);

  /// Required. Trainable parameters, in a stable order (for optimizer state save/load).
  virtual std::vector<torch::Tensor> parameters() = 0;

  /// Required. Tokenizes `prompt` with the chat template exactly as at generation time and
  /// `response` as the assistant's content, followed by the end-of-turn token when
  /// `response_complete` (false for a response that was cut at max_new_tokens: it did not end).
  virtual TokenizedExample tokenize(const Conversation& prompt,
                                    const std::string& response,
                                    bool response_complete) const = 0;

  /// Required. Switches dropout etc. on (true) or off.
  virtual void set_training(bool training) = 0;

  /// Required. Writes the model in HF layout (config.json, model.safetensors, tokenizer files)
  /// to `dir`, atomically. With an adapter attached, the weights written are the merged ones
  /// (base + adapter) and the model in memory is unchanged.
  virtual void save(const std::filesystem::path& dir) const = 0;

  /// Optional. Whether the add_lora() family is implemented (false by default).
  virtual bool supports_lora() const;

  /// Optional. Attaches a fresh adapter to every linear layer named in `settings`; from then on
  /// parameters() returns the adapter's tensors only (the base weights are frozen). Throws
  /// PluginError when unsupported, ConfigError for a target no layer matches.
  virtual void add_lora(const LoraSettings& settings);

  /// Optional. Whether forward() applies the attached adapter (true after add_lora()); false
  /// gives the base model's outputs, e.g. DPO's reference log-probs without a second copy.
  virtual void set_lora_enabled(bool enabled);

  /// Optional. Writes the attached adapter to `dir` atomically in PEFT's layout
  /// (adapter_config.json with base_model_name_or_path, adapter_model.safetensors with PEFT's
  /// tensor names), so that PEFT's PeftModel.from_pretrained loads it.
  virtual void save_lora(const std::filesystem::path& dir) const;

  /// Optional. Folds the adapter into the base weights (W += alpha/r · B A, rounded to the
  /// model dtype) and detaches it: parameters() is the full set again.
  virtual void merge_lora();

  /// Optional. Detaches the adapter without merging it (the base model as it was loaded); e.g.
  /// after a failed training run. No-op without an adapter.
  virtual void remove_lora();

  /// Optional. true: forward() keeps only each decoder layer's input and recomputes the layer's
  /// activations during backward (less memory, one more forward). Returns whether the model
  /// does what was asked (false by default for true).
  virtual bool set_gradient_checkpointing(bool enabled);
};

}  // namespace mr::sdk
