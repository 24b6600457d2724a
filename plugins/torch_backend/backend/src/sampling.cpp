// Per-row token sampling (temperature, top-k, top-p with the row's own generator) and the
// stop-string search of the torch backend's generation.
#include "sampling.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
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

/// Smallest value v of `values` such that `above` plus the values >= v sum to at least `mass`,
/// by quickselect (reorders them). Ties with v are kept by the caller, so the kept set may
/// exceed the minimal nucleus by tied values only.
float select_threshold(std::vector<float>& values, double above, double mass) {
  std::size_t a = 0, b = values.size();
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

// Positive floats order as their bit patterns: the top 13 bits (exponent and 4 mantissa bits)
// split (0, 1] into 2033 buckets of 1/16 of a binade each.
constexpr int kBucketShift = 19;
constexpr std::size_t kBuckets = (0x3f800000u >> kBucketShift) + 1;

std::uint32_t bucket_of(float p) {
  std::uint32_t bits;
  std::memcpy(&bits, &p, sizeof bits);
  return bits >> kBucketShift;
}

// Whether a cut considers probability p: in (0, 1] (so never NaN) and not below `floor`.
bool considered(float p, float floor) {
  return p >= floor && p > 0.0f && p <= 1.0f;
}

// The considered probabilities that fall in `bucket`, into `values`.
void gather_bucket(const std::vector<float>& probs,
                   float floor,
                   std::size_t bucket,
                   std::vector<float>& values) {
  values.clear();
  for (const float p : probs)
    if (considered(p, floor) && bucket_of(p) == bucket) values.push_back(p);
}

/// std::max_element(logits, logits + n) (the first of the largest; NaNs are passed over unless
/// the first value is one), with 8 independent maxima instead of one chain of compares, which
/// took a quarter of a row's sampling time over 49k logits.
const float* first_max(const float* logits, std::int64_t n) {
  if (n < 16 || std::isnan(logits[0])) return std::max_element(logits, logits + n);
  float lanes[8];
  for (float& lane : lanes) lane = logits[0];
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) lanes[j] = std::max(lanes[j], logits[i + j]);
  float max = lanes[0];
  for (const float lane : lanes) max = std::max(max, lane);
  for (; i < n; ++i) max = std::max(max, logits[i]);
  return std::find(logits, logits + n, max);
}

}  // namespace

float kth_largest(const std::vector<float>& probs, std::int64_t k, NucleusScratch& scratch) {
  // As nucleus_threshold(): count per bucket, then select only in the bucket holding the k-th.
  auto& counts = scratch.bucket_counts;
  counts.assign(kBuckets, 0);
  for (const float p : probs)
    if (considered(p, 0.0f)) ++counts[bucket_of(p)];
  std::int64_t above = 0;
  std::size_t bucket = kBuckets;
  while (bucket-- > 0) {
    if (above + counts[bucket] >= k) break;
    above += counts[bucket];
  }
  if (bucket >= kBuckets) return 0.0f;  // Fewer than k positive values: top-k keeps them all.
  auto& values = scratch.values;
  gather_bucket(probs, 0.0f, bucket, values);
  const auto nth = values.begin() + (k - above - 1);
  std::nth_element(values.begin(), nth, values.end(), std::greater<float>());
  return *nth;
}

float nucleus_threshold(const std::vector<float>& probs,
                        float floor,
                        double mass,
                        NucleusScratch& scratch) {
  // The nucleus ends inside one bucket: sum the buckets (in index order), walk them from the
  // top to the one where the mass is reached, and select only within its values. That bucket
  // is usually a small share of the vocabulary, where a selection over all of it cost ~1 ms.
  auto& sums = scratch.bucket_sums;
  sums.assign(kBuckets, 0.0);
  for (const float p : probs)
    if (considered(p, floor)) sums[bucket_of(p)] += p;
  double above = 0.0;
  std::size_t bucket = kBuckets;
  while (bucket-- > 0) {
    if (sums[bucket] == 0.0) continue;
    if (above + sums[bucket] >= mass) break;
    above += sums[bucket];
  }
  if (bucket >= kBuckets) {  // Rounding: the kept values all fall short; keep them all.
    float smallest = 0.0f;
    for (const float p : probs)
      if (considered(p, floor) && (smallest == 0.0f || p < smallest)) smallest = p;
    return smallest;
  }
  auto& values = scratch.values;
  gather_bucket(probs, floor, bucket, values);
  return select_threshold(values, above, mass);
}

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
                          NucleusScratch& scratch) {
  const float* max_it = first_max(logits, vocab);
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
    threshold = kth_largest(probs, top_k, scratch);
  }
  if (top_p < 1.0) {
    double kept = total;  // Without top-k, every value is kept.
    if (threshold > 0.0f) {
      kept = 0.0;
      for (const float p : probs)
        if (p >= threshold) kept += p;
    }
    threshold = std::max(threshold, nucleus_threshold(probs, threshold, top_p * kept, scratch));
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
