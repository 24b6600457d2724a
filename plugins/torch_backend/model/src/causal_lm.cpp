/// @file causal_lm.cpp
/// The Llama / Qwen2 decoder: embeddings, RMSNorm, RoPE, grouped-query attention over a KV
/// cache, SwiGLU MLP, lm_head. Follows HF's modeling_llama.py / modeling_qwen2.py numerics.
#include "metareward/torch_model/causal_lm.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "decoder_layers.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/torch_model/checkpoint_files.hpp"
#include "metareward/torch_model/packed_linear.hpp"

namespace mr::torch_backend {

using mr::sdk::BackendError;

namespace {

// Activation checkpointing of one decoder layer (the reentrant scheme of torch.utils.checkpoint):
// forward runs the layer without grad and keeps only its input; backward recomputes the layer
// with grad and backpropagates through the recomputation, which accumulates the parameters'
// gradients directly. The RNG is restored first so that dropout draws the same masks.
struct CheckpointedLayer : public torch::autograd::Function<CheckpointedLayer> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx,
                               torch::Tensor x,
                               detail::DecoderLayerImpl* layer,
                               const detail::LayerContext* layer_ctx) {
    auto generator = at::globalContext().defaultGenerator(x.device());
    ctx->saved_data["rng"] = generator.get_state();
    // The layer and its context outlive backward: the caller's forward/backward pair holds both
    // (the context's tensors are also saved here, in case the caller lets it go first).
    ctx->saved_data["layer"] = reinterpret_cast<std::int64_t>(layer);
    ctx->saved_data["cos"] = layer_ctx->cos;
    ctx->saved_data["sin"] = layer_ctx->sin;
    ctx->saved_data["bias"] = layer_ctx->bias;
    ctx->save_for_backward({x});
    return layer->forward(x, *layer_ctx);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    auto* layer = reinterpret_cast<detail::DecoderLayerImpl*>(ctx->saved_data["layer"].toInt());
    detail::LayerContext layer_ctx;
    layer_ctx.cos = ctx->saved_data["cos"].toTensor();
    layer_ctx.sin = ctx->saved_data["sin"].toTensor();
    layer_ctx.bias = ctx->saved_data["bias"].toTensor();
    auto generator = at::globalContext().defaultGenerator(x.device());
    const auto resume_state = generator.get_state();
    generator.set_state(ctx->saved_data["rng"].toTensor());
    torch::Tensor out;
    {
      torch::AutoGradMode grad(true);
      out = layer->forward(x, layer_ctx);
    }
    generator.set_state(resume_state);
    torch::autograd::backward({out}, {grads[0]});
    return {x.grad(), torch::Tensor(), torch::Tensor()};
  }
};

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
  for (auto& layer : model_->layer_ptrs) {
    layer->self_attn->qkv().packed = packed_;
    layer->self_attn->o_proj->packed = packed_;
    layer->mlp->gate_up().packed = packed_;
    layer->mlp->down_proj->packed = packed_;
  }
  if (lm_head_) lm_head_->packed = packed_;
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
  // Query i (absolute position past + i) may see key j iff j <= past + i and mask[j] == 1.
  const std::int64_t s = past + t;
  auto key_ok = attention_mask.to(torch::kBool).view({b, 1, 1, 1, s});
  auto causal = torch::arange(s, torch::TensorOptions().dtype(torch::kLong).device(device))
                    .view({1, s})
                    .le(torch::arange(past, past + t,
                                      torch::TensorOptions().dtype(torch::kLong).device(device))
                            .view({t, 1}));  // [T, S]
  return run_layers(
      input_ids, position_ids,
      detail::lowest_value_mask(key_ok.logical_and(causal.view({1, 1, 1, t, s})), dtype), cache);
}

torch::Tensor CausalLMImpl::run_layers(const torch::Tensor& input_ids,
                                       const torch::Tensor& position_ids,
                                       torch::Tensor bias,
                                       KVCache* cache) {
  const auto dtype = model_->embed_weight.scalar_type();
  const std::int64_t t = input_ids.size(1);
  const std::int64_t past = cache != nullptr ? cache->length() : 0;
  {
    const auto lo = input_ids.min().item<std::int64_t>();
    const auto hi = input_ids.max().item<std::int64_t>();
    MR_CHECK_AS(BackendError, lo >= 0 && hi < config_.vocab_size, "forward: token id ",
                lo < 0 ? lo : hi, " outside the vocabulary [0, ", config_.vocab_size, ")");
  }

  detail::LayerContext ctx;
  ctx.cache = cache;
  ctx.past = past;
  ctx.inference = detail::InferenceKernelsScope::inference_forward();
  const detail::InferenceKernelsScope kernels(ctx.inference);

  // RoPE tables: float32 angles like HF (position * inv_freq), cast to the model dtype.
  auto freqs = position_ids.to(torch::kFloat32).unsqueeze(-1) *
               inv_freq_.to(torch::kFloat32);              // [B, T, D/2]
  auto emb = torch::cat({freqs, freqs}, -1).unsqueeze(2);  // [B, T, 1, D]
  ctx.cos = emb.cos().to(dtype);
  ctx.sin = emb.sin().to(dtype);
  ctx.bias = std::move(bias);

  MR_CHECK_AS(BackendError, !*packed_ || ctx.inference,
              "forward: the model's weights are packed for inference; "
              "unpack_inference_weights() before a forward that records gradients");
  // A tied embedding matrix is packed for the LM head: its rows are gathered from that layout.
  auto x = *packed_ && !lm_head_ ? packed_weight_rows(model_->embed_weight, input_ids)
                                 : torch::embedding(model_->embed_weight, input_ids);
  if (checkpointing_ && !ctx.inference && cache == nullptr) {
    // A custom function's output requires grad only when an input does: with frozen embeddings
    // (LoRA) the layers' adapters would get no gradient, so the input is made a leaf that does.
    if (!x.requires_grad()) x = x.detach().requires_grad_(true);
    for (auto& layer : model_->layer_ptrs) x = CheckpointedLayer::apply(x, layer.get(), &ctx);
  } else {
    for (auto& layer : model_->layer_ptrs) x = layer->forward(x, ctx);
  }
  x = model_->norm->forward(x);
  if (cache != nullptr) cache->set_length(past + t);
  return x;
}

torch::Tensor CausalLMImpl::logits(const torch::Tensor& hidden) {
  // Through the module, so that an adapter on lm_head applies.
  const detail::InferenceKernelsScope kernels(detail::InferenceKernelsScope::inference_forward());
  auto out = lm_head_ ? lm_head_->forward(hidden)
                      : detail::layer_linear(hidden, model_->embed_weight, {}, packed_);
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
  require_unpacked("initialize");
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

std::vector<torch::Tensor> CausalLMImpl::packable_weights() {
  std::vector<torch::Tensor> weights;
  for (auto& layer : model_->layer_ptrs) {
    weights.push_back(layer->self_attn->qkv().fused_weight());
    weights.push_back(layer->self_attn->o_proj->weight);
    weights.push_back(layer->mlp->gate_up().fused_weight());
    weights.push_back(layer->mlp->down_proj->weight);
  }
  weights.push_back(lm_head_ ? lm_head_->weight : model_->embed_weight);
  return weights;
}

bool CausalLMImpl::pack_inference_weights() {
  if (*packed_) return true;
  // A gradient not yet applied would land on the packed values: a step in flight (between
  // backward and the optimizer's step) keeps the normal layout.
  for (const auto& p : parameters())
    if (p.grad().defined()) return false;
  const auto weights = packable_weights();
  for (const auto& w : weights)
    if (!packable_weight(w)) return false;
  for (const auto& w : weights) pack_weight(w);
  *packed_ = true;
  return true;
}

void CausalLMImpl::unpack_inference_weights() {
  if (!*packed_) return;
  for (const auto& w : packable_weights()) unpack_weight(w);
  *packed_ = false;
}

void CausalLMImpl::require_unpacked(const char* operation) const {
  MR_CHECK_AS(BackendError, !*packed_, operation,
              ": the model's weights are packed for inference; call "
              "unpack_inference_weights() first");
}

torch::Tensor position_ids_from_mask(const torch::Tensor& attention_mask) {
  auto mask = attention_mask.to(torch::kLong);
  return (mask.cumsum(1) - 1).clamp_min(0);
}

}  // namespace mr::torch_backend
