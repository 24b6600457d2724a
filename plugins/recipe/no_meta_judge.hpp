/// @file no_meta_judge.hpp
/// `none`: a meta-judge strategy that plans no battles and yields no judge pairs, i.e. the
/// Self-Rewarding baseline (the judge is never trained).
#pragma once

#include "metareward/sdk/config.hpp"
#include "metareward/sdk/meta_judge.hpp"

namespace mr::plugins::recipe {

/// Config schema of `none` (no keys).
mr::sdk::Schema no_meta_judge_schema();

/// Plans nothing, decides nothing. Battles passed to decide() anyway are returned unparsed
/// (outcome 0) and counted as "battle_ignored".
class NoMetaJudge final : public mr::sdk::MetaJudgeStrategy {
 public:
  std::vector<mr::sdk::BattleRequest> plan(const std::vector<mr::sdk::PromptGroup>& groups,
                                           const mr::sdk::JudgeRubric& rubric,
                                           const mr::sdk::IterationInfo& info) override;
  mr::sdk::MetaJudgeResult decide(const std::vector<mr::sdk::PromptGroup>& groups,
                                  const mr::sdk::JudgeRubric& rubric,
                                  std::vector<mr::sdk::Battle> battles,
                                  const mr::sdk::IterationInfo& info,
                                  std::int64_t actor_pairs) override;
};

}  // namespace mr::plugins::recipe
