/// @file sampling_bench.cpp
/// The torch backend's per-row sampling (backend/src/sampling.cpp) at real vocabulary sizes:
/// sample_token over rows of random logits (N(0, sigma^2)), greedy and at the recipe's
/// temperature 0.8 / top-p 0.95, and with top-k 50 as well. Generation samples every row after
/// each decode step on one thread, so this cost adds to the step's whatever the batch's model
/// time. Not run by ctest; results go to docs/benchmarks.md.
///
///   mr_sampling_bench [--rows 32] [--reps 20] [--sigma 3] [--vocabs 49152,128256,151936]
#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "sampling.hpp"

namespace {

struct Options {
  int rows = 32;
  int reps = 20;
  double sigma = 3.0;
  std::string vocabs = "49152,128256,151936";
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "error: %s\nusage: mr_sampling_bench [--rows N] [--reps N] [--sigma X] "
               "[--vocabs LIST]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") usage("help requested");
    if (i + 1 >= argc) usage(("missing value after " + flag).c_str());
    const char* value = argv[++i];
    char* end = nullptr;
    if (flag == "--rows") {
      o.rows = static_cast<int>(std::strtol(value, &end, 10));
    } else if (flag == "--reps") {
      o.reps = static_cast<int>(std::strtol(value, &end, 10));
    } else if (flag == "--sigma") {
      o.sigma = std::strtod(value, &end);
    } else if (flag == "--vocabs") {
      o.vocabs = value;
      continue;
    } else {
      usage(("unknown option " + flag).c_str());
    }
    if (end == value || *end != '\0') usage(("bad value for " + flag + ": " + value).c_str());
  }
  if (o.rows < 1 || o.reps < 1 || !(o.sigma > 0)) usage("--rows, --reps, --sigma must be > 0");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  namespace tb = mr::plugins::torch_backend;
  const Options o = parse(argc, argv);
  std::printf("sample_token: %d rows of N(0, %.2g^2) logits per batch, best of %d batches\n",
              o.rows, o.sigma, o.reps);
  std::stringstream list(o.vocabs);
  for (std::string item; std::getline(list, item, ',');) {
    const long vocab = std::strtol(item.c_str(), nullptr, 10);
    if (vocab < 1) usage(("bad vocabulary size " + item).c_str());
    std::vector<float> logits(static_cast<std::size_t>(vocab) * o.rows);
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, static_cast<float>(o.sigma));
    for (auto& l : logits) l = normal(rng);
    struct Mode {
      const char* name;
      double temperature;
      std::int64_t top_k;
      double top_p;
    };
    for (const Mode mode : {Mode{"greedy", 0.0, 0, 1.0}, Mode{"t0.8_p0.95", 0.8, 0, 0.95},
                            Mode{"t0.8_k50_p0.95", 0.8, 50, 0.95}}) {
      auto generator = at::detail::createCPUGenerator(7);
      std::vector<float> probs;
      tb::NucleusScratch scratch;
      double best = 1e30;
      std::int64_t checksum = 0;
      for (int rep = 0; rep < o.reps; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int r = 0; r < o.rows; ++r)
          checksum +=
              tb::sample_token(logits.data() + static_cast<std::size_t>(r) * vocab, vocab,
                               mode.temperature, mode.top_k, mode.top_p, generator, probs, scratch);
        best = std::min(
            best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      std::printf(
          "RESULT sampling vocab=%ld mode=%s rows=%d batch_ms=%.3f row_us=%.1f "
          "checksum=%lld\n",
          vocab, mode.name, o.rows, 1e3 * best, 1e6 * best / o.rows,
          static_cast<long long>(checksum));
    }
  }
  return 0;
}
