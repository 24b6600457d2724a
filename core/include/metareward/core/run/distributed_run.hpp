/// @file distributed_run.hpp
/// A run over several ranks (torchrun / `metareward launch`), host side. Rank 0 runs the loop as
/// in a one-process run and alone writes the run directory; the other ranks serve it: rank 0
/// broadcasts each command (generate a batch, reload or suspend a model, train), every rank does
/// its share, and the results come back by all-gather. Generation is sharded by request inside
/// each of rank 0's batches, so batch boundaries, seeds and files are those of a one-process run;
/// training is data-parallel (TrainingJob::collective). Models that generate remotely
/// (ModelBackend::generates_remotely) stay on rank 0, and the other ranks never load them.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "metareward/core/distributed/process_group.hpp"
#include "metareward/core/run/run_session.hpp"
#include "metareward/sdk/optimizer.hpp"

namespace mr::core {

/// Rank 0's side: sends commands to the other ranks and collects their answers. Every method is a
/// collective: the other ranks are in serve_rank_commands().
class RankCoordinator {
 public:
  explicit RankCoordinator(ProcessGroup& group) : group_(group) {}

  ProcessGroup& group() const { return group_; }

  /// `requests` to model `name`: this rank generates its share through `local`, the others
  /// through their copy of the model; results in request order.
  std::vector<sdk::GenerationResult> generate(const std::string& name,
                                              sdk::ModelBackend& local,
                                              const std::vector<sdk::GenerationRequest>& requests);
  /// Every other rank loads `checkpoint` into its model `name`.
  void reload(const std::string& name, const std::filesystem::path& checkpoint);
  /// Every other rank suspends its model `name`.
  void suspend(const std::string& name);
  /// Data-parallel training: the other ranks train their copy of the model on the same pairs
  /// with the optimizer of `optimizer_table` ("optimizer" or "seed_sft") while `train_here`
  /// trains this rank's. `checkpoint` is what a separate [roles] train model starts from.
  void train(const std::string& optimizer_table,
             const std::filesystem::path& checkpoint,
             const std::vector<sdk::PreferencePair>& pairs,
             const sdk::TrainingJob& job,
             const std::function<void()>& train_here);
  /// Tells the other ranks that the run ended: they exit 0 (`error` empty), or stop with the
  /// error (`interrupted`: as after a stop signal). Best effort: never throws.
  void finish(const std::string& error = {}, bool interrupted = false) noexcept;

 private:
  ProcessGroup& group_;
  bool finished_ = false;
  /// False once this rank left a collective half-way (an error inside training): the other
  /// ranks are not waiting for a command any more, so finish() sends none.
  bool synced_ = true;
};

/// Wraps rank 0's model `name` so that generate() is sharded over the ranks and reload() and
/// suspend() reach every rank's copy; everything else is local.
std::shared_ptr<sdk::ModelBackend> shard_model(std::shared_ptr<sdk::ModelBackend> model,
                                               std::string name,
                                               RankCoordinator& coordinator);

/// What a rank other than 0 did when the run ended.
struct RankWorkerResult {
  int exit_code = 0;    ///< 0 (finished), 1 (rank 0 failed), 128+sig (interrupted).
  std::string message;  ///< Why rank 0 stopped, when it did.
};

/// The loop of ranks other than 0: executes rank 0's commands with `session`'s plugins (models
/// created on first use) until rank 0 ends the run. `stop_requested` is this rank's own stop
/// signal (training stops on every rank when any rank asks). Throws DistributedError when rank
/// 0 stops answering.
RankWorkerResult serve_rank_commands(ProcessGroup& group,
                                     RunSession& session,
                                     const std::function<bool()>& stop_requested,
                                     std::int64_t check_replicas_every_steps);

/// The share of `count` items rank `rank` of `world` takes: [first, second).
std::pair<std::size_t, std::size_t> rank_share(std::size_t count, int rank, int world);

}  // namespace mr::core
