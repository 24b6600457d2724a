// Internal to mr_torch_model: the decoder's modules (causal_lm.cpp builds them, lora.cpp
// attaches adapters to their linear layers). Follows HF's modeling_llama.py / modeling_qwen2.py.
#pragma once

#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "metareward/sdk/error.hpp"
#include "metareward/torch_model/causal_lm.hpp"
#include "metareward/torch_model/packed_linear.hpp"
#include "metareward/torch_model/small_batch_linear.hpp"

// libtorch 2.0 added the fused scaled_dot_product_attention (flash / memory-efficient kernels
// on CUDA).
#if TORCH_VERSION_MAJOR >= 2
#define MR_TORCH_HAS_SDPA 1
#endif

namespace mr::torch_backend {

namespace detail {

// The inference kernels (small_batch_linear and those declared below) run only inside an
// InferenceKernelsScope that is on: run_layers() and logits() open one for forwards outside
// training. A forward without grad inside training (activation checkpointing's first pass, the
// autograd functions' own forwards) then computes exactly what the training forward computes.
class InferenceKernelsScope {
 public:
  explicit InferenceKernelsScope(bool on) : previous_(flag()) { flag() = on; }
  ~InferenceKernelsScope() { flag() = previous_; }
  InferenceKernelsScope(const InferenceKernelsScope&) = delete;
  InferenceKernelsScope& operator=(const InferenceKernelsScope&) = delete;
  // Whether the innermost scope of this thread is on (false outside any scope).
  static bool active() { return flag(); }
  // Whether a forward starting now records no gradient: the forwards that open a scope that is on.
  static bool inference_forward() {
    return !torch::GradMode::is_enabled() || c10::InferenceMode::is_enabled();
  }

 private:
  static bool& flag() {
    thread_local bool on = false;
    return on;
  }
  bool previous_;
};

// x W^T + b. Decode-sized batches (up to kSmallBatchRows rows, float32 on the CPU, no autograd)
// go through small_batch_linear, whose per-row results do not depend on the batch and which
// skips gemm's per-call copy of the weights. Another single row goes through gemv (gemm packs
// the whole weight even for one row: 2-4x slower at these shapes), the rest through
// torch::linear.
inline torch::Tensor linear(const torch::Tensor& x,
                            const torch::Tensor& weight,
                            const torch::Tensor& bias) {
  if (InferenceKernelsScope::active() && small_batch_linear_applies(x, weight, bias))
    return small_batch_linear(x, weight, bias);
  if (x.numel() == weight.size(1) && x.dim() >= 1) {
    auto sizes = x.sizes().vec();
    sizes.back() = weight.size(0);
    auto y = torch::mv(weight, x.reshape({-1}));
    if (bias.defined()) y = y + bias;
    return y.view(sizes);
  }
  return torch::linear(x, weight, bias);
}

// One switch per model: whether its linear weights are in packed_linear's layout
// (CausalLMImpl::pack_inference_weights).
using PackedFlag = std::shared_ptr<const bool>;

inline bool is_packed(const PackedFlag& flag) {
  return flag && *flag;
}

// x W^T + b for a weight that is packed (packed_linear) when `packed` is set, else linear().
// A packed weight has no gradient path: a forward that would record one is an error.
inline torch::Tensor layer_linear(const torch::Tensor& x,
                                  const torch::Tensor& weight,
                                  const torch::Tensor& bias,
                                  const PackedFlag& packed) {
  if (!is_packed(packed)) return linear(x, weight, bias);
  MR_CHECK_AS(mr::sdk::BackendError,
              !torch::GradMode::is_enabled() || !(x.requires_grad() || weight.requires_grad() ||
                                                  (bias.defined() && bias.requires_grad())),
              "the model's weights are packed for inference; unpack_inference_weights() before "
              "a forward that records gradients");
  return packed_linear(x, weight, bias);
}

// Additive attention mask: 0 where `allowed`, else a finite "minus infinity".
inline torch::Tensor lowest_value_mask(const torch::Tensor& allowed, torch::Dtype dtype) {
  // A finite "minus infinity": fully masked rows (padding queries) then give a uniform
  // distribution instead of NaN. Half the dtype's lowest, so adding a score cannot overflow.
  const double lowest = dtype == torch::kBFloat16  ? -1.6947656946257677e38
                        : dtype == torch::kFloat16 ? -32752.0
                        : dtype == torch::kFloat64 ? std::numeric_limits<double>::lowest() / 2
                                                   : std::numeric_limits<float>::lowest() / 2;
  return torch::zeros(allowed.sizes(), torch::TensorOptions().dtype(dtype).device(allowed.device()))
      .masked_fill_(allowed.logical_not(), lowest);
}

// Most new positions per row decode_attention() takes: decode steps. Longer inputs (prefills)
// attend through the blocked matrix products in AttentionImpl.
constexpr std::int64_t kDecodeAttentionMaxPositions = 4;

// Whether decode_attention() computes attention for these operands: float32 on a CPU with AVX2,
// no autograd, at most kDecodeAttentionMaxPositions positions, innermost dimensions contiguous.
bool decode_attention_applies(const torch::Tensor& q,
                              const torch::Tensor& k,
                              const torch::Tensor& v,
                              const torch::Tensor& bias);

// Grouped-query attention of q [B, T, heads, D] (RoPE applied) over k and v [B, kv, S, D] with
// the additive mask bias [B, 1, 1, T, S], scores (q . k) * scale: [B, T, heads * D], query head
// h using kv head h / (heads / kv) as HF's repeat_kv. Softmax in float32 as the blocked path.
torch::Tensor decode_attention(const torch::Tensor& q,
                               const torch::Tensor& k,
                               const torch::Tensor& v,
                               const torch::Tensor& bias,
                               double scale);

// Whether inference_swiglu_() takes gate and up: float32 on a CPU with AVX-512, no autograd, the
// same sizes, rows (all dimensions but the last) of contiguous elements at one stride each.
bool inference_swiglu_applies(const torch::Tensor& gate, const torch::Tensor& up);
// gate = silu(gate) * up in one pass, in place (the MLP's inference step; gate and up may be
// the halves of the fused gate/up product). silu(g) = g / (1 + e^-g), e^x within 2 ulp.
void inference_swiglu_(const torch::Tensor& gate, const torch::Tensor& up);

// Whether the inference kernels (inference_rms_norm, inference_rope) take x: float32 on a CPU
// with AVX2, no autograd.
bool inference_kernels_apply(const torch::Tensor& x);
// RMSNormImpl's forward in one pass per row (float32 weight [dim]).
torch::Tensor inference_rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);
// apply_rope in one pass: x [B, T, heads, D] (innermost dimension contiguous), cos and sin
// [B, T, 1, D] contiguous; returns a new contiguous [B, T, heads, D].
torch::Tensor inference_rope(const torch::Tensor& x,
                             const torch::Tensor& cos,
                             const torch::Tensor& sin);

// A LoRA adapter on one linear layer. Its tensors are float32 whatever the model dtype (they are
// small, and an fp32 adapter needs no master copy) and are not registered parameters, so
// checkpoint loading and saving see the base weights only.
struct LoraAdapter {
  torch::Tensor a;  // lora_A [r, in]
  torch::Tensor b;  // lora_B [out, r]
  double scale = 1.0;
  double dropout = 0.0;
  std::shared_ptr<const bool> enabled;  // One switch for all layers of the model.
};

// y = x W^T + b with parameters "weight" [out, in] and optional "bias" [out]. Parameters are
// allocated uninitialized: checkpoints (or initialize()) provide every value. With an adapter,
// y += scale * dropout(x) A^T B^T (PEFT's LoRA Linear), computed in float32.
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(std::int64_t in, std::int64_t out, bool bias, const torch::TensorOptions& opts)
      : LinearImpl(torch::empty({out, in}, opts),
                   bias ? torch::empty({out}, opts) : torch::Tensor()) {}
  // Registers the given tensors (e.g. row blocks of a FusedLinears' storage) as the parameters.
  LinearImpl(torch::Tensor weight_values, torch::Tensor bias_values) {
    weight = register_parameter("weight", std::move(weight_values));
    if (bias_values.defined()) bias = register_parameter("bias", std::move(bias_values));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return add_lora(x, layer_linear(x, weight, bias, packed));
  }
  // y plus the adapter's update of input x (y itself when there is none or it is disabled).
  torch::Tensor add_lora(const torch::Tensor& x, torch::Tensor y) {
    if (!lora || !*lora->enabled) return y;
    auto h = x.scalar_type() == torch::kFloat32 ? x : x.to(torch::kFloat32);
    if (lora->dropout > 0 && is_training()) h = torch::dropout(h, lora->dropout, /*train=*/true);
    auto delta = torch::linear(torch::linear(h, lora->a), lora->b) * lora->scale;
    return y + (delta.scalar_type() == y.scalar_type() ? delta : delta.to(y.scalar_type()));
  }

  torch::Tensor weight;
  torch::Tensor bias;                 // Undefined when absent.
  std::shared_ptr<LoraAdapter> lora;  // nullptr without an adapter.
  PackedFlag packed;                  // Set by the model for the layers it packs.
};

// Linear layers that read the same input (q/k/v, gate/up), computed as one matrix product:
// their weights are consecutive row blocks of one [sum(outs), in] storage, so the fused product
// needs no copy of the weights, and each part stays a registered parameter of its own (HF names,
// checkpoint loading, optimizer state). A part's adapter is applied to its own slice. forward()
// first checks that the parameters still live in the storage (Module::to() and set_data()
// replace them) and re-fuses them when they do not.
class FusedLinears {
 public:
  FusedLinears() = default;
  FusedLinears(std::int64_t in,
               std::vector<std::int64_t> outs,
               bool bias,
               const torch::TensorOptions& opts);
  // The LinearImpl of part `i` over its row block; the caller registers it as a submodule.
  std::shared_ptr<LinearImpl> make_part(std::size_t i);
  // Each part's output, [..., outs[i]] (views of one [..., sum(outs)] product, plus adapters).
  std::vector<torch::Tensor> forward(const torch::Tensor& x);
  // The fused [sum(outs), in] weight the parts are views of (fused again first if a part's
  // parameter was replaced).
  const torch::Tensor& fused_weight();

  PackedFlag packed;  // Set by the model: the fused weight is packed while it is on.

 private:
  bool intact() const;
  void refuse();
  std::int64_t in_ = 0;
  std::vector<std::int64_t> outs_, offsets_;
  torch::Tensor weight_, bias_;  // [sum(outs), in], [sum(outs)] (undefined without bias).
  std::vector<std::weak_ptr<LinearImpl>> parts_;
};

// silu(gate) * up for training: saves only gate and up (views of the fused gate/up product,
// alive anyway) and recomputes silu in backward, instead of autograd's saved silu(gate) copy.
torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up);

// Grouped-query attention for training: q [B, kv, rep * T, D] (scaled, the rep query heads of
// a group folded into the rows), k and v [B, kv, S, D], additive mask [B, 1, 1, T, S]; returns
// [B, kv, rep * T, D]. Saves q, k, v, the output and each row's logsumexp, and recomputes the
// probabilities in backward (softmax in float32, as the inference path).
torch::Tensor attention_recomputing(const torch::Tensor& q,
                                    const torch::Tensor& k,
                                    const torch::Tensor& v,
                                    const torch::Tensor& bias,
                                    std::int64_t rep);

// HF LlamaRMSNorm: normalizes in float32, casts back, then scales.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(std::int64_t dim, double eps, const torch::TensorOptions& opts) : eps_(eps) {
    weight = register_parameter("weight", torch::empty({dim}, opts));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    // An active scope means no gradient to record (see InferenceKernelsScope).
    if (InferenceKernelsScope::active() && inference_kernels_apply(x))
      return inference_rms_norm(x, weight, eps_);
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
// x cos + rotate_half(x) sin is computed as x cos + rotate_half(x sin), the same values (both
// halves of sin are equal, and negating or moving a product is exact), so that training saves x
// for the products (alive anyway) rather than a rotated copy of it.
inline torch::Tensor apply_rope(const torch::Tensor& x,
                                const torch::Tensor& cos,
                                const torch::Tensor& sin) {
  const std::int64_t half = x.size(-1) / 2;
  auto xs = x * sin;
  auto rotated = torch::cat({-xs.narrow(-1, half, half), xs.narrow(-1, 0, half)}, -1);
  return x * cos + rotated;
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
    qkv_ = FusedLinears(c.hidden_size, {q_dim, kv_dim, kv_dim}, c.qkv_bias, opts);
    q_proj = register_module("q_proj", qkv_.make_part(0));
    k_proj = register_module("k_proj", qkv_.make_part(1));
    v_proj = register_module("v_proj", qkv_.make_part(2));
    o_proj = register_module("o_proj",
                             std::make_shared<LinearImpl>(q_dim, c.hidden_size, c.o_bias, opts));
  }

  torch::Tensor forward(const torch::Tensor& x, const LayerContext& ctx) {
    const std::int64_t b = x.size(0), t = x.size(1);
    const std::int64_t rep = heads_ / kv_heads_;
    const auto qkv = qkv_.forward(x);
    const bool kernels = InferenceKernelsScope::active() && inference_kernels_apply(qkv[0]) &&
                         inference_kernels_apply(qkv[1]) && ctx.cos.is_contiguous() &&
                         ctx.cos.scalar_type() == torch::kFloat32;
    const auto rope = [&](const torch::Tensor& part, std::int64_t heads) {
      auto h = part.view({b, t, heads, head_dim_});
      return kernels ? inference_rope(h, ctx.cos, ctx.sin) : apply_rope(h, ctx.cos, ctx.sin);
    };
    auto q = rope(qkv[0], heads_);
    auto k = rope(qkv[1], kv_heads_);
    auto v = qkv[2].view({b, t, kv_heads_, head_dim_});
    k = k.transpose(1, 2);  // [B, kv, T, D]
    v = v.transpose(1, 2);
    if (ctx.cache != nullptr) std::tie(k, v) = ctx.cache->write(layer_, ctx.past, k, v);
    const std::int64_t s = k.size(2);
#ifdef MR_TORCH_HAS_SDPA
    // On CUDA the fused kernel; the CPU keeps the blocked path below, whose numerics are the
    // ones the reference tests pin down.
    if (x.device().is_cuda()) {
      auto kh = rep == 1 ? k : k.repeat_interleave(rep, 1);
      auto vh = rep == 1 ? v : v.repeat_interleave(rep, 1);
      auto out =
          at::scaled_dot_product_attention(q.transpose(1, 2), kh, vh, ctx.bias.view({b, 1, t, s}));
      return o_proj->forward(out.transpose(1, 2).reshape({b, t, heads_ * head_dim_}));
    }
#endif
    if (kernels && decode_attention_applies(q, k, v, ctx.bias))
      return o_proj->forward(decode_attention(q, k, v, ctx.bias, scale_));
    // Grouped-query attention without materializing repeated K/V: query head h uses kv head
    // h / rep (HF repeat_kv), so fold the rep query heads of a group into the row dimension.
    auto qg = (q * scale_).view({b, t, kv_heads_, rep, head_dim_}).permute({0, 2, 3, 1, 4});
    if (!ctx.inference && ctx.cache == nullptr) {
      // Training: probabilities recomputed in backward instead of saved (one [B, H, T, S]
      // tensor less per layer).
      auto out = attention_recomputing(qg.reshape({b, kv_heads_, rep * t, head_dim_}), k, v,
                                       ctx.bias, rep);
      return o_proj->forward(
          out.view({b, heads_, t, head_dim_}).transpose(1, 2).reshape({b, t, heads_ * head_dim_}));
    }
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
  FusedLinears& qkv() {
    return qkv_;
  }

 private:
  FusedLinears qkv_;  // q_proj, k_proj and v_proj as one matrix product.
  std::int64_t layer_, heads_, kv_heads_, head_dim_;
  double scale_;
};

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(const ModelConfig& c, const torch::TensorOptions& opts)
      : gate_up_(c.hidden_size, {c.intermediate_size, c.intermediate_size}, c.mlp_bias, opts) {
    gate_proj = register_module("gate_proj", gate_up_.make_part(0));
    up_proj = register_module("up_proj", gate_up_.make_part(1));
    down_proj = register_module(
        "down_proj",
        std::make_shared<LinearImpl>(c.intermediate_size, c.hidden_size, c.mlp_bias, opts));
  }
  torch::Tensor forward(const torch::Tensor& x, bool inference) {
    const auto gate_up = gate_up_.forward(x);
    auto g = gate_up[0];
    if (inference && InferenceKernelsScope::active() && inference_swiglu_applies(g, gate_up[1])) {
      inference_swiglu_(g, gate_up[1]);
    } else if (inference) {
      torch::silu_(g);
      g.mul_(gate_up[1]);
    } else {
      g = swiglu(g, gate_up[1]);
    }
    return down_proj->forward(g);
  }

  std::shared_ptr<LinearImpl> gate_proj, up_proj, down_proj;
  FusedLinears& gate_up() { return gate_up_; }

 private:
  FusedLinears gate_up_;  // gate_proj and up_proj as one matrix product.
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

}  // namespace mr::torch_backend
