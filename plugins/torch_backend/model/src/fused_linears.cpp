// FusedLinears (decoder_layers.hpp): one matrix product for several linear layers of one input,
// with an autograd function whose backward is one product per gradient as well.
#include <torch/torch.h>

#include <numeric>

#include "decoder_layers.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::torch_backend::detail {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr std::size_t kMaxParts = 3;

// y = x W^T + b for the fused storage W (and b), with the parts' parameters as the inputs that
// receive the gradients: backward computes g^T x once and hands each part its row block.
struct FusedLinearFunction : public torch::autograd::Function<FusedLinearFunction> {
  // `params`: the parts' weights, then their biases (with a bias), only for their autograd
  // edges; the product reads the fused storage they live in.
  static torch::Tensor forward(AutogradContext* ctx,
                               const torch::Tensor& x,
                               const torch::Tensor& fused_weight,
                               const c10::optional<torch::Tensor>& fused_bias,
                               const std::vector<std::int64_t>& offsets,
                               at::TensorList params) {
    (void)params;
    ctx->save_for_backward({x, fused_weight});
    ctx->saved_data["offsets"] = offsets;
    ctx->saved_data["has_bias"] = fused_bias.has_value();
    return linear(x, fused_weight, fused_bias.value_or(torch::Tensor()));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& weight = saved[1];
    const auto offsets = ctx->saved_data["offsets"].toIntVector();
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    const std::size_t parts = offsets.size() - 1;
    // needs_input_grad() counts the tensor inputs: x, the fused weight, the fused bias (when
    // there is one), then params. The returned list has one entry per argument and list
    // element: x, fused weight, fused bias, offsets, then params.
    const std::size_t first_param_edge = has_bias ? 3 : 2;
    const auto g = grads[0].reshape({-1, weight.size(0)});
    variable_list out(4 + parts * (has_bias ? 2 : 1));
    if (ctx->needs_input_grad(0)) out[0] = g.mm(weight).view(x.sizes());
    auto wanted = [&](std::size_t j) { return ctx->needs_input_grad(first_param_edge + j); };
    bool weight_grad = false, bias_grad = false;
    for (std::size_t i = 0; i < parts; ++i) {
      weight_grad = weight_grad || wanted(i);
      bias_grad = bias_grad || (has_bias && wanted(parts + i));
    }
    if (weight_grad) {
      const auto gw = g.t().mm(x.reshape({-1, x.size(-1)}));
      for (std::size_t i = 0; i < parts; ++i)
        if (wanted(i)) out[4 + i] = gw.narrow(0, offsets[i], offsets[i + 1] - offsets[i]);
    }
    if (bias_grad) {
      const auto gb = g.sum(0);
      for (std::size_t i = 0; i < parts; ++i)
        if (wanted(parts + i))
          out[4 + parts + i] = gb.narrow(0, offsets[i], offsets[i + 1] - offsets[i]);
    }
    return out;
  }
};

// silu(g) u with silu(g) = g sigmoid(g): d/dg = grad u sigmoid(g) (1 + g (1 - sigmoid(g))),
// d/du = grad silu(g).
struct SwigluFunction : public torch::autograd::Function<SwigluFunction> {
  static torch::Tensor forward(AutogradContext* ctx,
                               const torch::Tensor& gate,
                               const torch::Tensor& up) {
    ctx->save_for_backward({gate, up});
    return torch::silu(gate).mul_(up);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &gate = saved[0], &up = saved[1];
    const auto sig = torch::sigmoid(gate);
    torch::Tensor grad_gate, grad_up;
    if (ctx->needs_input_grad(1)) grad_up = gate * sig * grads[0];
    if (ctx->needs_input_grad(0))
      grad_gate = (gate * (1 - sig)).add_(1).mul_(sig).mul_(up).mul_(grads[0]);
    return {grad_gate, grad_up};
  }
};

// Probabilities [B, kv, rep * T, S] in float32 from the scores and the rows' logsumexp (or
// computing the logsumexp into `lse` when it is undefined).
torch::Tensor attention_probs(const torch::Tensor& q,
                              const torch::Tensor& k,
                              const torch::Tensor& bias,
                              std::int64_t rep,
                              torch::Tensor& lse) {
  const std::int64_t b = q.size(0), kv = q.size(1), t = q.size(2) / rep, s = k.size(2);
  auto scores = torch::matmul(q, k.transpose(-1, -2));
  if (scores.scalar_type() != torch::kFloat32) scores = scores.to(torch::kFloat32);
  auto grouped = scores.view({b, kv, rep, t, s});
  grouped.add_(bias);
  if (!lse.defined()) lse = grouped.logsumexp(-1, /*keepdim=*/true);
  return grouped.sub_(lse).exp_().view({b, kv, rep * t, s});
}

struct RecomputingAttention : public torch::autograd::Function<RecomputingAttention> {
  static torch::Tensor forward(AutogradContext* ctx,
                               const torch::Tensor& q,
                               const torch::Tensor& k,
                               const torch::Tensor& v,
                               const torch::Tensor& bias,
                               std::int64_t rep) {
    torch::Tensor lse;
    auto probs = attention_probs(q, k, bias, rep, lse);
    auto out = torch::matmul(
        probs.scalar_type() == v.scalar_type() ? probs : probs.to(v.scalar_type()), v);
    ctx->save_for_backward({q, k, v, bias, lse, out});
    ctx->saved_data["rep"] = rep;
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &bias = saved[3], &out = saved[5];
    torch::Tensor lse = saved[4];
    const std::int64_t rep = ctx->saved_data["rep"].toInt();
    const auto dout = grads[0].to(torch::kFloat32);
    auto probs = attention_probs(q, k, bias, rep, lse);  // float32
    auto v32 = v.to(torch::kFloat32);
    const auto dv = torch::matmul(probs.transpose(-1, -2), dout);
    // dS = P (dP - rowsum(dO * O)), dP = dO V^T.
    auto ds = torch::matmul(dout, v32.transpose(-1, -2))
                  .sub_((dout * out.to(torch::kFloat32)).sum(-1, /*keepdim=*/true))
                  .mul_(probs);
    const auto dq = torch::matmul(ds, k.to(torch::kFloat32));
    const auto dk = torch::matmul(ds.transpose(-1, -2), q.to(torch::kFloat32));
    const auto as = [](const torch::Tensor& g, const torch::Tensor& like) {
      return g.scalar_type() == like.scalar_type() ? g : g.to(like.scalar_type());
    };
    return {as(dq, q), as(dk, k), as(dv, v), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor attention_recomputing(const torch::Tensor& q,
                                    const torch::Tensor& k,
                                    const torch::Tensor& v,
                                    const torch::Tensor& bias,
                                    std::int64_t rep) {
  return RecomputingAttention::apply(q, k, v, bias, rep);
}

torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up) {
  return SwigluFunction::apply(gate, up);
}

FusedLinears::FusedLinears(std::int64_t in,
                           std::vector<std::int64_t> outs,
                           bool bias,
                           const torch::TensorOptions& opts)
    : in_(in), outs_(std::move(outs)) {
  MR_CHECK(!outs_.empty() && outs_.size() <= kMaxParts, "FusedLinears: 1 to ", kMaxParts,
           " parts, got ", outs_.size());
  offsets_.push_back(0);
  for (auto n : outs_) offsets_.push_back(offsets_.back() + n);
  weight_ = torch::empty({offsets_.back(), in_}, opts);
  if (bias) bias_ = torch::empty({offsets_.back()}, opts);
  parts_.resize(outs_.size());
}

std::shared_ptr<LinearImpl> FusedLinears::make_part(std::size_t i) {
  // detach(): a leaf sharing the storage, so that it can be registered and require grad.
  auto part = std::make_shared<LinearImpl>(
      weight_.narrow(0, offsets_[i], outs_[i]).detach(),
      bias_.defined() ? bias_.narrow(0, offsets_[i], outs_[i]).detach() : torch::Tensor());
  parts_[i] = part;
  return part;
}

bool FusedLinears::intact() const {
  const auto elem = static_cast<std::ptrdiff_t>(weight_.element_size());
  const auto* base = static_cast<const char*>(weight_.data_ptr());
  const auto* bias_base = bias_.defined() ? static_cast<const char*>(bias_.data_ptr()) : nullptr;
  for (std::size_t i = 0; i < parts_.size(); ++i) {
    const auto part = parts_[i].lock();
    if (!part) return false;
    const auto& w = part->weight;
    if (w.scalar_type() != weight_.scalar_type() || w.device() != weight_.device() ||
        !w.is_contiguous() || w.data_ptr() != base + offsets_[i] * in_ * elem)
      return false;
    if (bias_base != nullptr &&
        (!part->bias.defined() || part->bias.scalar_type() != bias_.scalar_type() ||
         part->bias.data_ptr() != bias_base + offsets_[i] * elem))
      return false;
  }
  return true;
}

void FusedLinears::refuse() {
  // Outside inference mode, so that the new storage (and the parameters pointing into it) are
  // normal tensors that training can use later.
  c10::InferenceMode normal_mode(false);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> weights, biases;
  std::vector<std::shared_ptr<LinearImpl>> parts;
  for (const auto& p : parts_) {
    auto part = p.lock();
    MR_CHECK(part != nullptr, "FusedLinears: a part was destroyed");
    weights.push_back(part->weight);
    if (bias_.defined()) biases.push_back(part->bias);
    parts.push_back(std::move(part));
  }
  weight_ = torch::cat(weights, 0);
  if (bias_.defined()) bias_ = torch::cat(biases, 0);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    parts[i]->weight.set_data(weight_.narrow(0, offsets_[i], outs_[i]).detach());
    if (bias_.defined()) parts[i]->bias.set_data(bias_.narrow(0, offsets_[i], outs_[i]).detach());
  }
}

const torch::Tensor& FusedLinears::fused_weight() {
  if (!intact()) {
    // Re-fusing concatenates the parts' values, which packed storage does not hold.
    MR_CHECK_AS(mr::sdk::BackendError, !is_packed(packed),
                "FusedLinears: a packed layer's parameters were replaced");
    refuse();
  }
  return weight_;
}

std::vector<torch::Tensor> FusedLinears::forward(const torch::Tensor& x) {
  fused_weight();
  std::vector<std::shared_ptr<LinearImpl>> parts;
  bool param_grad = false;
  for (const auto& p : parts_) {
    parts.push_back(p.lock());
    param_grad = param_grad || parts.back()->weight.requires_grad() ||
                 (parts.back()->bias.defined() && parts.back()->bias.requires_grad());
  }
  torch::Tensor y;
  if (torch::GradMode::is_enabled() && (param_grad || x.requires_grad())) {
    MR_CHECK_AS(mr::sdk::BackendError, !is_packed(packed),
                "the model's weights are packed for inference; unpack_inference_weights() "
                "before a forward that records gradients");
    std::vector<torch::Tensor> params;
    for (const auto& part : parts) params.push_back(part->weight);
    if (bias_.defined())
      for (const auto& part : parts) params.push_back(part->bias);
    y = FusedLinearFunction::apply(
        x, weight_, bias_.defined() ? c10::optional<torch::Tensor>(bias_) : c10::nullopt, offsets_,
        at::TensorList(params));
  } else {
    y = layer_linear(x, weight_, bias_, packed);
  }
  std::vector<torch::Tensor> out;
  out.reserve(parts.size());
  for (std::size_t i = 0; i < parts.size(); ++i)
    out.push_back(parts[i]->add_lora(x, y.narrow(-1, offsets_[i], outs_[i])));
  return out;
}

}  // namespace mr::torch_backend::detail
