/// @file preference_optimizer.hpp
/// The mr-optimizers plugins: `dpo` (the paper's loss, the default optimizer) and `rpo` (DPO plus
/// a length-normalised NLL term on the chosen response). Both are thin: the loss comes from
/// mr::training and so does the loop. Text-level header (no libtorch).
#pragma once

#include <memory>

#include "metareward/sdk/host.hpp"
#include "metareward/sdk/optimizer.hpp"
#include "metareward/sdk/plugin.hpp"

namespace mr::plugins::optimizers {

/// Library name and version reported by MR_PLUGIN.
inline constexpr const char* kLibraryName = "mr-optimizers";
inline constexpr const char* kLibraryVersion = "0.1.0";

/// Which preference loss an optimizer trains with.
enum class PreferenceLossKind { Dpo, Rpo };

/// Config keys of `dpo`: beta, then mr::training::training_schema() (learning_rate,
/// lr_schedule, warmup_ratio, epochs, batch_size, micro_batch_size, weight_decay, adam_beta1,
/// adam_beta2, adam_eps, max_grad_norm, max_length, dropout, save_every_steps, length_balanced).
mr::sdk::Schema dpo_schema();
/// Config keys of `rpo`: beta, alpha, then the training keys.
mr::sdk::Schema rpo_schema();

/// Optimizer::train over mr::training::train_preference with the DPO or RPO loss. Reads its
/// `[optimizer]` table from the HostContext at construction (checking every iteration's values)
/// and per-iteration values at train().
class PreferenceOptimizer : public mr::sdk::Optimizer {
 public:
  /// Throws ConfigError for values the schema cannot reject.
  PreferenceOptimizer(mr::sdk::HostContext& ctx, PreferenceLossKind kind);

  mr::sdk::TrainingSummary train(mr::sdk::TrainableModel& model,
                                 const std::vector<mr::sdk::PreferencePair>& pairs,
                                 const mr::sdk::TrainingJob& job) override;

 private:
  mr::sdk::HostContext& ctx_;
  PreferenceLossKind kind_;
};

/// Registers: optimizer dpo, rpo and sft (sft_optimizer.hpp).
void register_optimizer_plugins(mr::sdk::Registrar& registrar);

}  // namespace mr::plugins::optimizers
