// Candidate collection and pair construction shared by the actor pair policies.
#include "selection_common.hpp"

#include <algorithm>

#include <unordered_set>

namespace mr::plugins::recipe {

std::optional<ScoreSpan> pairable_span(const std::vector<Candidate>& cands,
                                       mr::sdk::DropCounts& drops) {
  if (cands.size() < 2) {
    count_drop(drops, "fewer_than_2_valid");
    return std::nullopt;
  }
  auto [lo, hi] =
      std::minmax_element(cands.begin(), cands.end(),
                          [](const Candidate& a, const Candidate& b) { return a.score < b.score; });
  if (hi->score - lo->score <= kScoreEpsilon) {
    count_drop(drops, "all_scores_equal");
    return std::nullopt;
  }
  return ScoreSpan{lo->score, hi->score};
}

void count_drop(mr::sdk::DropCounts& drops, const std::string& reason, std::int64_t n) {
  if (n > 0) drops[reason] += n;
}

std::vector<mr::sdk::ParamSpec> candidate_rule_schema() {
  return {
      mr::sdk::ParamSpec::bool_("remove_duplicates", true,
                                "Drop responses whose text equals an earlier valid response of "
                                "the same prompt before selecting (the earliest copy is kept)."),
      mr::sdk::ParamSpec::bool_("allow_truncated", false,
                                "Let responses cut at max_new_tokens (finish_reason 'length') "
                                "into pairs. Off: they are dropped and counted as "
                                "truncated_response (they are not complete answers, and "
                                "'rejected = longest' would pick exactly them)."),
  };
}

CandidateRules candidate_rules(const mr::sdk::Config& config) {
  CandidateRules rules;
  rules.remove_duplicates = config.get_bool("remove_duplicates");
  rules.allow_truncated = config.get_bool("allow_truncated");
  return rules;
}

std::vector<Candidate> collect_candidates(const mr::sdk::PromptGroup& group,
                                          const CandidateRules& rules,
                                          const LengthFn& length,
                                          mr::sdk::DropCounts& drops) {
  std::vector<Candidate> out;
  std::unordered_set<std::string_view> seen;
  for (std::size_t i = 0; i < group.responses.size(); ++i) {
    const auto& r = group.responses[i];
    if (!r.mean_score) {
      count_drop(drops, "response_without_valid_score");
      continue;
    }
    if (!rules.allow_truncated && r.finish_reason == mr::sdk::FinishReason::Length) {
      count_drop(drops, "truncated_response");
      continue;
    }
    std::int64_t len = length(r);
    if (len < 0) {
      count_drop(drops, "response_without_token_count");
      continue;
    }
    if (rules.remove_duplicates && !seen.insert(r.text).second) {
      count_drop(drops, "duplicate_response");
      continue;
    }
    out.push_back({i, &r, *r.mean_score, len});
  }
  return out;
}

mr::sdk::PreferencePair make_actor_pair(const mr::sdk::PromptGroup& group,
                                        const Candidate& chosen,
                                        const Candidate& rejected) {
  mr::sdk::PreferencePair p;
  p.id = group.prompt_id + "/actor";
  p.role = mr::sdk::PairRole::Actor;
  p.prompt = group.prompt;
  p.chosen = chosen.response->text;
  p.rejected = rejected.response->text;
  p.prompt_id = group.prompt_id;
  p.chosen_id = chosen.response->id;
  p.rejected_id = rejected.response->id;
  p.chosen_score = chosen.score;
  p.rejected_score = rejected.score;
  p.meta["chosen_length"] = std::to_string(chosen.length);
  p.meta["rejected_length"] = std::to_string(rejected.length);
  p.chosen_complete = chosen.response->finish_reason != mr::sdk::FinishReason::Length;
  p.rejected_complete = rejected.response->finish_reason != mr::sdk::FinishReason::Length;
  return p;
}

}  // namespace mr::plugins::recipe
