/// @file rng.hpp
/// The testbed's random source: std::mt19937_64 (whose output sequence the standard fixes) with
/// our own draws on top. std::uniform_int_distribution and friends are not used because their
/// algorithms differ across standard libraries, and the testbed's data must be byte-identical
/// for a seed on every platform.
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace mr::plugins::testbed {

/// A seeded random stream. Not thread-safe; give each consumer its own stream (see stream_seed).
class Rng {
 public:
  /// A stream whose whole output is determined by `seed`.
  explicit Rng(std::uint64_t seed) : engine_(seed) {}

  /// The next raw 64-bit draw.
  std::uint64_t next() { return engine_(); }

  /// Uniform integer in [0, n), n > 0; exact (rejection sampling, no modulo bias).
  std::uint64_t uniform_below(std::uint64_t n);

  /// Uniform integer in [lo, hi] (inclusive), lo <= hi.
  std::int64_t uniform_int(std::int64_t lo, std::int64_t hi);

  /// Uniform double in [0, 1) with 53 random bits.
  double uniform01();

  /// True with probability `p` (p <= 0 never, p >= 1 always; the draw is consumed either way so
  /// that changing a probability does not shift the rest of the stream).
  bool bernoulli(double p);

  /// Uniformly chosen element of a non-empty vector.
  template <class T>
  const T& pick(const std::vector<T>& items) {
    return items[static_cast<std::size_t>(uniform_below(items.size()))];
  }

  /// Fisher–Yates shuffle driven by uniform_below.
  template <class T>
  void shuffle(std::vector<T>& items) {
    for (std::size_t i = items.size(); i > 1; --i)
      std::swap(items[i - 1], items[static_cast<std::size_t>(uniform_below(i))]);
  }

 private:
  std::mt19937_64 engine_;
};

/// Seed of an independent named stream of a base seed (SplitMix64 mixing of both), so that e.g.
/// the eval prompts do not change when the number of SFT examples does.
std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t stream);

}  // namespace mr::plugins::testbed
