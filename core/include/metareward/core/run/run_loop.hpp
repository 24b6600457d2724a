/// @file run_loop.hpp
/// The Meta-Rewarding loop behind `metareward run`: for every iteration, actor generation,
/// judging, actor pairs, meta-judging and judge pairs, training, checkpoint (the stages, over a
/// RunSession's plugins, recorded through RunDirectory). Everything is
/// recorded in the run directory (docs/run_artifacts.md); generation stages are written in
/// durable batches and every seed is derived from (run seed, iteration, stage, item), so a run
/// that is killed and resumed produces the same bytes as one that was not.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <string>

#include "metareward/core/config_loader.hpp"
#include "metareward/core/plugin_registry.hpp"

namespace mr::core {

class RankCoordinator;  // distributed_run.hpp

/// How `metareward run` was asked to treat an existing run directory.
struct RunLoopOptions {
  /// Continue the run in the output directory from its first incomplete stage. Without it an
  /// existing run directory is an error (nothing is overwritten).
  bool resume = false;
  /// Resume even though the config differs from the recorded one.
  bool force = false;
  /// Polled between batches and training steps; true stops the run cleanly (sdk::Interrupted is
  /// thrown after the work in flight is saved).
  std::function<bool()> stop_requested;
  /// Rank 0 of a distributed run: generation is sharded and training data-parallel over the
  /// coordinator's ranks. Null: one process.
  RankCoordinator* coordinator = nullptr;
  /// Processes of this run on this machine (LOCAL_WORLD_SIZE): they share its threads.
  int local_ranks = 1;
};

/// What a finished (or already complete) run did.
struct RunLoopResult {
  std::filesystem::path run_dir;
  int iterations = 0;      ///< run.iterations.
  int ran_iterations = 0;  ///< Iterations completed by this invocation.
};

/// Runs (or resumes) the loop of `config`, whose plugins are in `registry`. Throws
/// sdk::ConfigError for a refused resume (config changed: the message holds the diff),
/// sdk::Interrupted when stopped, other sdk::Error on failures; the run directory then holds
/// everything finished so far.
RunLoopResult run_loop(const PluginRegistry& registry,
                       const ResolvedConfig& config,
                       const RunLoopOptions& options);

}  // namespace mr::core
