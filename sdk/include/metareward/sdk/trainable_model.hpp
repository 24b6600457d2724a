/// @file trainable_model.hpp
/// The training side of a model backend. The only SDK header that includes libtorch; include it
/// from optimizer and backend implementations only.
#pragma once

#include <torch/torch.h>

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

/// A model an optimizer can train. Owned by its ModelBackend. Not thread-safe.
class TrainableModel {
 public:
  virtual ~TrainableModel();

  /// Required. Logits [batch, seq, vocab] (float32) for `input_ids` [batch, seq] (int64), with
  /// `attention_mask` [batch, seq] (1 = real token). Differentiable when grad mode is on.
  virtual torch::Tensor forward(const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask) = 0;

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
  /// to `dir`, atomically.
  virtual void save(const std::filesystem::path& dir) const = 0;
};

}  // namespace mr::sdk
