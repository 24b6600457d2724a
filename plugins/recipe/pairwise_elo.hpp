/// @file pairwise_elo.hpp
/// `pairwise_elo`: the paper's meta-judge (method.md §2 step 5). For the selected response of each
/// prompt, every pair of valid judgments is judged twice (both orders); verdicts are weighted
/// against the meta-judge's positional preference, turned into Bradley–Terry "Elo" strengths, and
/// the highest- vs lowest-Elo judgments become a judge preference pair.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bradley_terry.hpp"
#include "metareward/sdk/host.hpp"
#include "metareward/sdk/meta_judge.hpp"
#include "score_parser.hpp"
#include "text_util.hpp"

namespace mr::plugins::recipe {

/// Default meta-judge prompt (placeholders {instruction}, {response}, {judgment_a},
/// {judgment_b}); ends asking for `Winner: [Judgement A | Judgement B]`.
extern const char* const kMetaJudgeTemplate;

/// Config schema of `pairwise_elo`.
mr::sdk::Schema pairwise_elo_schema();

/// Positional weights from verdict counts: ω1 = win_2nd / (win_1st + win_2nd) weighs a win from
/// the first position, ω2 = win_1st / (…) a win from the second. With no valid verdict both are
/// 0.5 (nothing to weigh).
struct PositionalWeights {
  double first = 0.5;   ///< ω1
  double second = 0.5;  ///< ω2
};
PositionalWeights positional_weights(std::int64_t wins_first, std::int64_t wins_second);

/// One parsed battle between judgments `a` (shown first) and `b`, as node indices.
struct IndexedBattle {
  std::size_t a = 0;
  std::size_t b = 0;
  int outcome = 0;  ///< +1 A won, -1 B won, 0 unparseable.
};

/// B_mn = ω1·[r_mn = +1] + ω2·[r_nm = −1], accumulated over `battles` (n nodes).
BattleMatrix battle_matrix(std::size_t n,
                           const std::vector<IndexedBattle>& battles,
                           const PositionalWeights& w);

/// Population variance (mean squared deviation, divided by n) of `values`; 0 for fewer than two.
double population_variance(const std::vector<double>& values);

/// The pairwise Elo meta-judge strategy. Deterministic given inputs and `info.seed`.
class PairwiseEloStrategy final : public mr::sdk::MetaJudgeStrategy {
 public:
  /// Reads its config from `ctx.config()`; throws mr::sdk::ConfigError for a template without
  /// {judgment_a}/{judgment_b}, an invalid verdict_regex or a negative length cap.
  explicit PairwiseEloStrategy(mr::sdk::HostContext& ctx);

  std::vector<mr::sdk::BattleRequest> plan(const std::vector<mr::sdk::PromptGroup>& groups,
                                           const mr::sdk::JudgeRubric& rubric,
                                           const mr::sdk::IterationInfo& info) override;

  mr::sdk::MetaJudgeResult decide(const std::vector<mr::sdk::PromptGroup>& groups,
                                  const mr::sdk::JudgeRubric& rubric,
                                  std::vector<mr::sdk::Battle> battles,
                                  const mr::sdk::IterationInfo& info,
                                  std::int64_t actor_pairs) override;

 private:
  enum class Selection { MaxVariance, All, Random };
  /// (group, response) indices to meta-judge, in prompt order; counts skipped prompts in `drops`.
  std::vector<std::pair<std::size_t, std::size_t>> select_responses(
      const std::vector<mr::sdk::PromptGroup>& groups,
      const mr::sdk::IterationInfo& info,
      mr::sdk::DropCounts& drops) const;
  mr::sdk::HostContext& ctx_;
  const mr::sdk::Config& config_;
  std::string template_;
  std::string system_;
  InstructionTurns turns_;
  VerdictParser verdicts_;
  Selection selection_;
  bool skip_zero_variance_;
  bool per_response_weights_;
  BradleyTerryOptions bt_;
  double elo_tie_epsilon_;
  bool drop_same_score_;
  double max_score_class_share_;
  double max_judge_pair_ratio_;
};

}  // namespace mr::plugins::recipe
