// Internal to the torch backend: per-row token sampling and stop-string search of generation.
#pragma once

#include <ATen/core/Generator.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mr::plugins::torch_backend {

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
                          std::vector<float>& scratch);

/// Position of the earliest stop string in `text` starting at or after `from`, or npos.
std::size_t find_stop(const std::string& text,
                      std::size_t from,
                      const std::vector<std::string>& stops);

}  // namespace mr::plugins::torch_backend
