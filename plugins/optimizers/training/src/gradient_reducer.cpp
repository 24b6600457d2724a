// GradientReducer (training_internal.hpp): data-parallel gradient sums in buckets, each bucket's
// all-reduce started from the parameters' autograd hooks as soon as backward has produced all of
// its gradients, so communication overlaps the rest of backward (the DDP Reducer's scheme, on
// the host's process group through sdk::Collective).
#include "training_internal.hpp"

#include "metareward/sdk/collective.hpp"

namespace mr::training::detail {

GradientReducer::GradientReducer(std::vector<torch::Tensor> params,
                                 Collective& ranks,
                                 std::int64_t bucket_bytes)
    : params_(std::move(params)), ranks_(ranks) {
  // Buckets in reverse parameter order: backward produces the last layers' gradients first.
  const std::int64_t per_bucket = std::max<std::int64_t>(1, bucket_bytes / 4);
  slot_of_.resize(params_.size());
  std::vector<std::size_t> current;
  std::int64_t current_numel = 0;
  auto close_bucket = [&] {
    if (current.empty()) return;
    Bucket b;
    b.params = current;
    b.buffer = torch::zeros(
        {current_numel},
        torch::TensorOptions().dtype(torch::kFloat32).device(params_[current.front()].device()));
    std::int64_t offset = 0;
    for (std::size_t i : current) {
      const std::int64_t n = params_[i].numel();
      slot_of_[i] = {buckets_.size(), b.slices.size()};
      b.slices.push_back(b.buffer.narrow(0, offset, n));
      offset += n;
    }
    buckets_.push_back(std::move(b));
    current.clear();
    current_numel = 0;
  };
  for (std::size_t k = params_.size(); k-- > 0;) {
    current.push_back(k);
    current_numel += params_[k].numel();
    if (current_numel >= per_bucket) close_bucket();
  }
  close_bucket();
  filled_.assign(params_.size(), false);
  got_grad_.assign(params_.size(), false);
  for (std::size_t i = 0; i < params_.size(); ++i)
    hooks_.push_back(
        params_[i].register_hook([this, i](const torch::Tensor& grad) { on_gradient(i, grad); }));
}

GradientReducer::~GradientReducer() {
  for (std::size_t i = 0; i < params_.size(); ++i) {
    try {
      params_[i].remove_hook(hooks_[i]);
    } catch (...) {  // never throw from a destructor
    }
  }
}

void GradientReducer::arm() {
  armed_ = true;
}

void GradientReducer::on_gradient(std::size_t i, const torch::Tensor& grad) {
  if (!armed_) return;  // An earlier micro-batch: autograd accumulates into .grad as usual.
  if (filled_[i]) {
    twice_ = true;  // Reported by finish(): this gradient would miss the sum.
    return;
  }
  torch::NoGradGuard no_grad;
  const auto [b, s] = slot_of_[i];
  torch::Tensor& slice = buckets_[b].slices[s];
  // The rank's whole gradient of this step: this backward's plus the earlier micro-batches'.
  slice.copy_(grad.reshape(-1));
  if (params_[i].grad().defined()) slice.add_(params_[i].grad().reshape(-1));
  filled_[i] = true;
  got_grad_[i] = true;
  ++buckets_[b].filled;
  launch_ready();
}

void GradientReducer::launch_ready() {
  // In bucket order only, so that every rank starts the same all-reduces in the same order.
  while (next_launch_ < buckets_.size() &&
         buckets_[next_launch_].filled == buckets_[next_launch_].params.size()) {
    buckets_[next_launch_].work = ranks_.all_reduce_sum_async(buckets_[next_launch_].buffer);
    ++next_launch_;
  }
}

GradientReducer::Result GradientReducer::finish() {
  torch::NoGradGuard no_grad;
  // Parameters backward did not reach in the armed pass (or no micro-batch ran on this rank):
  // their gradient so far, else zeros.
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (filled_[i]) continue;
    const auto [b, s] = slot_of_[i];
    if (params_[i].grad().defined()) {
      buckets_[b].slices[s].copy_(params_[i].grad().reshape(-1));
      got_grad_[i] = true;
    } else {
      buckets_[b].slices[s].zero_();
    }
    filled_[i] = true;
    ++buckets_[b].filled;
  }
  launch_ready();
  for (auto& b : buckets_) {
    b.work->wait();
    b.work.reset();
  }
  Result result;
  result.hooks_fired_twice = twice_;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const auto [b, s] = slot_of_[i];
    result.gradients.push_back(buckets_[b].slices[s].view(params_[i].sizes()));
    result.got_gradient.push_back(got_grad_[i]);
  }
  // Ready for the next step.
  armed_ = false;
  twice_ = false;
  next_launch_ = 0;
  std::fill(filled_.begin(), filled_.end(), false);
  std::fill(got_grad_.begin(), got_grad_.end(), false);
  for (auto& b : buckets_) b.filled = 0;
  return result;
}

}  // namespace mr::training::detail
