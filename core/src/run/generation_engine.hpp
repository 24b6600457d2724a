// The batched, durable generation engine every generation stage runs on (actor, judge,
// meta-judge): fixed batches of requests to one model, each batch's rows appended to
// FILE.partial and fsync'd, resumed after the last durable batch. Internal to core/run.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "metareward/sdk/model_backend.hpp"

namespace mr::core {

/// What a generation stage produced in this invocation (for timings).
struct GenerationStats {
  double seconds = 0;
  std::uint64_t tokens = 0;
};

/// One generation stage's work: `requests` to `model` in batches of `batch_size` into `file`.
struct GenerationJob {
  std::string label;  ///< "iter 2/3 judge": progress bar, log lines and errors.
  std::filesystem::path file;
  sdk::ModelBackend* model = nullptr;
  const std::vector<sdk::GenerationRequest>* requests = nullptr;
  std::int64_t batch_size = 1;
  /// Turns request `index`'s result into its JSONL rows.
  std::function<void(std::size_t index, const sdk::GenerationResult&, std::vector<std::string>&)>
      rows_of;
  /// Polled before every batch; true stops with sdk::Interrupted (finished batches are saved).
  std::function<bool()> stop_requested;
};

/// Runs `job`, resuming after the last durable batch of FILE.partial; `file` appears (by rename)
/// when every batch is written. A request whose result holds an error is recorded (rows_of) and
/// counted in a warning; a backend that returns the wrong number of results or completions is an
/// error naming the stage.
GenerationStats run_generation(const GenerationJob& job);

}  // namespace mr::core
