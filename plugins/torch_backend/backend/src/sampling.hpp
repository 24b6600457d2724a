// Internal to the torch backend: per-row token sampling and stop-string search of generation.
#pragma once

#include <ATen/core/Generator.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mr::plugins::torch_backend {

/// Reusable buffers of sample_token(), kth_largest() and nucleus_threshold().
struct NucleusScratch {
  std::vector<float> values;                ///< The values a selection reorders.
  std::vector<double> bucket_sums;          ///< Sums of the probabilities per value bucket.
  std::vector<std::int64_t> bucket_counts;  ///< Numbers of probabilities per value bucket.
};

/// The top-k cut of one row: the k-th largest of the probabilities in (0, 1] (`probs` as in
/// nucleus_threshold()), or 0 when fewer than k are positive (top-k then keeps them all).
/// Linear time, by counting per bucket and selecting only in the bucket holding the k-th.
float kth_largest(const std::vector<float>& probs, std::int64_t k, NucleusScratch& scratch);

/// The top-p cut of one row: the smallest value v among the probabilities >= `floor` (those
/// top-k keeps; 0 keeps all) such that the kept values >= v sum to at least `mass`; the values
/// tied with v are kept too. `probs` holds exp(logit - max), so they lie in (0, 1]; zeros and
/// values outside that range are never kept. Linear time: the probabilities are summed per
/// bucket (1/16 of a binade) and only the bucket where the mass is reached is selected in.
float nucleus_threshold(const std::vector<float>& probs,
                        float floor,
                        double mass,
                        NucleusScratch& scratch);

/// Next token of one row from its logits [V]: greedy at temperature 0 (or top_k 1), else
/// softmax(logits / T) restricted to top-k, then to the top-p nucleus, sampled by inverse CDF in
/// index order with one uniform draw from the row's generator. `probs` and `scratch` are
/// reusable buffers.
std::int64_t sample_token(const float* logits,
                          std::int64_t vocab,
                          double temperature,
                          std::int64_t top_k,
                          double top_p,
                          at::Generator& generator,
                          std::vector<float>& probs,
                          NucleusScratch& scratch);

/// Position of the earliest stop string in `text` starting at or after `from`, or npos.
std::size_t find_stop(const std::string& text,
                      std::size_t from,
                      const std::vector<std::string>& stops);

}  // namespace mr::plugins::torch_backend
