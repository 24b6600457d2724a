/// @file run_loop.hpp
/// The Meta-Rewarding loop behind `metareward run`: for every iteration, actor generation,
/// judging, actor pairs, meta-judging and judge pairs, training, checkpoint. Everything is
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
#include "metareward/sdk/evaluator.hpp"

namespace mr::core {

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

/// The lines that differ between two config texts, as "- old" / "+ new" lines under their
/// "[section]" header; empty when equal.
std::string config_diff(const std::string& recorded, const std::string& current);

/// Calls `evaluator` and checks what it returns: every metric named and finite. Errors name
/// `where` ("evaluator 'testbed' at iteration 2"): a ConfigError stays a ConfigError, any other
/// failure becomes a PluginError; sdk::Interrupted passes through. Shared by `run` and `eval`.
std::map<std::string, double> evaluate_checked(sdk::Evaluator& evaluator,
                                               const sdk::EvaluationRequest& request,
                                               const std::string& where);

/// Stable seeds of the run: derive_seed chains over (run seed, iteration, stage); exposed for
/// tests. Stage codes: 1 actor, 2 judge, 3 actor pairs, 4 meta-judge plan, 5 meta-judge
/// generation, 6 training, 7 evaluation.
std::uint64_t stage_seed(std::uint64_t run_seed, int iteration, int stage);

}  // namespace mr::core
