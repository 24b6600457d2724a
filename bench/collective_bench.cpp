// All-reduce bandwidth of the process group distributed runs use (results in docs/benchmarks.md,
// "Distributed runs"): sum all-reduces of float32 tensors from 4 KiB to 64 MiB through the
// sdk::Collective that training's GradientReducer uses, the 25 MiB bucket included. Run one
// process per rank with the torchrun environment, e.g. through `bench/collective_bench.sh 2`:
//
//   RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29600 build/bin/mr_collective_bench &
//   RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29600 build/bin/mr_collective_bench
//
// Rank 0 prints one row per size: the median time of --rounds all-reduces after a warm-up, the
// algorithm bandwidth (bytes / time) and the bus bandwidth (2 (n - 1) / n x that, NCCL's
// convention: what each link carried in a ring all-reduce).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "metareward/core/distributed/process_group.hpp"
#include "metareward/sdk/collective.hpp"

namespace core = mr::core;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) try {
  int rounds = 20;
  std::string backend = "gloo";
  int threads = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--rounds" && i + 1 < argc) {
      rounds = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--backend" && i + 1 < argc) {
      backend = argv[++i];
    } else if (a == "--threads" && i + 1 < argc) {
      threads = std::max(1, std::atoi(argv[++i]));
    } else {
      std::cerr << "usage: mr_collective_bench [--rounds N] [--backend gloo|nccl|auto] "
                   "[--threads T]\n";
      return 2;
    }
  }
  torch::set_num_threads(threads);
  const core::WorldEnv env = core::read_world_env();
  core::DistributedOptions options;
  options.backend = backend;
  options.timeout = std::chrono::seconds(120);
  auto group = core::connect_process_group(env, options);
  mr::sdk::Collective& collective = *group->collective();
  const int n = group->world_size();
  const bool cuda = group->backend() == "nccl";
  const auto device =
      cuda ? torch::Device(torch::kCUDA, env.local_rank) : torch::Device(torch::kCPU);

  if (group->rank() == 0)
    std::printf("world %d, backend %s, %d rounds\n%10s %12s %14s %14s\n", n,
                group->backend().c_str(), rounds, "bytes", "median ms", "algbw MB/s", "busbw MB/s");
  for (std::int64_t bytes = 4096; bytes <= (std::int64_t{64} << 20); bytes *= 4) {
    // 25 MiB, the gradient bucket, in place of the 16 MiB step.
    const std::int64_t size = bytes == (std::int64_t{16} << 20) ? (std::int64_t{25} << 20) : bytes;
    torch::Tensor t = torch::ones({size / 4}, torch::TensorOptions().device(device));
    for (int w = 0; w < 3; ++w) collective.all_reduce_sum(t);
    std::vector<double> ms;
    for (int r = 0; r < rounds; ++r) {
      group->barrier("bench round");
      const auto start = Clock::now();
      collective.all_reduce_sum(t);
      if (cuda) t.cpu();  // waits for the stream
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    }
    std::sort(ms.begin(), ms.end());
    const double median = ms[ms.size() / 2];
    const double algbw = static_cast<double>(size) / (median / 1000.0) / 1e6;
    if (group->rank() == 0)
      std::printf("%10lld %12.3f %14.1f %14.1f\n", static_cast<long long>(size), median, algbw,
                  algbw * 2.0 * (n - 1) / n);
    if (group->rank() == 0) std::fflush(stdout);
  }
  group->barrier("bench end");
  return 0;
} catch (const std::exception& e) {
  std::cerr << "mr_collective_bench: " << e.what() << "\n";
  return 1;
}
