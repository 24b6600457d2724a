/// @file optimizer.hpp
/// The optimizer plugin kind: trains the model on preference pairs (DPO by default). This header
/// is text-level so the host can drive training without libtorch; implementations include
/// trainable_model.hpp to reach the tensors.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "metareward/sdk/types.hpp"

namespace mr::sdk {

class TrainableModel;  // trainable_model.hpp (needs libtorch)
class Collective;      // collective.hpp (needs libtorch)

/// Metrics of one optimizer step ("loss", "rewards/chosen", "lr", "grad_norm", ...).
struct StepMetrics {
  std::int64_t step = 0;
  std::map<std::string, double> values;
};

/// What the host tells an optimizer about one training run.
struct TrainingJob {
  IterationInfo info;
  /// Where the trained model is written (HF layout), atomically: the optimizer writes to a
  /// temporary sibling and renames. The host reloads the backend from here.
  std::filesystem::path output_dir;
  /// Where a run that trains a LoRA adapter writes it (PEFT layout), atomically; empty = the
  /// adapter is merged into output_dir's model and not written on its own.
  std::filesystem::path adapter_dir;
  /// Directory for resumable optimizer state (may hold a partial checkpoint from a crash).
  std::filesystem::path state_dir;
  /// Called after every step, from the training thread, before the step's resumable state is
  /// saved (so a crash in between repeats the step, and the host keeps the last row per step);
  /// the host appends to train_metrics.jsonl.
  std::function<void(const StepMetrics&)> on_step;
  /// Polled after every step; when it returns true the optimizer saves its resumable state to
  /// `state_dir` (if set) and throws sdk::Interrupted. Empty = never stop early.
  std::function<bool()> stop_requested;
  /// The ranks of a data-parallel run (null or world size 1: one process). Every rank calls
  /// Optimizer::train() with the same pairs and job; each computes the gradients of its share of
  /// every step and the ranks sum them, so that the steps equal a one-process run's. Only rank 0
  /// writes `output_dir`, `adapter_dir` and `state_dir`; every rank reads `state_dir` to resume.
  /// A collective that fails throws DistributedError.
  Collective* collective = nullptr;
  /// With a collective: compare a checksum of the trained weights across ranks after every this
  /// many steps (0: only after the last step); a mismatch is a DistributedError.
  std::int64_t check_replicas_every_steps = 0;
};

/// Final summary of a training run.
struct TrainingSummary {
  std::int64_t steps = 0;
  std::map<std::string, double> metrics;  ///< Averages over the last epoch, e.g. "loss".
};

/// Trains a model in place. Created once per run from the `[optimizer]` table; train() is called
/// once per iteration from the host's main thread.
class Optimizer {
 public:
  virtual ~Optimizer();

  /// Required. Trains `model` on `pairs` (actor and judge pairs pooled), saves the result to
  /// `job.output_dir` and returns a summary. The reference model for DPO-style losses is `model`
  /// as passed in (its state at the start of the call).
  virtual TrainingSummary train(TrainableModel& model,
                                const std::vector<PreferencePair>& pairs,
                                const TrainingJob& job) = 0;
};

}  // namespace mr::sdk
