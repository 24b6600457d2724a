// The sft optimizer plugin: train_sft on (prompt, chosen) of every pair.
#include "sft_optimizer.hpp"

#include <algorithm>

#include "metareward/sdk/error.hpp"
#include "metareward/sdk/training.hpp"
#include "preference_optimizer.hpp"

namespace mr::plugins::optimizers {

namespace sdk = mr::sdk;
namespace training = mr::sdk::training;

SftOptimizer::SftOptimizer(sdk::HostContext& ctx) : ctx_(ctx) {
  const sdk::Config& config = ctx_.config();
  for (int it = 1; it <= config.iterations(); ++it) {
    try {
      training::validate(training::options_from_config(config, it));
    } catch (const sdk::ConfigError& e) {
      throw sdk::ConfigError("[" + config.path() + "] iteration " + std::to_string(it) + ": " +
                             e.what());
    }
  }
}

sdk::TrainingSummary SftOptimizer::train(sdk::TrainableModel& model,
                                         const std::vector<sdk::PreferencePair>& pairs,
                                         const sdk::TrainingJob& job) {
  const sdk::Config& config = ctx_.config();
  const int iteration = std::clamp(job.info.iteration, 1, config.iterations());
  training::TrainingOptions options = training::options_from_config(config, iteration);
  options.seed = job.info.seed;
  options.threads = ctx_.threads();
  std::vector<training::SftExample> examples;
  examples.reserve(pairs.size());
  for (const auto& pair : pairs) examples.push_back({pair.id, pair.prompt, pair.chosen});
  return training::train_sft(model, examples, options, job, &ctx_);
}

void register_sft_plugin(sdk::Registrar& r) {
  r.add<sdk::Optimizer>(
      "sft", kLibraryVersion,
      "Supervised fine-tuning on each pair's prompt and chosen response (NLL of the response "
      "tokens)",
      training::sft_schema(), [](sdk::HostContext& ctx) -> std::unique_ptr<sdk::Optimizer> {
        return std::make_unique<SftOptimizer>(ctx);
      });
}

}  // namespace mr::plugins::optimizers
