/// @file model_config.hpp
/// The Hugging Face `config.json` of a Llama-family causal LM (LlamaForCausalLM,
/// Qwen2ForCausalLM), its RoPE frequencies and its parameter list. No libtorch.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mr::torch_backend {

/// Architectures this backend implements.
enum class Architecture {
  kLlama,  ///< "LlamaForCausalLM": optional biases on all attention projections.
  kQwen2,  ///< "Qwen2ForCausalLM": biases on q/k/v projections, none on o_proj.
};

/// `rope_scaling` of config.json. `type` "default" means no scaling.
struct RopeScaling {
  std::string type = "default";   ///< "default", "linear" or "llama3".
  double factor = 1.0;            ///< linear, llama3: frequency divisor for long wavelengths.
  double low_freq_factor = 1.0;   ///< llama3 only.
  double high_freq_factor = 4.0;  ///< llama3 only.
  std::int64_t original_max_position_embeddings = 8192;  ///< llama3 only.
};

/// A validated config.json. Defaults are HF's for the architecture.
struct ModelConfig {
  Architecture architecture = Architecture::kLlama;  ///< Parsed `architectures[0]`.
  std::string architecture_name;                     ///< e.g. "LlamaForCausalLM".
  std::int64_t hidden_size = 0;                      ///< Required.
  std::int64_t intermediate_size = 0;                ///< Required (SwiGLU width).
  std::int64_t num_hidden_layers = 0;                ///< Required.
  std::int64_t num_attention_heads = 0;              ///< Required.
  std::int64_t num_key_value_heads = 0;              ///< Default: num_attention_heads.
  std::int64_t head_dim = 0;                         ///< Default: hidden / heads.
  std::int64_t vocab_size = 0;                       ///< Required.
  std::int64_t max_position_embeddings = 0;          ///< Default 2048 (Llama), 32768 (Qwen2).
  double rms_norm_eps = 1e-6;                        ///< Default 1e-6.
  double rope_theta = 10000.0;                       ///< Default 10000.
  double initializer_range = 0.02;                   ///< Std of random init (default 0.02).
  RopeScaling rope_scaling;                          ///< Default: none.
  bool tie_word_embeddings = false;                  ///< lm_head shares embed_tokens.
  bool qkv_bias = false;  ///< q/k/v_proj have biases (Qwen2 always; Llama `attention_bias`).
  bool o_bias = false;    ///< o_proj has a bias (Llama `attention_bias`).
  bool mlp_bias = false;  ///< gate/up/down_proj have biases (Llama `mlp_bias`).
  std::optional<std::int64_t> bos_token_id;  ///< `bos_token_id` (null/absent = none).
  std::vector<std::int64_t> eos_token_ids;   ///< `eos_token_id`, int or list.
  std::optional<std::int64_t> pad_token_id;  ///< `pad_token_id`.
  std::string torch_dtype;  ///< `torch_dtype` as written ("bfloat16", ...; empty if absent).
  std::string json;         ///< The original file's JSON text (rewritten on save).
  std::string source;       ///< Where it was read from, for messages.
};

/// Parses and validates `file` (a config.json). Throws mr::sdk::BackendError naming the file
/// on unreadable/malformed JSON, an unsupported architecture ("unsupported architecture 'X' in
/// <file> (supported: LlamaForCausalLM, Qwen2ForCausalLM)"), a missing or mistyped required
/// field, inconsistent head counts, an unsupported `hidden_act` or `rope_scaling` type, or
/// dimensions no real model has (above 2^24, layers above 2^16, a parameter count beyond int64).
ModelConfig parse_model_config(const std::filesystem::path& file);

/// parse_model_config() on JSON text; `source` names it in messages.
ModelConfig parse_model_config_text(std::string_view json_text, const std::string& source);

/// The RoPE inverse frequencies (head_dim / 2 values): theta^(-2i/head_dim), then the
/// `rope_scaling` adjustment ("linear": / factor; "llama3": exactly HF's
/// `_compute_llama3_parameters`). Computed in double; the model rounds them to float32.
std::vector<double> rope_inv_freq(const ModelConfig& config);

/// One parameter tensor of the model, in HF naming.
struct ParameterSpec {
  /// How HF initializes it: normal(0, initializer_range), zeros (biases) or ones (norms).
  enum class Init { kNormal, kZeros, kOnes };
  std::string name;                 ///< e.g. "model.layers.0.self_attn.q_proj.weight".
  std::vector<std::int64_t> shape;  ///< e.g. {hidden, hidden}.
  Init init = Init::kNormal;        ///< Initialization rule.
};

/// Every parameter of the model `config` describes, in module registration order (embeddings,
/// layers 0..N-1 with attention q/k/v/o, mlp gate/up/down, the two norms, final norm, lm_head
/// unless tied). This is the model's `named_parameters()` and a checkpoint's tensor set.
std::vector<ParameterSpec> parameter_specs(const ModelConfig& config);

/// Total number of parameter elements (tied embeddings counted once).
std::int64_t parameter_count(const ModelConfig& config);

}  // namespace mr::torch_backend
