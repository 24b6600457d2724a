// Platform-independent draws over std::mt19937_64.
#include "metareward/testbed/rng.hpp"

#include "metareward/sdk/host.hpp"

namespace mr::plugins::testbed {

std::uint64_t Rng::uniform_below(std::uint64_t n) {
  // Reject the top partial block of [0, 2^64) so that every residue is equally likely.
  const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  std::uint64_t x = engine_();
  while (x >= limit) x = engine_();
  return x % n;
}

std::int64_t Rng::uniform_int(std::int64_t lo, std::int64_t hi) {
  const auto span = static_cast<std::uint64_t>(hi - lo) + 1;
  return lo + static_cast<std::int64_t>(uniform_below(span));
}

double Rng::uniform01() {
  return static_cast<double>(engine_() >> 11) * 0x1.0p-53;
}

bool Rng::bernoulli(double p) {
  return uniform01() < p;
}

std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t stream) {
  return mr::sdk::derive_seed(seed, stream);
}

}  // namespace mr::plugins::testbed
