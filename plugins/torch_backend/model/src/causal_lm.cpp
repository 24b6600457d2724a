/// @file causal_lm.cpp
/// The Llama / Qwen2 decoder: embeddings, RMSNorm, RoPE, grouped-query attention over a KV
/// cache, SwiGLU MLP, lm_head. Follows HF's modeling_llama.py / modeling_qwen2.py numerics.
#include "metareward/torch_model/causal_lm.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "metareward/sdk/error.hpp"
#include "metareward/torch_model/checkpoint_files.hpp"

namespace mr::torch_backend {

using mr::sdk::BackendError;

namespace detail {

// x W^T + b. A single row (batch-1 decoding) goes through gemv: OpenBLAS's gemm packs the whole
// weight even for one row, which measured 2-4x slower than gemv at these shapes.
torch::Tensor linear(const torch::Tensor& x,
                     const torch::Tensor& weight,
                     const torch::Tensor& bias) {
  if (x.numel() == weight.size(1) && x.dim() >= 1) {
    auto sizes = x.sizes().vec();
    sizes.back() = weight.size(0);
    auto y = torch::mv(weight, x.reshape({-1}));
    if (bias.defined()) y = y + bias;
    return y.view(sizes);
  }
  return torch::linear(x, weight, bias);
}

// y = x W^T + b with parameters "weight" [out, in] and optional "bias" [out]. Parameters are
// allocated uninitialized: checkpoints (or initialize()) provide every value.
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(std::int64_t in, std::int64_t out, bool bias, const torch::TensorOptions& opts) {
    weight = register_parameter("weight", torch::empty({out, in}, opts));
    if (bias) this->bias = register_parameter("bias", torch::empty({out}, opts));
  }
  torch::Tensor forward(const torch::Tensor& x) { return linear(x, weight, bias); }

  torch::Tensor weight;
  torch::Tensor bias;  // Undefined when absent.
};

// HF LlamaRMSNorm: normalizes in float32, casts back, then scales.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(std::int64_t dim, double eps, const torch::TensorOptions& opts) : eps_(eps) {
    weight = register_parameter("weight", torch::empty({dim}, opts));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const auto input_dtype = x.scalar_type();
    auto h = input_dtype == torch::kFloat32 ? x : x.to(torch::kFloat32);
    auto rstd = torch::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps_);
    h = h * rstd;
    if (input_dtype != torch::kFloat32) h = h.to(input_dtype);
    return weight * h;
  }

  torch::Tensor weight;

 private:
  double eps_;
};

// Per-forward state shared by all layers.
struct LayerContext {
  torch::Tensor cos;   // [B, T, 1, head_dim], model dtype.
  torch::Tensor sin;   // [B, T, 1, head_dim].
  torch::Tensor bias;  // Additive attention mask [B, 1, 1, T, S] (0 or dtype lowest).
  KVCache* cache = nullptr;
  std::int64_t past = 0;
  bool inference = false;  // No autograd: in-place ops are allowed.
};

// rotate_half convention of HF Llama: (x1, x2) -> (-x2, x1) on the two halves of head_dim.
torch::Tensor apply_rope(const torch::Tensor& x,
                         const torch::Tensor& cos,
                         const torch::Tensor& sin) {
  const std::int64_t half = x.size(-1) / 2;
  auto x1 = x.narrow(-1, 0, half);
  auto x2 = x.narrow(-1, half, half);
  auto rotated = torch::cat({-x2, x1}, -1);
  return x * cos + rotated * sin;
}

class AttentionImpl : public torch::nn::Module {
 public:
  static constexpr std::int64_t kMaxScores = std::int64_t{1} << 24;  // 64 MB of float32.

  AttentionImpl(const ModelConfig& c, std::int64_t layer, const torch::TensorOptions& opts)
      : layer_(layer),
        heads_(c.num_attention_heads),
        kv_heads_(c.num_key_value_heads),
        head_dim_(c.head_dim),
        scale_(1.0 / std::sqrt(static_cast<double>(c.head_dim))) {
    const std::int64_t q_dim = heads_ * head_dim_, kv_dim = kv_heads_ * head_dim_;
    q_proj = register_module("q_proj",
                             std::make_shared<LinearImpl>(c.hidden_size, q_dim, c.qkv_bias, opts));
    k_proj = register_module("k_proj",
                             std::make_shared<LinearImpl>(c.hidden_size, kv_dim, c.qkv_bias, opts));
    v_proj = register_module("v_proj",
                             std::make_shared<LinearImpl>(c.hidden_size, kv_dim, c.qkv_bias, opts));
    o_proj = register_module("o_proj",
                             std::make_shared<LinearImpl>(q_dim, c.hidden_size, c.o_bias, opts));
  }

  torch::Tensor forward(const torch::Tensor& x, const LayerContext& ctx) {
    const std::int64_t b = x.size(0), t = x.size(1);
    const std::int64_t rep = heads_ / kv_heads_;
    auto q = apply_rope(q_proj->forward(x).view({b, t, heads_, head_dim_}), ctx.cos, ctx.sin);
    auto k = apply_rope(k_proj->forward(x).view({b, t, kv_heads_, head_dim_}), ctx.cos, ctx.sin);
    auto v = v_proj->forward(x).view({b, t, kv_heads_, head_dim_});
    k = k.transpose(1, 2);  // [B, kv, T, D]
    v = v.transpose(1, 2);
    if (ctx.cache != nullptr) std::tie(k, v) = ctx.cache->write(layer_, ctx.past, k, v);
    const std::int64_t s = k.size(2);
    // Grouped-query attention without materializing repeated K/V: query head h uses kv head
    // h / rep (HF repeat_kv), so fold the rep query heads of a group into the row dimension.
    auto qg = (q * scale_).view({b, t, kv_heads_, rep, head_dim_}).permute({0, 2, 3, 1, 4});
    auto kt = k.transpose(-1, -2);
    // Long prefills attend in query blocks so the score tensor stays below ~kMaxScores floats.
    const std::int64_t block =
        std::clamp<std::int64_t>(kMaxScores / std::max<std::int64_t>(1, b * heads_ * s), 1, t);
    std::vector<torch::Tensor> outs;
    for (std::int64_t t0 = 0; t0 < t; t0 += block) {
      const std::int64_t tc = std::min(block, t - t0);
      auto qc = (tc == t ? qg : qg.narrow(3, t0, tc)).reshape({b, kv_heads_, rep * tc, head_dim_});
      auto bias = tc == t ? ctx.bias : ctx.bias.narrow(3, t0, tc);
      auto scores = torch::matmul(qc, kt).view({b, kv_heads_, rep, tc, s});
      if (ctx.inference) {
        scores.add_(bias);
      } else {
        scores = scores + bias;
      }
      auto probs = scores.scalar_type() == torch::kFloat32
                       ? torch::softmax(scores, -1)
                       : torch::softmax(scores, -1, torch::kFloat32).to(scores.scalar_type());
      // [B, kv, rep*tc, D] -> [B, tc, heads * D]
      outs.push_back(torch::matmul(probs.view({b, kv_heads_, rep * tc, s}), v)
                         .view({b, heads_, tc, head_dim_})
                         .transpose(1, 2)
                         .reshape({b, tc, heads_ * head_dim_}));
    }
    auto out = outs.size() == 1 ? outs.front() : torch::cat(outs, 1);
    return o_proj->forward(out);
  }

  std::shared_ptr<LinearImpl> q_proj, k_proj, v_proj, o_proj;

 private:
  std::int64_t layer_, heads_, kv_heads_, head_dim_;
  double scale_;
};

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(const ModelConfig& c, const torch::TensorOptions& opts) {
    gate_proj = register_module(
        "gate_proj",
        std::make_shared<LinearImpl>(c.hidden_size, c.intermediate_size, c.mlp_bias, opts));
    up_proj = register_module("up_proj", std::make_shared<LinearImpl>(
                                             c.hidden_size, c.intermediate_size, c.mlp_bias, opts));
    down_proj = register_module(
        "down_proj",
        std::make_shared<LinearImpl>(c.intermediate_size, c.hidden_size, c.mlp_bias, opts));
  }
  torch::Tensor forward(const torch::Tensor& x, bool inference) {
    auto g = gate_proj->forward(x);
    if (inference) {
      torch::silu_(g);
      g.mul_(up_proj->forward(x));
    } else {
      g = torch::silu(g) * up_proj->forward(x);
    }
    return down_proj->forward(g);
  }

  std::shared_ptr<LinearImpl> gate_proj, up_proj, down_proj;
};

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const ModelConfig& c, std::int64_t layer, const torch::TensorOptions& opts) {
    self_attn = register_module("self_attn", std::make_shared<AttentionImpl>(c, layer, opts));
    mlp = register_module("mlp", std::make_shared<MlpImpl>(c, opts));
    input_layernorm = register_module(
        "input_layernorm", std::make_shared<RMSNormImpl>(c.hidden_size, c.rms_norm_eps, opts));
    post_attention_layernorm =
        register_module("post_attention_layernorm",
                        std::make_shared<RMSNormImpl>(c.hidden_size, c.rms_norm_eps, opts));
  }
  torch::Tensor forward(torch::Tensor x, const LayerContext& ctx) {
    auto attn = self_attn->forward(input_layernorm->forward(x), ctx);
    x = ctx.inference ? attn.add_(x) : x + attn;
    auto mlp_out = mlp->forward(post_attention_layernorm->forward(x), ctx.inference);
    return ctx.inference ? mlp_out.add_(x) : x + mlp_out;
  }

  std::shared_ptr<AttentionImpl> self_attn;
  std::shared_ptr<MlpImpl> mlp;
  std::shared_ptr<RMSNormImpl> input_layernorm, post_attention_layernorm;
};

// HF's LlamaModel ("model." prefix): embed_tokens, layers, norm.
class DecoderImpl : public torch::nn::Module {
 public:
  DecoderImpl(const ModelConfig& c, const torch::TensorOptions& opts) {
    embed_tokens = register_parameter_holder(c, opts);
    layers = register_module("layers", torch::nn::ModuleList());
    for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
      auto layer = std::make_shared<DecoderLayerImpl>(c, l, opts);
      layers->push_back(layer);
      layer_ptrs.push_back(layer);
    }
    norm =
        register_module("norm", std::make_shared<RMSNormImpl>(c.hidden_size, c.rms_norm_eps, opts));
  }

  std::shared_ptr<torch::nn::Module> embed_tokens;
  torch::Tensor embed_weight;  // embed_tokens.weight [V, hidden].
  torch::nn::ModuleList layers;
  std::vector<std::shared_ptr<DecoderLayerImpl>> layer_ptrs;
  std::shared_ptr<RMSNormImpl> norm;

 private:
  std::shared_ptr<torch::nn::Module> register_parameter_holder(const ModelConfig& c,
                                                               const torch::TensorOptions& opts) {
    // A plain module holding "weight" so the name is "model.embed_tokens.weight".
    auto holder = std::make_shared<torch::nn::Module>("Embedding");
    embed_weight =
        holder->register_parameter("weight", torch::empty({c.vocab_size, c.hidden_size}, opts));
    return register_module("embed_tokens", holder);
  }
};

}  // namespace detail

namespace {

torch::Tensor lowest_value_mask(const torch::Tensor& allowed, torch::Dtype dtype) {
  // A finite "minus infinity": fully masked rows (padding queries) then give a uniform
  // distribution instead of NaN. Half the dtype's lowest, so adding a score cannot overflow.
  const double lowest = dtype == torch::kBFloat16  ? -1.6947656946257677e38
                        : dtype == torch::kFloat16 ? -32752.0
                        : dtype == torch::kFloat64 ? std::numeric_limits<double>::lowest() / 2
                                                   : std::numeric_limits<float>::lowest() / 2;
  return torch::zeros(allowed.sizes(), torch::TensorOptions().dtype(dtype).device(allowed.device()))
      .masked_fill_(allowed.logical_not(), lowest);
}

}  // namespace

CausalLMImpl::CausalLMImpl(ModelConfig config, const ModelOptions& options)
    : torch::nn::Module("CausalLM"), config_(std::move(config)), options_(options) {
  MR_CHECK_AS(BackendError,
              options_.dtype == torch::kFloat32 || options_.dtype == torch::kBFloat16 ||
                  options_.dtype == torch::kFloat16,
              "model dtype must be float32, bfloat16 or float16, got ", options_.dtype);
  const auto opts = torch::TensorOptions().dtype(options_.dtype).device(options_.device);
  model_ = register_module("model", std::make_shared<detail::DecoderImpl>(config_, opts));
  if (!config_.tie_word_embeddings) {
    lm_head_ = register_module(
        "lm_head",
        std::make_shared<detail::LinearImpl>(config_.hidden_size, config_.vocab_size, false, opts));
  }
  const auto freqs = rope_inv_freq(config_);
  std::vector<float> f(freqs.begin(), freqs.end());
  inv_freq_ = register_buffer(
      "rotary_inv_freq",
      torch::tensor(f, torch::TensorOptions().dtype(torch::kFloat32)).to(options_.device));
}

CausalLMImpl::~CausalLMImpl() = default;

torch::Dtype CausalLMImpl::dtype() const {
  return model_->embed_weight.scalar_type();
}

torch::Device CausalLMImpl::device() const {
  return model_->embed_weight.device();
}

torch::Tensor CausalLMImpl::hidden_states(const torch::Tensor& input_ids_in,
                                          const torch::Tensor& attention_mask_in,
                                          const torch::Tensor& position_ids_in,
                                          KVCache* cache) {
  const auto device = model_->embed_weight.device();
  const auto dtype = model_->embed_weight.scalar_type();
  auto input_ids = input_ids_in.to(device, torch::kLong);
  auto attention_mask = attention_mask_in.to(device);
  auto position_ids = position_ids_in.to(device, torch::kLong);
  MR_CHECK_AS(BackendError, input_ids.dim() == 2 && input_ids.size(1) > 0,
              "forward: input_ids must be [batch, seq] with seq > 0, got ", input_ids.sizes());
  const std::int64_t b = input_ids.size(0), t = input_ids.size(1);
  const std::int64_t past = cache != nullptr ? cache->length() : 0;
  MR_CHECK_AS(BackendError, position_ids.sizes() == input_ids.sizes(), "forward: position_ids ",
              position_ids.sizes(), " must match input_ids ", input_ids.sizes());
  MR_CHECK_AS(BackendError,
              attention_mask.dim() == 2 && attention_mask.size(0) == b &&
                  attention_mask.size(1) == past + t,
              "forward: attention_mask must be [", b, ", ", past + t, "] (cached ", past, " + new ",
              t, "), got ", attention_mask.sizes());
  MR_CHECK_AS(BackendError, cache == nullptr || cache->batch_size() == b, "forward: the cache has ",
              cache ? cache->batch_size() : 0, " rows but the batch has ", b);
  {
    const auto lo = input_ids.min().item<std::int64_t>();
    const auto hi = input_ids.max().item<std::int64_t>();
    MR_CHECK_AS(BackendError, lo >= 0 && hi < config_.vocab_size, "forward: token id ",
                lo < 0 ? lo : hi, " outside the vocabulary [0, ", config_.vocab_size, ")");
  }

  detail::LayerContext ctx;
  ctx.cache = cache;
  ctx.past = past;
  ctx.inference = !torch::GradMode::is_enabled() || c10::InferenceMode::is_enabled();

  // RoPE tables: float32 angles like HF (position * inv_freq), cast to the model dtype.
  auto freqs = position_ids.to(torch::kFloat32).unsqueeze(-1) *
               inv_freq_.to(torch::kFloat32);              // [B, T, D/2]
  auto emb = torch::cat({freqs, freqs}, -1).unsqueeze(2);  // [B, T, 1, D]
  ctx.cos = emb.cos().to(dtype);
  ctx.sin = emb.sin().to(dtype);

  // Query i (absolute position past + i) may see key j iff j <= past + i and mask[j] == 1.
  const std::int64_t s = past + t;
  auto key_ok = attention_mask.to(torch::kBool).view({b, 1, 1, 1, s});
  auto causal = torch::arange(s, torch::TensorOptions().dtype(torch::kLong).device(device))
                    .view({1, s})
                    .le(torch::arange(past, past + t,
                                      torch::TensorOptions().dtype(torch::kLong).device(device))
                            .view({t, 1}));  // [T, S]
  ctx.bias = lowest_value_mask(key_ok.logical_and(causal.view({1, 1, 1, t, s})), dtype);

  auto x = torch::embedding(model_->embed_weight, input_ids);
  for (auto& layer : model_->layer_ptrs) x = layer->forward(x, ctx);
  x = model_->norm->forward(x);
  if (cache != nullptr) cache->set_length(past + t);
  return x;
}

torch::Tensor CausalLMImpl::logits(const torch::Tensor& hidden) {
  auto out = detail::linear(hidden, lm_head_ ? lm_head_->weight : model_->embed_weight, {});
  return out.scalar_type() == torch::kFloat32 ? out : out.to(torch::kFloat32);
}

torch::Tensor CausalLMImpl::prefill(const torch::Tensor& input_ids,
                                    const torch::Tensor& attention_mask,
                                    const torch::Tensor& position_ids,
                                    KVCache& cache,
                                    std::int64_t chunk_tokens) {
  MR_CHECK_AS(BackendError, chunk_tokens >= 1, "prefill: chunk_tokens must be >= 1, got ",
              chunk_tokens);
  MR_CHECK_AS(BackendError, input_ids.dim() == 2 && input_ids.size(1) > 0,
              "prefill: input_ids must be [batch, seq] with seq > 0, got ", input_ids.sizes());
  const std::int64_t b = input_ids.size(0), t = input_ids.size(1), past = cache.length();
  MR_CHECK_AS(BackendError, position_ids.sizes() == input_ids.sizes(), "prefill: position_ids ",
              position_ids.sizes(), " must match input_ids ", input_ids.sizes());
  MR_CHECK_AS(BackendError, attention_mask.dim() == 2 && attention_mask.size(1) == past + t,
              "prefill: attention_mask must be [", b, ", ", past + t, "] (cached ", past, " + new ",
              t, "), got ", attention_mask.sizes());
  // Each chunk's queries see the cached keys of the earlier chunks (and the causal part of
  // their own), exactly the keys a single pass would let them see.
  const std::int64_t step = std::max<std::int64_t>(1, chunk_tokens / std::max<std::int64_t>(1, b));
  torch::Tensor last;
  for (std::int64_t t0 = 0; t0 < t; t0 += step) {
    const std::int64_t tc = std::min(step, t - t0);
    auto h = hidden_states(input_ids.narrow(1, t0, tc), attention_mask.narrow(1, 0, past + t0 + tc),
                           position_ids.narrow(1, t0, tc), &cache);
    if (t0 + tc == t) last = h.select(1, tc - 1);
  }
  return last;
}

torch::Tensor CausalLMImpl::forward(const torch::Tensor& input_ids,
                                    const torch::Tensor& attention_mask,
                                    const torch::Tensor& position_ids,
                                    KVCache* cache) {
  return logits(hidden_states(input_ids, attention_mask, position_ids, cache));
}

KVCache CausalLMImpl::make_cache(std::int64_t batch_size, std::int64_t capacity) const {
  return KVCache(config_.num_hidden_layers, batch_size, config_.num_key_value_heads, capacity,
                 config_.head_dim, model_->embed_weight.options().requires_grad(false));
}

void CausalLMImpl::initialize(std::uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto params = named_parameters(/*recurse=*/true);
  std::vector<float> values;
  for (const auto& spec : parameter_specs(config_)) {
    auto* p = params.find(spec.name);
    MR_CHECK_AS(BackendError, p != nullptr, "initialize: model has no parameter '", spec.name, "'");
    values.resize(static_cast<std::size_t>(p->numel()));
    init_parameter_values(config_, spec, seed, values);
    p->copy_(torch::from_blob(values.data(), p->sizes(), torch::kFloat32));
  }
}

torch::Tensor position_ids_from_mask(const torch::Tensor& attention_mask) {
  auto mask = attention_mask.to(torch::kLong);
  return (mask.cumsum(1) - 1).clamp_min(0);
}

}  // namespace mr::torch_backend
