// ProcessGroup over torch.distributed's c10d (process_group.hpp): a TCPStore hosted by rank 0, a
// Gloo group for the host's messages (CPU bytes), and the training tensors' group (the same Gloo
// group, or NCCL on CUDA builds). A heartbeat per rank in the store lets a rank whose collective
// failed name the rank that exited or hung.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(MR_WITH_NCCL)
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "metareward/core/distributed/process_group.hpp"
#include "metareward/sdk/collective.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::core {

namespace {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

std::int64_t wall_ms() {
  return std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::vector<std::uint8_t> to_bytes(const std::string& s) {
  return {s.begin(), s.end()};
}

std::string first_line(const std::exception& e) {
  std::string s = e.what();
  return s.substr(0, s.find('\n'));
}

constexpr Millis kHeartbeatEvery{1000};
constexpr std::int64_t kStaleAfterMs = 3000;

/// The store connection of one rank's heartbeat thread (its own client: TCPStore clients are not
/// meant to be shared between threads).
class Heartbeat {
 public:
  Heartbeat(const WorldEnv& env, Millis timeout) : rank_(env.rank) {
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(env.master_port);
    o.isServer = false;
    o.waitWorkers = false;
    o.timeout = timeout;
    store_ = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
    beat();
    thread_ = std::thread([this] { loop(); });
  }
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;
  ~Heartbeat() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void beat() {
    store_->set("metareward/heartbeat/" + std::to_string(rank_),
                to_bytes(std::to_string(wall_ms())));
  }
  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!wake_.wait_for(lock, kHeartbeatEvery, [this] { return stop_; })) {
      try {
        beat();
      } catch (const std::exception&) {
        return;  // The store is gone (rank 0 exited): the next collective reports it.
      }
    }
  }

  int rank_;
  c10::intrusive_ptr<c10d::TCPStore> store_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

class C10dProcessGroup;

/// The sdk::Collective of a C10dProcessGroup (training tensors).
class C10dCollective final : public sdk::Collective {
 public:
  explicit C10dCollective(C10dProcessGroup& group) : group_(group) {}
  int rank() const override;
  int world_size() const override;
  std::unique_ptr<sdk::CollectiveWork> all_reduce_sum_async(torch::Tensor tensor) override;
  std::vector<std::string> all_gather_bytes(const std::string& bytes) override;
  void broadcast(const torch::Tensor& tensor, int root) override;

 private:
  C10dProcessGroup& group_;
};

class C10dProcessGroup final : public ProcessGroup {
 public:
  C10dProcessGroup(const WorldEnv& env, const DistributedOptions& options)
      : env_(env), timeout_(options.timeout), collective_(*this) {
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(env.master_port);
    o.isServer = env.rank == 0;
    o.numWorkers = static_cast<std::size_t>(env.world_size);
    o.waitWorkers = true;
    o.timeout = timeout_;
    const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
    spdlog::info("rank {}/{}: connecting to the other ranks through the store at {}", env.rank,
                 env.world_size, where);
    try {
      tcp_store_ = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
      store_ = c10::make_intrusive<c10d::PrefixStore>("metareward", tcp_store_);
      auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout_);
      gloo_options->devices.push_back(gloo_device(env));
      gloo_ = c10::make_intrusive<c10d::ProcessGroupGloo>(
          c10::make_intrusive<c10d::PrefixStore>("gloo", store_), env.rank, env.world_size,
          gloo_options);
      heartbeat_ = std::make_unique<Heartbeat>(env, timeout_);
    } catch (const sdk::Error&) {
      throw;
    } catch (const std::exception& e) {
      throw sdk::DistributedError(
          "rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) +
          ": cannot connect to the other ranks through the store at " + where + " within " +
          std::to_string(timeout_.count() / 1000) + " s: " + first_line(e) +
          " (are all WORLD_SIZE ranks started, with the same MASTER_ADDR and MASTER_PORT?)");
    }
    backend_ = choose_backend(options.backend);
    data_ = gloo_;
#if defined(MR_WITH_NCCL)
    if (backend_ == "nccl") {
      // NCCL communicators belong to the current device: this rank's GPU, as the models'
      // device = "cuda" resolves it.
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(env.local_rank));
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = timeout_;
      data_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(
          c10::make_intrusive<c10d::PrefixStore>("nccl", store_), env.rank, env.world_size,
          nccl_options);
    }
#endif
    spdlog::info("rank {}/{}: connected ({} for training tensors, timeout {} s)", env.rank,
                 env.world_size, backend_, timeout_.count() / 1000);
  }

  ~C10dProcessGroup() override {
    heartbeat_.reset();
    data_.reset();
    gloo_.reset();
  }

  int rank() const override {
    return env_.rank;
  }
  int world_size() const override {
    return env_.world_size;
  }
  const WorldEnv& env() const override {
    return env_;
  }
  std::string backend() const override {
    return backend_;
  }
  sdk::Collective* collective() override {
    return &collective_;
  }

  std::string broadcast_bytes(const std::string& bytes, const std::string& what) override {
    return guarded("broadcast of the " + what, [&] {
      torch::Tensor size = torch::tensor({static_cast<std::int64_t>(bytes.size())}, torch::kInt64);
      run(
          *gloo_, [&](std::vector<at::Tensor>& t) { return gloo_->broadcast(t); }, size);
      const std::int64_t n = size.item<std::int64_t>();
      torch::Tensor payload = torch::empty({n}, torch::kUInt8);
      if (env_.rank == 0 && n > 0) std::memcpy(payload.data_ptr(), bytes.data(), bytes.size());
      if (n > 0)
        run(
            *gloo_, [&](std::vector<at::Tensor>& t) { return gloo_->broadcast(t); }, payload);
      return std::string(static_cast<const char*>(payload.data_ptr()), static_cast<std::size_t>(n));
    });
  }

  std::vector<std::string> all_gather_bytes(const std::string& bytes,
                                            const std::string& what) override {
    return guarded("gather of the " + what, [&] { return gather_on(*gloo_, bytes); });
  }

  void barrier(const std::string& what) override {
    guarded("barrier (" + what + ")", [&] {
      // A tiny all-reduce rather than Gloo's barrier: it fails with the same messages as the
      // other collectives when a rank is gone.
      torch::Tensor one = torch::ones({1}, torch::kInt64);
      std::vector<at::Tensor> v{one};
      gloo_->allreduce(v)->wait();
      return 0;
    });
  }

  void report_failure(const std::string& message) noexcept override {
    try {
      tcp_store_->set("metareward/failed/" + std::to_string(env_.rank), to_bytes(message));
    } catch (...) {
    }
  }

  // Used by C10dCollective.
  std::unique_ptr<sdk::CollectiveWork> all_reduce_async(torch::Tensor tensor);
  std::vector<std::string> gather_training_bytes(const std::string& bytes) {
    return guarded("gather of training metrics", [&] { return gather_on(*gloo_, bytes); });
  }
  void broadcast_tensor(const torch::Tensor& tensor, int root) {
    guarded("broadcast of a tensor", [&] {
      c10d::BroadcastOptions o;
      o.rootRank = root;
      std::vector<at::Tensor> v{tensor};
      data_->broadcast(v, o)->wait();
      return 0;
    });
  }

  /// Runs `body`, turning a c10d failure into a DistributedError that names the ranks that
  /// stopped answering.
  template <class Body>
  auto guarded(const std::string& what, Body&& body) -> decltype(body()) {
    try {
      return body();
    } catch (const sdk::Error&) {
      throw;
    } catch (const std::exception& e) {
      throw sdk::DistributedError("rank " + std::to_string(env_.rank) + ": the " + what +
                                  " failed: " + diagnose() + " [" + first_line(e) + "]");
    }
  }

 private:
  static std::shared_ptr<::gloo::transport::Device> gloo_device(const WorldEnv& env) {
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname != nullptr && *ifname)
      return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
    if (env.master_addr == "127.0.0.1" || env.master_addr == "localhost" ||
        env.master_addr == "::1")
      return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
    return c10d::ProcessGroupGloo::createDefaultDevice();
  }

  static std::string choose_backend(const std::string& requested) {
#if defined(MR_WITH_NCCL)
    const bool nccl = true;
#else
    const bool nccl = false;
#endif
    if (requested == "gloo") return "gloo";
    if (requested == "nccl") {
      if (!nccl)
        throw sdk::ConfigError(
            "[distributed] backend = \"nccl\", but this build of metareward has no NCCL (its "
            "libtorch was built without CUDA); use backend = \"gloo\" or build with the cuda "
            "preset");
      if (!torch::cuda::is_available())
        throw sdk::ConfigError(
            "[distributed] backend = \"nccl\" needs a CUDA device, and none is available");
      return "nccl";
    }
    return nccl && torch::cuda::is_available() ? "nccl" : "gloo";
  }

  template <class Op>
  static void run(c10d::ProcessGroup&, Op&& op, const torch::Tensor& tensor) {
    std::vector<at::Tensor> v{tensor};
    op(v)->wait();
  }

  std::vector<std::string> gather_on(c10d::ProcessGroup& group, const std::string& bytes) {
    const int n = env_.world_size;
    std::vector<at::Tensor> size_in{
        torch::tensor({static_cast<std::int64_t>(bytes.size())}, torch::kInt64)};
    std::vector<std::vector<at::Tensor>> size_out(1);
    for (int r = 0; r < n; ++r) size_out[0].push_back(torch::empty({1}, torch::kInt64));
    group.allgather(size_out, size_in)->wait();
    std::int64_t longest = 0;
    for (const auto& s : size_out[0]) longest = std::max(longest, s.item<std::int64_t>());
    std::vector<std::string> out(static_cast<std::size_t>(n));
    if (longest == 0) return out;
    std::vector<at::Tensor> in{torch::zeros({longest}, torch::kUInt8)};
    std::memcpy(in[0].data_ptr(), bytes.data(), bytes.size());
    std::vector<std::vector<at::Tensor>> all(1);
    for (int r = 0; r < n; ++r) all[0].push_back(torch::empty({longest}, torch::kUInt8));
    group.allgather(all, in)->wait();
    for (int r = 0; r < n; ++r)
      out[static_cast<std::size_t>(r)].assign(
          static_cast<const char*>(all[0][static_cast<std::size_t>(r)].data_ptr()),
          static_cast<std::size_t>(size_out[0][static_cast<std::size_t>(r)].item<std::int64_t>()));
    return out;
  }

  /// The ranks the store shows as gone: failures they reported, heartbeats that stopped.
  std::vector<std::string> stopped_ranks(c10d::TCPStore& probe) {
    std::vector<std::string> found;
    const std::int64_t now = wall_ms();
    for (int r = 0; r < env_.world_size; ++r) {
      if (r == env_.rank) continue;
      const std::string failed = "metareward/failed/" + std::to_string(r);
      if (probe.check({failed})) {
        const auto v = probe.get(failed);
        found.push_back("rank " + std::to_string(r) +
                        " failed: " + std::string(v.begin(), v.end()));
        continue;
      }
      const std::string beat = "metareward/heartbeat/" + std::to_string(r);
      if (!probe.check({beat})) {
        found.push_back("rank " + std::to_string(r) + " never joined");
        continue;
      }
      const auto v = probe.get(beat);
      const std::int64_t age = now - std::stoll(std::string(v.begin(), v.end()));
      if (age > kStaleAfterMs)
        found.push_back("rank " + std::to_string(r) + " stopped responding (no heartbeat for " +
                        std::to_string(age / 1000) + " s: it exited or hangs)");
    }
    return found;
  }

  /// Which ranks are gone, from the store: failures they reported, heartbeats that stopped. When
  /// the store itself is unreachable, rank 0 (its host) has exited.
  std::string diagnose() noexcept {
    try {
      c10d::TCPStoreOptions o;
      o.port = static_cast<std::uint16_t>(env_.master_port);
      o.isServer = false;
      o.waitWorkers = false;
      o.timeout = Millis(3000);
      c10d::TCPStore probe(env_.master_addr, o);
      // A rank that just died still has a recent heartbeat: give it time to go stale.
      std::vector<std::string> found;
      const auto deadline = Clock::now() + Millis(kStaleAfterMs + 2000);
      for (;;) {
        found = stopped_ranks(probe);
        if (!found.empty() || Clock::now() >= deadline) break;
        std::this_thread::sleep_for(Millis(250));
      }
      if (found.empty())
        return "a rank exited or did not answer within the timeout (" +
               std::to_string(timeout_.count() / 1000) + " s), but every heartbeat is recent";
      std::string s;
      for (const auto& f : found) s += (s.empty() ? "" : "; ") + f;
      return s;
    } catch (...) {
      return env_.rank == 0 ? std::string("the store on this rank is unreachable")
                            : std::string(
                                  "rank 0 (which hosts the store) is unreachable: it "
                                  "exited");
    }
  }

  WorldEnv env_;
  Millis timeout_;
  std::string backend_ = "gloo";
  c10::intrusive_ptr<c10d::TCPStore> tcp_store_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroup> gloo_;
  c10::intrusive_ptr<c10d::ProcessGroup> data_;
  std::unique_ptr<Heartbeat> heartbeat_;
  C10dCollective collective_;
};

class C10dWork final : public sdk::CollectiveWork {
 public:
  C10dWork(C10dProcessGroup& group, c10::intrusive_ptr<c10d::Work> work)
      : group_(group), work_(std::move(work)) {}
  void wait() override {
    group_.guarded("all-reduce of gradients", [&] {
      work_->wait();
      return 0;
    });
  }

 private:
  C10dProcessGroup& group_;
  c10::intrusive_ptr<c10d::Work> work_;
};

std::unique_ptr<sdk::CollectiveWork> C10dProcessGroup::all_reduce_async(torch::Tensor tensor) {
  return guarded("all-reduce of gradients", [&] {
    std::vector<at::Tensor> v{std::move(tensor)};
    return std::unique_ptr<sdk::CollectiveWork>(
        std::make_unique<C10dWork>(*this, data_->allreduce(v)));
  });
}

int C10dCollective::rank() const {
  return group_.rank();
}
int C10dCollective::world_size() const {
  return group_.world_size();
}
std::unique_ptr<sdk::CollectiveWork> C10dCollective::all_reduce_sum_async(torch::Tensor tensor) {
  return group_.all_reduce_async(std::move(tensor));
}
std::vector<std::string> C10dCollective::all_gather_bytes(const std::string& bytes) {
  return group_.gather_training_bytes(bytes);
}
void C10dCollective::broadcast(const torch::Tensor& tensor, int root) {
  group_.broadcast_tensor(tensor, root);
}

}  // namespace

std::unique_ptr<ProcessGroup> connect_process_group(const WorldEnv& env,
                                                    const DistributedOptions& options) {
  return std::make_unique<C10dProcessGroup>(env, options);
}

}  // namespace mr::core
