/// @file process_group.hpp
/// The ranks of a distributed run as the host sees them: who this process is (from the torchrun
/// environment) and text-level collectives over torch.distributed's c10d process group (Gloo for
/// the host's own messages; Gloo or NCCL for training tensors). No libtorch in this header: the
/// c10d implementation lives in mr_distributed (core/src/distributed), linked by the CLI.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mr::sdk {
class Collective;
class Config;
}  // namespace mr::sdk

namespace mr::core {

/// This process's place in a distributed run, as torchrun (and `metareward launch`) describe it
/// in the environment: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT.
struct WorldEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  /// True when WORLD_SIZE was set (a launcher started this process).
  bool launched = false;
};

/// Reads the torchrun variables. Unset: a one-process world. A malformed or inconsistent value
/// (RANK >= WORLD_SIZE, a port outside 1..65535, ...) is a sdk::ConfigError naming the variable.
WorldEnv read_world_env();

/// `[distributed]` of a run config.
struct DistributedOptions {
  std::string backend = "auto";  ///< "auto" | "gloo" | "nccl" (for training tensors).
  std::chrono::milliseconds timeout{std::chrono::minutes(30)};
};

/// The options of a resolved `[distributed]` section (backend, timeout_s).
DistributedOptions distributed_options(const sdk::Config& section);

/// Refuses (sdk::ConfigError) to run `command` in a distributed world: commands that write their
/// output from every process would race. `hint` says what to do instead.
void require_single_process(const WorldEnv& env,
                            const std::string& command,
                            const std::string& hint);

/// The connected ranks. Every rank must call the collectives in the same order. A failure (a rank
/// exited, or did not answer within the timeout) throws sdk::DistributedError naming the ranks
/// that stopped answering when the store knows them.
class ProcessGroup {
 public:
  virtual ~ProcessGroup();
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual const WorldEnv& env() const = 0;
  /// The backend training tensors use: "gloo" or "nccl".
  virtual std::string backend() const = 0;
  /// Rank 0's `bytes` on every rank (the argument is ignored elsewhere). `what` names the message
  /// in errors ("command", "results").
  virtual std::string broadcast_bytes(const std::string& bytes, const std::string& what) = 0;
  /// Every rank's `bytes`, in rank order.
  virtual std::vector<std::string> all_gather_bytes(const std::string& bytes,
                                                    const std::string& what) = 0;
  /// Returns once every rank arrived.
  virtual void barrier(const std::string& what) = 0;
  /// Records `message` in the store as this rank's failure, so that the ranks still waiting on
  /// it can name the cause. Best effort: never throws.
  virtual void report_failure(const std::string& message) noexcept = 0;
  /// The training view (TrainingJob::collective); owned by this object.
  virtual sdk::Collective* collective() = 0;
};

/// Connects to the run's other ranks through a TCPStore at MASTER_ADDR:MASTER_PORT (rank 0 hosts
/// it) and creates the process groups. Throws sdk::DistributedError when the ranks do not all
/// arrive within the timeout, sdk::ConfigError for a backend this build or machine lacks.
std::unique_ptr<ProcessGroup> connect_process_group(const WorldEnv& env,
                                                    const DistributedOptions& options);

}  // namespace mr::core
