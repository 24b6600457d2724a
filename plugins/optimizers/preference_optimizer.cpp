// The dpo and rpo optimizer plugins and their registration.
#include "preference_optimizer.hpp"

#include <algorithm>

#include "job_options.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/training/training.hpp"
#include "sft_optimizer.hpp"

namespace mr::plugins::optimizers {

namespace sdk = mr::sdk;
namespace training = mr::training;

namespace {

sdk::ParamSpec beta_spec() {
  return sdk::ParamSpec::float_("beta", 0.1,
                                "DPO temperature: strength of the pull towards the reference "
                                "model (higher = stay closer).")
      .range(0.0, std::nullopt, true)
      .per_iteration_allowed();
}

sdk::Schema with_training_keys(sdk::Schema schema) {
  for (auto& spec : training::training_schema()) schema.push_back(std::move(spec));
  return schema;
}

training::PreferenceLoss make_loss(const sdk::Config& config,
                                   PreferenceLossKind kind,
                                   int iteration) {
  const double beta = config.get_float("beta", iteration);
  if (kind == PreferenceLossKind::Rpo)
    return training::rpo_loss(beta, config.get_float("alpha", iteration));
  return training::dpo_loss(beta);
}

}  // namespace

sdk::Schema dpo_schema() {
  return with_training_keys({beta_spec()});
}

sdk::Schema rpo_schema() {
  return with_training_keys(
      {beta_spec(),
       sdk::ParamSpec::float_("alpha", 1.0,
                              "Weight of the chosen response's NLL (per token) added to the DPO "
                              "loss; 1.0 as in the RPO paper.")
           .range(0.0, std::nullopt)
           .per_iteration_allowed()});
}

PreferenceOptimizer::PreferenceOptimizer(sdk::HostContext& ctx, PreferenceLossKind kind)
    : ctx_(ctx), kind_(kind) {
  validate_every_iteration(ctx_.config(), [&](int it) { make_loss(ctx_.config(), kind_, it); });
}

sdk::TrainingSummary PreferenceOptimizer::train(sdk::TrainableModel& model,
                                                const std::vector<sdk::PreferencePair>& pairs,
                                                const sdk::TrainingJob& job) {
  const sdk::Config& config = ctx_.config();
  return training::train_preference(model, pairs,
                                    make_loss(config, kind_, job_iteration(config, job)),
                                    job_options(ctx_, job), job, &ctx_);
}

void register_optimizer_plugins(sdk::Registrar& r) {
  using sdk::HostContext;
  using sdk::Optimizer;
  const std::string v = kLibraryVersion;
  r.add<Optimizer>("dpo", v,
                   "Standard DPO on summed response log-probs against the model at the start "
                   "of the iteration (the paper's optimizer)",
                   dpo_schema(), [](HostContext& ctx) -> std::unique_ptr<Optimizer> {
                     return std::make_unique<PreferenceOptimizer>(ctx, PreferenceLossKind::Dpo);
                   });
  r.add<Optimizer>("rpo", v,
                   "RPO: DPO plus alpha times the chosen response's per-token NLL "
                   "(Pang et al. 2024)",
                   rpo_schema(), [](HostContext& ctx) -> std::unique_ptr<Optimizer> {
                     return std::make_unique<PreferenceOptimizer>(ctx, PreferenceLossKind::Rpo);
                   });
  register_sft_plugin(r);
}

}  // namespace mr::plugins::optimizers
