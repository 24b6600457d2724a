// Registers the recipe plugins with the host.
#include "recipe_plugins.hpp"

#include "additive_rubric.hpp"
#include "best_worst_policy.hpp"
#include "length_controlled_policy.hpp"
#include "likert_rubric.hpp"
#include "no_meta_judge.hpp"
#include "pairwise_elo.hpp"

namespace mr::plugins::recipe {

void register_recipe_plugins(mr::sdk::Registrar& r) {
  using namespace mr::sdk;
  const std::string v = kLibraryVersion;
  r.add<JudgeRubric>(
      "additive5", v,
      "Additive five-point judge rubric (the paper's judge): justification + 'Score: 0-5'",
      additive5_schema(), [](HostContext& ctx) -> std::unique_ptr<JudgeRubric> {
        return std::make_unique<AdditiveRubric>(ctx.config());
      });
  r.add<JudgeRubric>("likert10", v, "Holistic 1-10 judge rubric: justification + 'Score: 1-10'",
                     likert10_schema(), [](HostContext& ctx) -> std::unique_ptr<JudgeRubric> {
                       return std::make_unique<LikertRubric>(ctx.config());
                     });
  r.add<MetaJudgeStrategy>(
      "pairwise_elo", v,
      "The paper's meta-judge: pairwise battles in both orders, positional weights, "
      "Bradley-Terry Elo, best vs worst judgment",
      pairwise_elo_schema(), [](HostContext& ctx) -> std::unique_ptr<MetaJudgeStrategy> {
        return std::make_unique<PairwiseEloStrategy>(ctx);
      });
  r.add<MetaJudgeStrategy>(
      "none", v, "No meta-judge: no battles, no judge pairs (Self-Rewarding baseline)",
      no_meta_judge_schema(), [](HostContext&) -> std::unique_ptr<MetaJudgeStrategy> {
        return std::make_unique<NoMetaJudge>();
      });
  r.add<PairSelectionPolicy>(
      "length_control", v,
      "The paper's actor pairs: shortest top-tier vs longest bottom-tier response (rho)",
      length_control_schema(), [](HostContext& ctx) -> std::unique_ptr<PairSelectionPolicy> {
        return std::make_unique<LengthControlledPolicy>(ctx);
      });
  r.add<PairSelectionPolicy>(
      "best_worst", v, "Self-Rewarding actor pairs: best vs worst response, equal scores dropped",
      best_worst_schema(), [](HostContext& ctx) -> std::unique_ptr<PairSelectionPolicy> {
        return std::make_unique<BestWorstPolicy>(ctx);
      });
}

}  // namespace mr::plugins::recipe
