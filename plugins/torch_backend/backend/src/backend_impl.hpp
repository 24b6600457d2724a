/// @file backend_impl.hpp
/// Internal: the TorchBackend class shared by backend.cpp (loading, scoring, training view) and
/// generation.cpp (sampling). Includes libtorch; not installed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "metareward/chat/chat_template.hpp"
#include "metareward/sdk/host.hpp"
#include "metareward/sdk/model_backend.hpp"
#include "metareward/sdk/trainable_model.hpp"
#include "metareward/tokenizer/tokenizer.hpp"
#include "metareward/torch_backend_plugin/torch_backend.hpp"
#include "metareward/torch_model/causal_lm.hpp"
#include "metareward/torch_model/prefix_cache.hpp"

namespace mr::plugins::torch_backend {

class TorchBackend;

/// The training view: the backend's own model (no copy), tokenized with its chat template.
class TorchTrainableModel : public mr::sdk::TrainableModel {
 public:
  explicit TorchTrainableModel(TorchBackend& backend) : backend_(backend) {}
  torch::Tensor forward(const torch::Tensor& input_ids,
                        const torch::Tensor& attention_mask) override;
  torch::Tensor target_logprobs(const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask,
                                const torch::Tensor& target_rows,
                                const torch::Tensor& target_ids) override;
  bool supports_shared_prefix() const override { return true; }
  torch::Tensor branched_target_logprobs(const torch::Tensor& input_ids,
                                         const torch::Tensor& branch_ids,
                                         const torch::Tensor& position_ids,
                                         const torch::Tensor& target_rows,
                                         const torch::Tensor& target_ids) override;
  std::vector<torch::Tensor> parameters() override;
  mr::sdk::TokenizedExample tokenize(const mr::sdk::Conversation& prompt,
                                     const std::string& response,
                                     bool response_complete) const override;
  void set_training(bool training) override;
  void save(const std::filesystem::path& dir) const override;
  bool supports_lora() const override;
  void add_lora(const mr::sdk::LoraSettings& settings) override;
  void set_lora_enabled(bool enabled) override;
  void save_lora(const std::filesystem::path& dir) const override;
  void merge_lora() override;
  void remove_lora() override;
  bool set_gradient_checkpointing(bool enabled) override;

 private:
  TorchBackend& backend_;
};

/// The `torch` model backend.
class TorchBackend : public mr::sdk::ModelBackend {
 public:
  explicit TorchBackend(mr::sdk::HostContext& ctx);
  ~TorchBackend() override;

  mr::sdk::ModelInfo info() const override;
  std::vector<mr::sdk::GenerationResult> generate(
      const std::vector<mr::sdk::GenerationRequest>& requests) override;
  std::int64_t count_tokens(std::string_view text) const override;
  std::vector<std::int64_t> tokenize(std::string_view text) const override;
  bool supports_prompt_text() const override { return true; }
  std::vector<mr::sdk::ScoreResult> score(
      const std::vector<mr::sdk::ScoreRequest>& requests) override;
  mr::sdk::TrainableModel* trainable() override { return &trainable_; }
  void reload(const std::filesystem::path& checkpoint_dir) override;

  /// Prompt tokens (chat template + generation prompt) and response tokens (content +
  /// assistant suffix), each encoded on its own exactly as generation sees them.
  mr::sdk::TokenizedExample tokenize_example(const mr::sdk::Conversation& prompt,
                                             std::string_view response,
                                             bool response_complete = true) const;
  /// Token ids of `conversation` rendered with the generation prompt.
  std::vector<std::int64_t> encode_prompt(const mr::sdk::Conversation& conversation) const;

  /// The model with its weights in the normal layout (unpacked first if generation packed
  /// them), for the training view and anything else that reads or writes parameters.
  mr::torch_backend::CausalLM& model();
  const mr::torch_backend::CausalLM& model() const;
  const std::filesystem::path& checkpoint_dir() const { return path_; }
  /// Where the current weights came from (the configured path, or the last reload()).
  const std::filesystem::path& loaded_from() const { return loaded_from_; }
  /// The `adapter` merged into the configured checkpoint at load ("" = none).
  const std::filesystem::path& merged_adapter() const { return adapter_; }
  /// The host's logger.
  mr::sdk::Logger& logger() const { return ctx_.logger(); }
  std::int64_t max_context() const { return max_context_; }

  /// Prompt-token accounting of every generate() since construction.
  const PrefillCounters& prefill_counters() const { return counters_; }

 private:
  /// One sampled row of a generation (defined in generation.cpp).
  struct Row;
  /// Generates every row of `rows` (in order of admission), at most max_batch_size at a time,
  /// calling `finished` on each as it finishes.
  void run_rows(std::vector<Row>& rows, const std::function<void(Row&)>& finished);
  /// A key of the current weights (every parameter's storage and version, the adapters', and
  /// whether they are enabled): the prefix cache is emptied when it changes.
  std::uint64_t weights_key() const;
  /// The model for generate() and score(): its weights packed for inference where the CPU
  /// and dtype allow (CausalLMImpl::pack_inference_weights), once until model() unpacks them.
  mr::torch_backend::CausalLMImpl& inference_model();

  mr::sdk::HostContext& ctx_;
  std::filesystem::path path_;         // Configured checkpoint (tokenizer files).
  std::filesystem::path loaded_from_;  // Where the current weights came from.
  std::filesystem::path adapter_;      // The adapter merged at load ("" = none).
  std::string name_;
  mr::tokenizer::Tokenizer tokenizer_;
  std::optional<mr::chat::ChatTemplate> template_;
  std::vector<std::int64_t> stop_ids_;       // Sorted.
  std::vector<std::string> template_stops_;  // Stop strings the chat template needs.
  mr::torch_backend::CausalLM model_{nullptr};
  // Generation samples only ids the tokenizer can decode: [0, sample_vocab_) minus banned_ids_
  // (a model's vocab_size often exceeds its tokenizer's, e.g. padded embedding matrices).
  std::int64_t sample_vocab_ = 0;
  std::vector<std::int64_t> banned_ids_;
  std::int64_t max_batch_size_ = 32;
  bool continuous_batching_ = true;
  std::unique_ptr<mr::torch_backend::PrefixCache> prefix_cache_;
  PrefillCounters counters_;
  std::int64_t max_context_ = 0;
  TorchTrainableModel trainable_{*this};
};

}  // namespace mr::plugins::torch_backend
