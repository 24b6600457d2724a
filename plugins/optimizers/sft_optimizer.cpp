// The sft optimizer plugin: train_sft on (prompt, chosen) of every pair.
#include "sft_optimizer.hpp"

#include <algorithm>

#include "job_options.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/training/training.hpp"
#include "preference_optimizer.hpp"

namespace mr::plugins::optimizers {

namespace sdk = mr::sdk;
namespace training = mr::training;

SftOptimizer::SftOptimizer(sdk::HostContext& ctx) : ctx_(ctx) {
  validate_every_iteration(ctx_.config());
}

sdk::TrainingSummary SftOptimizer::train(sdk::TrainableModel& model,
                                         const std::vector<sdk::PreferencePair>& pairs,
                                         const sdk::TrainingJob& job) {
  std::vector<training::SftExample> examples;
  examples.reserve(pairs.size());
  for (const auto& pair : pairs) examples.push_back({pair.id, pair.prompt, pair.chosen});
  return training::train_sft(model, examples, job_options(ctx_, job), job, &ctx_);
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
