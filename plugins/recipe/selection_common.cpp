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

std::vector<Candidate> collect_candidates(const mr::sdk::PromptGroup& group,
                                          bool remove_duplicates,
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
    std::int64_t len = length(r);
    if (len < 0) {
      count_drop(drops, "response_without_token_count");
      continue;
    }
    if (remove_duplicates && !seen.insert(r.text).second) {
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
  return p;
}

}  // namespace mr::plugins::recipe
