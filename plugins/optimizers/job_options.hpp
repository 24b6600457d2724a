// Helpers shared by the optimizer plugins: per-iteration option checks at construction and the
// training options of one job.
#pragma once

#include <algorithm>
#include <functional>
#include <string>

#include "metareward/sdk/error.hpp"
#include "metareward/sdk/host.hpp"
#include "metareward/sdk/optimizer.hpp"
#include "metareward/training/training.hpp"

namespace mr::plugins::optimizers {

/// Validates the training options (and `extra`, e.g. the loss) of every iteration, so a bad
/// value fails at start-up, not after an iteration's generation. Errors name the iteration.
inline void validate_every_iteration(const sdk::Config& config,
                                     const std::function<void(int iteration)>& extra = {}) {
  for (int it = 1; it <= config.iterations(); ++it) {
    try {
      if (extra) extra(it);
      training::validate(training::options_from_config(config, it));
    } catch (const sdk::ConfigError& e) {
      throw sdk::ConfigError("[" + config.path() + "] iteration " + std::to_string(it) + ": " +
                             e.what());
    }
  }
}

/// The 1-based iteration a job's options are read for (clamped to the configured range).
inline int job_iteration(const sdk::Config& config, const sdk::TrainingJob& job) {
  return std::clamp(job.info.iteration, 1, config.iterations());
}

/// Training options for `job`: the iteration's config values, the job's seed, the host's threads.
inline training::TrainingOptions job_options(const sdk::HostContext& ctx,
                                             const sdk::TrainingJob& job) {
  auto options = training::options_from_config(ctx.config(), job_iteration(ctx.config(), job));
  options.seed = job.info.seed;
  options.threads = ctx.threads();
  return options;
}

}  // namespace mr::plugins::optimizers
