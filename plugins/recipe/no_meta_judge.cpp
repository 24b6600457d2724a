// The `none` meta-judge strategy (Self-Rewarding baseline).
#include "no_meta_judge.hpp"

namespace mr::plugins::recipe {

mr::sdk::Schema no_meta_judge_schema() {
  return {};
}

std::vector<mr::sdk::BattleRequest> NoMetaJudge::plan(const std::vector<mr::sdk::PromptGroup>&,
                                                      const mr::sdk::JudgeRubric&,
                                                      const mr::sdk::IterationInfo&) {
  return {};
}

mr::sdk::MetaJudgeResult NoMetaJudge::decide(const std::vector<mr::sdk::PromptGroup>&,
                                             const mr::sdk::JudgeRubric&,
                                             std::vector<mr::sdk::Battle> battles,
                                             const mr::sdk::IterationInfo&,
                                             std::int64_t) {
  mr::sdk::MetaJudgeResult result;
  for (auto& b : battles) b.outcome = 0;
  if (!battles.empty()) result.drops["battle_ignored"] = static_cast<std::int64_t>(battles.size());
  result.diagnostics["battles"] = static_cast<double>(battles.size());
  result.diagnostics["judge_pairs"] = 0.0;
  result.battles = std::move(battles);
  return result;
}

}  // namespace mr::plugins::recipe
