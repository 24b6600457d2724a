// CausalLMImpl::target_logprobs: the log-probs of given next tokens without [B, T, V] logits.
#include <torch/torch.h>

#include <algorithm>

#include "decoder_layers.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/torch_model/causal_lm.hpp"

namespace mr::torch_backend {

using mr::sdk::BackendError;

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// out[r] = (h W^T)[r, target[r]] - logsumexp_v (h W^T)[r, v], in blocks of `block` rows. Only h,
// W and the per-row logsumexp are kept for backward, which recomputes each block's logits:
// d out[r] / d logits[r] = onehot(target[r]) - softmax(logits[r]).
struct BlockedTargetLogProbs : public torch::autograd::Function<BlockedTargetLogProbs> {
  static torch::Tensor forward(AutogradContext* ctx,
                               const torch::Tensor& hidden,   // [R, H], model dtype
                               const torch::Tensor& weight,   // [V, H], model dtype
                               const torch::Tensor& targets,  // [R] int64
                               std::int64_t block) {
    const std::int64_t rows = hidden.size(0);
    auto out = torch::empty({rows}, hidden.options().dtype(torch::kFloat32));
    auto lse = torch::empty({rows}, out.options());
    for (std::int64_t r0 = 0; r0 < rows; r0 += block) {
      const std::int64_t n = std::min(block, rows - r0);
      auto logits = torch::mm(hidden.narrow(0, r0, n), weight.t());
      if (logits.scalar_type() != torch::kFloat32) logits = logits.to(torch::kFloat32);
      auto block_lse = logits.logsumexp(1);
      lse.narrow(0, r0, n).copy_(block_lse);
      out.narrow(0, r0, n).copy_(
          logits.gather(1, targets.narrow(0, r0, n).unsqueeze(1)).squeeze(1) - block_lse);
    }
    ctx->save_for_backward({hidden, weight, targets, lse});
    ctx->saved_data["block"] = block;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &hidden = saved[0], &weight = saved[1], &targets = saved[2], &lse = saved[3];
    const std::int64_t block = ctx->saved_data["block"].toInt();
    const auto g = grads[0].to(torch::kFloat32);
    const bool want_hidden = ctx->needs_input_grad(0), want_weight = ctx->needs_input_grad(1);
    torch::Tensor grad_hidden, grad_weight;
    if (want_hidden) grad_hidden = torch::empty_like(hidden);
    if (want_weight)
      grad_weight = torch::zeros(weight.sizes(), weight.options().dtype(torch::kFloat32));
    const std::int64_t rows = hidden.size(0);
    for (std::int64_t r0 = 0; r0 < rows && (want_hidden || want_weight); r0 += block) {
      const std::int64_t n = std::min(block, rows - r0);
      const auto h = hidden.narrow(0, r0, n);
      auto logits = torch::mm(h, weight.t());
      if (logits.scalar_type() != torch::kFloat32) logits = logits.to(torch::kFloat32);
      const auto gr = g.narrow(0, r0, n).unsqueeze(1);
      // d = g (onehot - softmax), built in place in the logits' buffer.
      auto d = logits.sub_(lse.narrow(0, r0, n).unsqueeze(1)).exp_().mul_(gr.neg());
      d.scatter_add_(1, targets.narrow(0, r0, n).unsqueeze(1), gr);
      const auto dm = d.scalar_type() == hidden.scalar_type() ? d : d.to(hidden.scalar_type());
      if (want_hidden) grad_hidden.narrow(0, r0, n).copy_(torch::mm(dm, weight));
      if (want_weight) grad_weight.add_(torch::mm(dm.t(), h));
    }
    if (grad_weight.defined() && grad_weight.scalar_type() != weight.scalar_type())
      grad_weight = grad_weight.to(weight.scalar_type());
    return {grad_hidden, grad_weight, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor CausalLMImpl::target_logprobs(const torch::Tensor& input_ids,
                                            const torch::Tensor& attention_mask,
                                            const torch::Tensor& position_ids,
                                            const torch::Tensor& target_rows,
                                            const torch::Tensor& target_ids,
                                            std::int64_t block_rows) {
  return hidden_target_logprobs(hidden_states(input_ids, attention_mask, position_ids), target_rows,
                                target_ids, block_rows);
}

torch::Tensor CausalLMImpl::branched_target_logprobs(const torch::Tensor& input_ids_in,
                                                     const torch::Tensor& branch_ids_in,
                                                     const torch::Tensor& position_ids_in,
                                                     const torch::Tensor& target_rows,
                                                     const torch::Tensor& target_ids,
                                                     std::int64_t block_rows) {
  require_unpacked("branched_target_logprobs");  // Reads the LM head's weights directly.
  const auto device = model_->embed_weight.device();
  auto input_ids = input_ids_in.to(device, torch::kLong);
  auto branch = branch_ids_in.to(device, torch::kLong);
  auto position_ids = position_ids_in.to(device, torch::kLong);
  MR_CHECK_AS(BackendError, input_ids.dim() == 2 && input_ids.size(1) > 0,
              "branched_target_logprobs: input_ids must be [batch, seq] with seq > 0, got ",
              input_ids.sizes());
  MR_CHECK_AS(BackendError,
              branch.sizes() == input_ids.sizes() && position_ids.sizes() == input_ids.sizes(),
              "branched_target_logprobs: branch_ids ", branch.sizes(), " and position_ids ",
              position_ids.sizes(), " must match input_ids ", input_ids.sizes());
  MR_CHECK_AS(BackendError, branch.min().item<std::int64_t>() >= -1,
              "branched_target_logprobs: branch ids must be >= -1 (-1 = padding), got ",
              branch.min().item<std::int64_t>());
  const std::int64_t b = input_ids.size(0), t = input_ids.size(1);
  // Key j is visible to query i iff j <= i, j is not padding, and j is in the prefix or in i's
  // own continuation.
  const auto key = branch.view({b, 1, t}), query = branch.view({b, t, 1});
  const auto arange = torch::arange(t, torch::TensorOptions().dtype(torch::kLong).device(device));
  const auto causal = arange.view({1, 1, t}).le(arange.view({1, t, 1}));  // [1, T(query), T(key)]
  const auto allowed =
      causal.logical_and(key.ge(0)).logical_and(key.eq(0).logical_or(key.eq(query)));
  auto hidden = run_layers(
      input_ids, position_ids,
      detail::lowest_value_mask(allowed.view({b, 1, 1, t, t}), model_->embed_weight.scalar_type()),
      nullptr);
  return hidden_target_logprobs(hidden, target_rows, target_ids, block_rows);
}

torch::Tensor CausalLMImpl::hidden_target_logprobs(const torch::Tensor& hidden_in,
                                                   const torch::Tensor& target_rows_in,
                                                   const torch::Tensor& target_ids_in,
                                                   std::int64_t block_rows) {
  require_unpacked("target_logprobs");  // Reads the LM head's weights directly.
  const auto device = model_->embed_weight.device();
  auto target_rows = target_rows_in.to(device, torch::kLong).reshape({-1});
  auto target_ids = target_ids_in.to(device, torch::kLong).reshape({-1});
  MR_CHECK_AS(BackendError, target_rows.numel() == target_ids.numel(),
              "target_logprobs: ", target_rows.numel(), " target rows but ", target_ids.numel(),
              " target ids");
  const std::int64_t positions = hidden_in.size(0) * hidden_in.size(1);
  if (target_rows.numel() > 0) {
    const auto lo = target_rows.min().item<std::int64_t>(),
               hi = target_rows.max().item<std::int64_t>();
    MR_CHECK_AS(BackendError, lo >= 0 && hi < positions, "target_logprobs: target row ",
                lo < 0 ? lo : hi, " outside the batch's ", positions, " positions");
    const auto tlo = target_ids.min().item<std::int64_t>(),
               thi = target_ids.max().item<std::int64_t>();
    MR_CHECK_AS(BackendError, tlo >= 0 && thi < config_.vocab_size, "target_logprobs: token id ",
                tlo < 0 ? tlo : thi, " outside the vocabulary [0, ", config_.vocab_size, ")");
  }
  MR_CHECK_AS(BackendError, block_rows >= 0, "target_logprobs: block_rows must be >= 0, got ",
              block_rows);
  auto hidden = hidden_in.reshape({-1, hidden_in.size(-1)}).index_select(0, target_rows);
  const std::int64_t block =
      block_rows > 0 ? block_rows
                     : std::max<std::int64_t>(1, kLogitBlockElements / config_.vocab_size);
  // An adapter (or a bias) on lm_head goes through the module, block by block without
  // recomputation: still no [B, T, V] tensor, only [R, V].
  const bool plain_head =
      !lm_head_ || (!lm_head_->bias.defined() && !(lm_head_->lora && *lm_head_->lora->enabled));
  if (!plain_head) {
    auto rows = logits(hidden);
    return rows.gather(1, target_ids.unsqueeze(1)).squeeze(1) - rows.logsumexp(1);
  }
  const auto& weight = lm_head_ ? lm_head_->weight : model_->embed_weight;
  return BlockedTargetLogProbs::apply(hidden, weight, target_ids, block);
}

}  // namespace mr::torch_backend
