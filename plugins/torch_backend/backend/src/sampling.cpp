// Per-row token sampling (temperature, top-k, top-p with the row's own generator) and the
// stop-string search of the torch backend's generation.
#include "sampling.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <mutex>

namespace mr::plugins::torch_backend {

namespace {

/// A uniform double in [0, 1) from `generator` (53 random bits).
double uniform(at::Generator& generator) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  const std::uint64_t bits = generator.get<at::CPUGeneratorImpl>()->random64();
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

/// Smallest value v such that the values >= v (the largest ones) sum to at least `mass`, by
/// quickselect on `values` (reordered). Ties with v are kept by the caller, so the kept set may
/// exceed the minimal nucleus by tied values only.
float nucleus_threshold(std::vector<float>& values, double mass) {
  std::size_t a = 0, b = values.size();
  double above = 0.0;  // Mass of the values known to be above [a, b).
  while (b - a > 1) {
    const std::size_t mid = a + (b - a) / 2;
    std::nth_element(values.begin() + static_cast<std::ptrdiff_t>(a),
                     values.begin() + static_cast<std::ptrdiff_t>(mid),
                     values.begin() + static_cast<std::ptrdiff_t>(b), std::greater<float>());
    double upper = 0.0;
    for (std::size_t i = a; i < mid; ++i) upper += values[i];
    if (above + upper >= mass) {
      b = mid;
    } else {
      above += upper;
      a = mid;
    }
  }
  return values[a];
}

}  // namespace

/// Next token of one row from its logits [V]: greedy at temperature 0 (or top_k 1), else
/// softmax(logits / T) restricted to top-k, then to the top-p nucleus, sampled by inverse CDF in
/// index order with one uniform draw from the row's generator.
std::int64_t sample_token(const float* logits,
                          std::int64_t vocab,
                          double temperature,
                          std::int64_t top_k,
                          double top_p,
                          at::Generator& generator,
                          std::vector<float>& probs,
                          std::vector<float>& scratch) {
  const float* max_it = std::max_element(logits, logits + vocab);
  const auto argmax = static_cast<std::int64_t>(max_it - logits);
  if (temperature <= 0.0 || top_k == 1 || !std::isfinite(*max_it)) return argmax;

  probs.resize(static_cast<std::size_t>(vocab));
  const float max = *max_it;
  const auto inv_t = static_cast<float>(1.0 / temperature);
  double total = 0.0;
  for (std::int64_t i = 0; i < vocab; ++i) {
    const float p = std::exp((logits[i] - max) * inv_t);
    probs[static_cast<std::size_t>(i)] = p;
    total += p;
  }
  float threshold = 0.0f;
  if (top_k > 0 && top_k < vocab) {
    scratch.assign(probs.begin(), probs.end());
    std::nth_element(scratch.begin(), scratch.begin() + (top_k - 1), scratch.end(),
                     std::greater<float>());
    threshold = scratch[static_cast<std::size_t>(top_k - 1)];
  }
  if (top_p < 1.0) {
    scratch.clear();
    double kept = 0.0;
    for (const float p : probs) {
      if (p >= threshold) {
        scratch.push_back(p);
        kept += p;
      }
    }
    threshold = std::max(threshold, nucleus_threshold(scratch, top_p * kept));
  }
  if (threshold > 0.0f) {
    total = 0.0;
    for (const float p : probs)
      if (p >= threshold) total += p;
  }
  const double target = uniform(generator) * total;
  double cumulative = 0.0;
  std::int64_t last = argmax;
  for (std::int64_t i = 0; i < vocab; ++i) {
    const float p = probs[static_cast<std::size_t>(i)];
    if (p < threshold || p <= 0.0f) continue;
    cumulative += p;
    last = i;
    if (cumulative > target) return i;
  }
  return last;  // Rounding left the target just above the total.
}

/// Position of the earliest stop string in `text` starting at or after `from`, or npos.
std::size_t find_stop(const std::string& text,
                      std::size_t from,
                      const std::vector<std::string>& stops) {
  std::size_t best = std::string::npos;
  for (const auto& stop : stops) {
    if (stop.empty()) continue;
    const auto at = text.find(stop, from);
    if (at < best) best = at;
  }
  return best;
}

}  // namespace mr::plugins::torch_backend
