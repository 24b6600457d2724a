/// @file sft_optimizer.hpp
/// The `sft` optimizer plugin: supervised fine-tuning on each pair's prompt and `chosen`
/// response (`rejected` is ignored), over mr::training::train_sft. It is what
/// `metareward sft` trains with. Text-level header (no libtorch).
#pragma once

#include "metareward/sdk/host.hpp"
#include "metareward/sdk/optimizer.hpp"
#include "metareward/sdk/plugin.hpp"

namespace mr::plugins::optimizers {

/// Optimizer::train over train_sft with the `[optimizer]` table's sft_schema() keys.
class SftOptimizer : public mr::sdk::Optimizer {
 public:
  /// Throws ConfigError for values the schema cannot reject (checked for every iteration).
  explicit SftOptimizer(mr::sdk::HostContext& ctx);

  mr::sdk::TrainingSummary train(mr::sdk::TrainableModel& model,
                                 const std::vector<mr::sdk::PreferencePair>& pairs,
                                 const mr::sdk::TrainingJob& job) override;

 private:
  mr::sdk::HostContext& ctx_;
};

/// Registers: optimizer sft.
void register_sft_plugin(mr::sdk::Registrar& registrar);

}  // namespace mr::plugins::optimizers
