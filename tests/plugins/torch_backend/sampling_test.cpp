// The torch backend's per-row sampling (backend/src/sampling.cpp): the bucketed top-p cut
// against a sort-based reference, and sample_token's draws against the nucleus distribution.
#include <catch2/catch.hpp>

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <random>

#include "sampling.hpp"

namespace tb = mr::plugins::torch_backend;

namespace {

// The definition itself: sort the kept values (>= floor, > 0) descending and stop at the first
// whose running sum reaches `mass`.
float reference_threshold(const std::vector<float>& probs, float floor, double mass) {
  std::vector<float> kept;
  for (const float p : probs)
    if (p >= floor && p > 0.0f) kept.push_back(p);
  std::sort(kept.begin(), kept.end(), std::greater<float>());
  double sum = 0.0;
  for (const float p : kept) {
    sum += p;
    if (sum >= mass) return p;
  }
  return kept.back();
}

// exp(logit - max) as sample_token computes them, so the largest is exactly 1.
std::vector<float> probs_of(const std::vector<float>& logits, double temperature) {
  const float max = *std::max_element(logits.begin(), logits.end());
  const auto inv_t = static_cast<float>(1.0 / temperature);
  std::vector<float> probs;
  for (const float l : logits) probs.push_back(std::exp((l - max) * inv_t));
  return probs;
}

double sum_at_least(const std::vector<float>& probs, float v) {
  double s = 0.0;
  for (const float p : probs)
    if (p >= v) s += p;
  return s;
}

}  // namespace

TEST_CASE("sampling: the bucketed top-p cut equals the sorted-prefix definition",
          "[torch_backend][sampling]") {
  std::mt19937 rng(7);
  tb::NucleusScratch scratch;
  struct Shape {
    const char* name;
    std::function<float()> logit;
  };
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> level(0, 12);
  const std::vector<Shape> shapes = {
      {"peaked (logits N(0, 3^2))", [&] { return 3.0f * normal(rng); }},
      {"flat (logits N(0, 0.01^2))", [&] { return 0.01f * normal(rng); }},
      {"ties (13 logit levels)", [&] { return 0.5f * static_cast<float>(level(rng)); }},
      {"one-hot-like (one logit far above)", [&] { return normal(rng); }},
  };
  for (const auto& shape : shapes) {
    for (const std::int64_t vocab : {1, 2, 7, 300, 49152}) {
      std::vector<float> logits(static_cast<std::size_t>(vocab));
      for (auto& l : logits) l = shape.logit();
      if (std::string(shape.name).rfind("one-hot", 0) == 0) logits[vocab / 2] = 40.0f;
      for (const double temperature : {0.7, 1.0}) {
        const auto probs = probs_of(logits, temperature);
        for (const bool with_floor : {false, true}) {
          // A floor as top-k leaves it: the 10th largest probability (or 0 below 10 values).
          float floor = 0.0f;
          if (with_floor) {
            auto sorted = probs;
            std::sort(sorted.begin(), sorted.end(), std::greater<float>());
            if (sorted.size() >= 10) floor = sorted[9];
            for (const std::int64_t k : {1, 2, 10, 300}) {
              INFO(shape.name << ", vocab " << vocab << ", T " << temperature << ", k " << k);
              const float want =
                  k <= static_cast<std::int64_t>(sorted.size()) ? sorted[k - 1] : 0.0f;
              CHECK(tb::kth_largest(probs, k, scratch) == want);
            }
            CHECK(tb::kth_largest(probs, 10, scratch) == floor);
          }
          const double kept = sum_at_least(probs, floor);
          // Below 1: sample_token cuts only then; at 1 the mass is the total, which sums in
          // another order round differently and the cut's last (tiny) value is rounding's choice.
          for (const double top_p : {0.05, 0.5, 0.9, 0.95, 0.999, 0.9999}) {
            INFO(shape.name << ", vocab " << vocab << ", T " << temperature << ", floor " << floor
                            << ", top_p " << top_p);
            const float got = tb::nucleus_threshold(probs, floor, top_p * kept, scratch);
            CHECK(got == reference_threshold(probs, floor, top_p * kept));
            // The kept set reaches the mass, and would not without the cut's own value.
            CHECK(sum_at_least(probs, got) >= top_p * kept * (1 - 1e-12));
          }
        }
      }
    }
  }
}

TEST_CASE("sampling: zeros, NaNs and values above 1 are never kept", "[torch_backend][sampling]") {
  tb::NucleusScratch scratch;
  const std::vector<float> probs = {0.0f, 1.0f, std::nanf(""), 0.25f, 0.0f, 0.5f};
  CHECK(tb::nucleus_threshold(probs, 0.0f, 1.2, scratch) == 0.5f);
  CHECK(tb::nucleus_threshold(probs, 0.0f, 1.5, scratch) == 0.5f);  // Reached exactly.
  CHECK(tb::nucleus_threshold(probs, 0.0f, 1.75, scratch) == 0.25f);
  CHECK(tb::kth_largest(probs, 2, scratch) == 0.5f);
  CHECK(tb::kth_largest(probs, 3, scratch) == 0.25f);
  CHECK(tb::kth_largest(probs, 4, scratch) == 0.0f);  // Only 3 are positive.
  // A mass rounding puts just above the total keeps every positive value.
  CHECK(tb::nucleus_threshold(probs, 0.0f, 1.75 + 1e-9, scratch) == 0.25f);
}

TEST_CASE("sampling: sample_token draws from the top-p nucleus in proportion",
          "[torch_backend][sampling]") {
  // Probabilities 0.4, 0.3, 0.2, 0.06, 0.04 (in a shuffled order): top_p 0.85 keeps the three
  // largest (0.9 >= 0.85), renormalised to 4/9, 3/9, 2/9.
  const std::vector<double> p = {0.06, 0.3, 0.04, 0.4, 0.2};
  std::vector<float> logits;
  for (const double x : p) logits.push_back(static_cast<float>(std::log(x)));
  auto generator = at::detail::createCPUGenerator(123);
  std::vector<float> probs;
  tb::NucleusScratch scratch;
  std::map<std::int64_t, int> counts;
  const int draws = 30000;
  for (int i = 0; i < draws; ++i)
    ++counts[tb::sample_token(logits.data(), 5, 1.0, 0, 0.85, generator, probs, scratch)];
  CHECK(counts.count(0) == 0);
  CHECK(counts.count(2) == 0);
  // Each share within 4 standard deviations (sd <= 0.0029 at 30000 draws).
  CHECK(std::abs(counts[3] / double(draws) - 4.0 / 9) < 0.012);
  CHECK(std::abs(counts[1] / double(draws) - 3.0 / 9) < 0.012);
  CHECK(std::abs(counts[4] / double(draws) - 2.0 / 9) < 0.012);
  // top_k 2 keeps 0.4 and 0.3; top_p 0.5 of those 0.7 is reached by 0.4 alone.
  counts.clear();
  for (int i = 0; i < 2000; ++i)
    ++counts[tb::sample_token(logits.data(), 5, 1.0, 2, 0.5, generator, probs, scratch)];
  CHECK(counts.size() == 1);
  CHECK(counts[3] == 2000);
  // Temperature 0 is the argmax whatever the generator.
  CHECK(tb::sample_token(logits.data(), 5, 0.0, 0, 0.85, generator, probs, scratch) == 3);
}

TEST_CASE("sampling: greedy takes the first of the largest logits", "[torch_backend][sampling]") {
  auto generator = at::detail::createCPUGenerator(5);
  std::vector<float> probs;
  tb::NucleusScratch scratch;
  auto greedy = [&](const std::vector<float>& logits) {
    return tb::sample_token(logits.data(), static_cast<std::int64_t>(logits.size()), 0.0, 0, 1.0,
                            generator, probs, scratch);
  };
  for (const std::size_t vocab : {3, 16, 17, 40, 49152}) {
    INFO("vocab " << vocab);
    std::vector<float> logits(vocab);
    for (std::size_t i = 0; i < vocab; ++i) logits[i] = static_cast<float>((i * 37) % 11) - 5.0f;
    logits[0] = 9.0f;
    CHECK(greedy(logits) == 0);
    logits[0] = 0.0f;
    logits[vocab - 1] = 9.0f;
    CHECK(greedy(logits) == static_cast<std::int64_t>(vocab - 1));
    if (vocab < 16) continue;
    logits[3] = std::nanf("");  // Passed over, as std::max_element does.
    logits[9] = 9.0f;
    CHECK(greedy(logits) == 9);
    logits[0] = std::nanf("");  // A NaN first wins, as with std::max_element.
    CHECK(greedy(logits) == 0);
  }
}
