/// @file causal_lm.hpp
/// Llama-family decoder-only causal LM (LlamaForCausalLM, Qwen2ForCausalLM) as a
/// torch::nn::Module with Hugging Face parameter names, batched forward with left padding and a
/// KV cache, and HF-layout checkpoint loading/saving.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "metareward/safetensors/safetensors.hpp"
#include "metareward/torch_model/kv_cache.hpp"
#include "metareward/torch_model/model_config.hpp"

namespace mr::sdk {
struct LoraSettings;
}  // namespace mr::sdk

namespace mr::torch_backend {

namespace detail {
class DecoderImpl;
class LinearImpl;
}  // namespace detail

/// A LoRA adapter's settings, named as PEFT's LoraConfig names them.
struct LoraConfig {
  std::int64_t r = 16;    ///< Rank (>= 1).
  double alpha = 32.0;    ///< lora_alpha: the update is scaled by alpha / r.
  double dropout = 0.05;  ///< lora_dropout on the adapter's input in training mode.
  /// Linear layers to adapt: a name matches a module whose HF name equals it or ends with
  /// "." + it ("q_proj" matches every layer's self_attn.q_proj).
  std::vector<std::string> target_modules{"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                          "gate_proj", "up_proj", "down_proj"};
  bool use_rslora = false;  ///< Scale by alpha / sqrt(r) instead (PEFT's rsLoRA).
  /// The factor applied to B A.
  double scale() const;
};

/// The model-side LoraConfig of the SDK's LoraSettings (r, alpha, dropout, target_modules).
LoraConfig to_lora_config(const mr::sdk::LoraSettings& settings);

/// One adapted linear layer; the tensors are the model's own (not copies).
struct LoraLayer {
  std::string module;  ///< HF module name, e.g. "model.layers.0.self_attn.q_proj".
  torch::Tensor a;     ///< lora_A.weight [r, in], float32.
  torch::Tensor b;     ///< lora_B.weight [out, r], float32.
};

/// Where and in which dtype a model's parameters and computations live.
struct ModelOptions {
  /// Parameter and compute dtype: float32 (default) or bfloat16 / float16. RMSNorm and softmax
  /// always compute in float32 (as HF does); logits are returned in float32.
  torch::Dtype dtype = torch::kFloat32;
  /// Device of the parameters; inputs may live anywhere (they are moved).
  torch::Device device = torch::kCPU;
};

/// The model. Parameters are registered under HF names (`named_parameters()` yields
/// "model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", ..., "lm_head.weight"
/// unless tied) in parameter_specs() order. Construction allocates uninitialized parameters;
/// fill them with load_weights() or initialize(). Not thread-safe. Does not set the number of
/// torch threads (the backend calls torch::set_num_threads from its configuration). Wrap
/// inference in c10::InferenceMode (or torch::NoGradGuard); forward() does not.
class CausalLMImpl : public torch::nn::Module {
 public:
  /// Builds the module tree for `config`. Throws BackendError on an unsupported dtype.
  explicit CausalLMImpl(ModelConfig config, const ModelOptions& options = {});
  ~CausalLMImpl() override;

  /// The config the model was built from.
  const ModelConfig& config() const { return config_; }
  /// Parameter / compute dtype (that of the parameters now).
  torch::Dtype dtype() const;
  /// Parameter device (that of the parameters now, e.g. after `to(torch::kCUDA)`).
  torch::Device device() const;

  /// Logits [B, T, V] (float32) for `input_ids` [B, T] (int64).
  /// - `attention_mask` [B, P + T] (P = cache length, 0 without a cache), 1 = real token,
  ///   0 = padding (left padding for generation; right padding also works without a cache).
  ///   Keys at 0 positions are never attended to. Queries at padding positions produce finite
  ///   garbage (ignore their outputs).
  /// - `position_ids` [B, T]: RoPE positions of the new tokens, e.g. the last T columns of
  ///   position_ids_from_mask(attention_mask).
  /// - `cache`: nullptr for a full pass (training), or the generation's cache, whose length is
  ///   P; the pass appends the T new keys/values and advances it to P + T.
  /// Differentiable when grad mode is on (use no cache then). Throws BackendError on
  /// inconsistent shapes or token ids outside [0, vocab_size).
  torch::Tensor forward(const torch::Tensor& input_ids,
                        const torch::Tensor& attention_mask,
                        const torch::Tensor& position_ids,
                        KVCache* cache = nullptr);

  /// forward() up to the final norm: hidden states [B, T, hidden] in the model dtype. Use with
  /// logits() to project only the positions needed (e.g. the last one while generating).
  torch::Tensor hidden_states(const torch::Tensor& input_ids,
                              const torch::Tensor& attention_mask,
                              const torch::Tensor& position_ids,
                              KVCache* cache = nullptr);

  /// Float32 logits [..., V] of hidden states [..., hidden] (lm_head, or the embedding matrix
  /// when tied).
  torch::Tensor logits(const torch::Tensor& hidden);

  /// log softmax(logits)[target] for the positions `target_rows` [R] (int64 indices into the
  /// flattened [B * T] positions of `input_ids`) and next tokens `target_ids` [R]: [R] float32,
  /// what forward() followed by log_softmax and gather gives, up to float rounding. The logits
  /// are computed in blocks of rows and recomputed in backward, so neither the [B, T, V] logits
  /// nor their gradient is ever held: training memory no longer grows with batch x sequence x
  /// vocabulary. Differentiable (w.r.t. the hidden states and lm_head / tied embeddings) when
  /// grad mode is on. `block_rows`: rows of logits per block (0: kLogitBlockElements / vocab).
  /// Throws BackendError on a row or token id out of range.
  torch::Tensor target_logprobs(const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask,
                                const torch::Tensor& position_ids,
                                const torch::Tensor& target_rows,
                                const torch::Tensor& target_ids,
                                std::int64_t block_rows = 0);

  /// target_logprobs() of rows that pack a shared prefix and its continuations (what a DPO
  /// pair's prompt, chosen and rejected response become in one row): `branch_ids` [B, T] tags
  /// each token 0 (prefix), k >= 1 (continuation k) or -1 (padding); a token attends to the
  /// earlier prefix tokens and the earlier tokens of its own continuation, at `position_ids`
  /// [B, T] (each continuation restarting after the prefix). Each log-prob equals
  /// target_logprobs() of the unpacked sequence up to float rounding, and the prefix's
  /// activations are computed (and back-propagated) once. Throws BackendError on shapes or
  /// branch ids that do not fit.
  torch::Tensor branched_target_logprobs(const torch::Tensor& input_ids,
                                         const torch::Tensor& branch_ids,
                                         const torch::Tensor& position_ids,
                                         const torch::Tensor& target_rows,
                                         const torch::Tensor& target_ids,
                                         std::int64_t block_rows = 0);

  /// Logits computed at once by target_logprobs() by default: ~32 MiB of float32 per block.
  static constexpr std::int64_t kLogitBlockElements = std::int64_t{1} << 23;

  /// Default `chunk_tokens` of prefill(): batch rows x new tokens per forward pass. At this size
  /// the matrix products still run near the GEMM rate, while a layer's transient activations
  /// (attention scores and probabilities over the whole prefix, the SwiGLU intermediate) stay at
  /// a few tens of MiB for ~100M-1B parameter models instead of growing with rows x prompt length.
  static constexpr std::int64_t kPrefillChunkTokens = 512;

  /// Feeds a (left-padded) prompt batch `input_ids` [B, T] into `cache` and returns the hidden
  /// states of its last position [B, hidden] (model dtype; project them with logits()).
  /// `attention_mask` is [B, P + T] (P = cache.length()) and `position_ids` [B, T], as for
  /// hidden_states(). The prompt goes through the model in consecutive chunks of
  /// max(1, `chunk_tokens` / B) positions, each attending to the cache filled by the previous
  /// ones, so peak memory is bounded by the chunk instead of B x T. Same result as one
  /// hidden_states() call up to float rounding (the same keys and values are attended to).
  /// Throws BackendError on inconsistent shapes or `chunk_tokens` < 1.
  torch::Tensor prefill(const torch::Tensor& input_ids,
                        const torch::Tensor& attention_mask,
                        const torch::Tensor& position_ids,
                        KVCache& cache,
                        std::int64_t chunk_tokens = kPrefillChunkTokens);

  /// An empty KV cache for `batch_size` rows of up to `capacity` positions, in the model's
  /// dtype and device.
  KVCache make_cache(std::int64_t batch_size, std::int64_t capacity) const;

  /// Sets every parameter to the value init_random_checkpoint() writes for `seed`.
  void initialize(std::uint64_t seed);

  // ---- Packed inference weights (packed_linear.hpp) ---------------------------------------
  /// Rewrites the weights of every decoder linear layer and of the LM head (the embedding
  /// matrix when tied) into packed_linear()'s layout, in place (no memory added), so that
  /// inference forwards run packed_linear(): decode steps and prefill chunks 15-25 % faster on
  /// float32 CPU models. Only where packable_weight() holds (float32, CPU, AVX-512F within
  /// MR_MAX_CPU_ISA) and no parameter holds a gradient (a training step in flight: the
  /// optimizer would apply it to packed values); returns whether the weights are packed now.
  /// While packed, a parameter's values are not its weights: forwards that record gradients,
  /// target_logprobs(), load_weights(), save_checkpoint(), initialize() and the LoRA calls that
  /// read base weights throw BackendError until unpack_inference_weights(). Biases, norms and
  /// the adapters' tensors are not packed. The parameters' versions do not change.
  bool pack_inference_weights();
  /// Restores the weights pack_inference_weights() rewrote, bit for bit. No-op when unpacked.
  void unpack_inference_weights();
  /// Whether the weights are in the packed inference layout.
  bool inference_weights_packed() const { return *packed_; }
  /// Throws BackendError naming `operation` while the weights are packed.
  void require_unpacked(const char* operation) const;

  // ---- LoRA (lora.cpp) -------------------------------------------------------------------

  /// Attaches a fresh adapter to every linear layer `config` targets: A ~ U(-1/sqrt(in),
  /// 1/sqrt(in)) drawn from `seed` (PEFT's kaiming_uniform_(a=sqrt(5))), B = 0, so outputs are
  /// unchanged until B trains. The base parameters stop requiring grad. The adapter is not a
  /// registered parameter: named_parameters(), load_weights() and save_checkpoint() see the base
  /// model. Throws BackendError when an adapter is attached already, r < 1, alpha <= 0, dropout
  /// outside [0, 1) or a target matches no linear layer.
  void add_lora(const LoraConfig& config, std::uint64_t seed);
  /// Whether an adapter is attached.
  bool has_lora() const { return lora_.has_value(); }
  /// The attached adapter's settings. Throws BackendError without one.
  const LoraConfig& lora_config() const;
  /// The adapted layers in module order (empty without an adapter).
  std::vector<LoraLayer> lora_layers() const;
  /// What trains: with an adapter its tensors (A then B per layer, in module order), else every
  /// parameter. A stable order, as the trainer's resumable state needs.
  std::vector<torch::Tensor> trainable_parameters();
  /// Whether forward() applies the adapter (true after add_lora()).
  void set_lora_enabled(bool enabled);
  /// Whether an adapter is attached and enabled.
  bool lora_active() const { return lora_.has_value() && *lora_enabled_; }
  /// A parameter's value with the adapter folded in, W + scale·B A rounded to the model dtype
  /// (what merge_lora() would store), or the parameter itself when its layer has no adapter.
  torch::Tensor merged_parameter(const std::string& name) const;
  /// Folds the adapter into the weights (W <- merged_parameter) and detaches it; the base
  /// parameters get back the requires_grad they had before add_lora(). No-op without an adapter.
  void merge_lora();
  /// Detaches the adapter without merging; the base parameters get back their requires_grad.
  /// No-op without an adapter.
  void remove_lora();

  /// On: a training forward (grad mode, no cache) keeps only each decoder layer's input and
  /// recomputes the layer during backward, restoring the RNG so dropout draws the same masks.
  /// Gradients are those of the plain path.
  void set_gradient_checkpointing(bool enabled) { checkpointing_ = enabled; }
  bool gradient_checkpointing() const { return checkpointing_; }

 private:
  ModelConfig config_;
  ModelOptions options_;
  std::shared_ptr<detail::DecoderImpl> model_;
  std::shared_ptr<detail::LinearImpl> lm_head_;  // nullptr when tied to the embeddings.
  torch::Tensor inv_freq_;                       // RoPE inverse frequencies [head_dim/2], f32.
  std::optional<LoraConfig> lora_;
  std::shared_ptr<bool> lora_enabled_ = std::make_shared<bool>(true);
  bool checkpointing_ = false;
  std::shared_ptr<bool> packed_ = std::make_shared<bool>(false);  // Shared with the layers.
  // The weights pack_inference_weights() rewrites, in module order.
  std::vector<torch::Tensor> packable_weights();
  std::vector<bool> base_requires_grad_;  // Saved by add_lora(), restored on merge/remove.
  // The decoder stack over `input_ids` with the additive attention mask `bias` [B, 1, 1, T, S]
  // (hidden_states() builds it from a padding mask, branched_target_logprobs() from branches).
  torch::Tensor run_layers(const torch::Tensor& input_ids,
                           const torch::Tensor& position_ids,
                           torch::Tensor bias,
                           KVCache* cache);
  // The shared tail of the two target_logprobs(): validated targets over [B, T, hidden] states.
  torch::Tensor hidden_target_logprobs(const torch::Tensor& hidden,
                                       const torch::Tensor& target_rows,
                                       const torch::Tensor& target_ids,
                                       std::int64_t block_rows);
  void restore_requires_grad();
};

/// Module holder (shared pointer) of CausalLMImpl.
TORCH_MODULE(CausalLM);

/// RoPE positions [B, S] for an attention mask [B, S] with left padding: the index of each
/// position among its row's real tokens (cumsum(mask) - 1, clamped at 0 on the padding).
torch::Tensor position_ids_from_mask(const torch::Tensor& attention_mask);

/// Reads `dir`/config.json, builds the model with `options` and loads the weights
/// (model.safetensors or sharded via model.safetensors.index.json). Throws BackendError.
CausalLM load_causal_lm(const std::filesystem::path& dir, const ModelOptions& options = {});

/// Loads the checkpoint's weights in `dir` into `model`, converting F32/F16/BF16 to the model
/// dtype. Every parameter must be present with its exact shape and no unknown tensor may be
/// present (a tied "lm_head.weight" and "*.rotary_emb.inv_freq" buffers are ignored); otherwise
/// throws BackendError listing the missing, unexpected and mis-shaped tensors.
void load_weights(CausalLMImpl& model, const std::filesystem::path& dir);

/// Options of save_checkpoint().
struct SaveOptions {
  /// On-disk dtype of the weights.
  safetensors::DType dtype = safetensors::DType::kF32;
  /// Copy tokenizer.json, tokenizer_config.json, special_tokens_map.json and
  /// generation_config.json from here (e.g. the checkpoint the model was loaded from); without
  /// it only a generation_config.json built from the config is written.
  std::optional<std::filesystem::path> copy_files_from;
};

/// Writes `model` to `dir` in HF layout (config.json, model.safetensors with metadata
/// format=pt, generation_config.json, tokenizer files per `options`), atomically: staged in a
/// sibling temporary directory renamed over `dir`. Throws BackendError.
void save_checkpoint(const CausalLMImpl& model,
                     const std::filesystem::path& dir,
                     const SaveOptions& options = {});

/// Writes the attached adapter to `dir` atomically in PEFT's layout: adapter_config.json
/// (peft_type LORA, task_type CAUSAL_LM, r, lora_alpha, lora_dropout, target_modules,
/// `base_model_name_or_path`) and adapter_model.safetensors with PEFT's tensor names
/// ("base_model.model.<module>.lora_A.weight" [r, in], "...lora_B.weight" [out, r], float32).
/// Throws BackendError without an adapter.
void save_lora_adapter(const CausalLMImpl& model,
                       const std::filesystem::path& dir,
                       const std::string& base_model_name_or_path);

/// Reads the PEFT LoRA adapter in `dir` (adapter_config.json + adapter_model.safetensors),
/// checks every tensor against `model`'s layers and folds it into the weights (model without an
/// adapter of its own). Throws BackendError naming the file and tensor for what does not fit:
/// another peft_type, DoRA, bias training, fan_in_fan_out, rank/alpha patterns,
/// modules_to_save, unknown modules or wrong shapes.
void merge_lora_adapter(CausalLMImpl& model, const std::filesystem::path& dir);

}  // namespace mr::torch_backend
