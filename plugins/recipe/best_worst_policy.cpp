// Best-vs-worst actor pair selection (Self-Rewarding baseline).
#include "best_worst_policy.hpp"

#include <algorithm>

#include "metareward/sdk/error.hpp"
#include "selection_common.hpp"
#include "text_util.hpp"

namespace mr::plugins::recipe {

mr::sdk::Schema best_worst_schema() {
  using mr::sdk::ParamSpec;
  mr::sdk::Schema schema = {
      ParamSpec::string_("tied_extremes", "first",
                         "When several responses share the best or the worst score: 'first' "
                         "takes the earliest response, 'random' a seeded random one, 'drop' "
                         "yields no pair for the prompt. A prompt whose best and worst scores "
                         "are equal never yields a pair.")
          .one_of({"first", "random", "drop"}),
  };
  for (auto& spec : candidate_rule_schema()) schema.push_back(std::move(spec));
  return schema;
}

BestWorstPolicy::BestWorstPolicy(mr::sdk::HostContext& ctx)
    : rules_(candidate_rules(ctx.config())) {
  const std::string t = ctx.config().get_string("tied_extremes");
  ties_ = t == "random" ? Ties::Random : t == "drop" ? Ties::Drop : Ties::First;
}

mr::sdk::PairSelectionResult BestWorstPolicy::select(
    const std::vector<mr::sdk::PromptGroup>& groups, const mr::sdk::IterationInfo& info) {
  mr::sdk::PairSelectionResult result;
  LengthFn length = [](const mr::sdk::ResponseCandidate& r) { return r.length_chars; };
  for (const auto& group : groups) {
    std::vector<Candidate> cands = collect_candidates(group, rules_, length, result.drops);
    const auto span = pairable_span(cands, result.drops);
    if (!span) continue;
    const double s_min = span->min, s_max = span->max;
    const double tol = std::min(kScoreEpsilon, 0.25 * (s_max - s_min));
    std::vector<const Candidate*> best, worst;
    for (const auto& c : cands) {
      if (c.score >= s_max - tol) best.push_back(&c);
      if (c.score <= s_min + tol) worst.push_back(&c);
    }
    if (ties_ == Ties::Drop && (best.size() > 1 || worst.size() > 1)) {
      count_drop(result.drops, "tied_best_or_worst");
      continue;
    }
    const Candidate* chosen = best.front();
    const Candidate* rejected = worst.front();
    if (ties_ == Ties::Random) {
      const std::uint64_t seed = mr::sdk::derive_seed(info.seed, stable_hash(group.prompt_id));
      chosen = best[seeded_index(mr::sdk::derive_seed(seed, 1), best.size())];
      rejected = worst[seeded_index(mr::sdk::derive_seed(seed, 2), worst.size())];
    }
    MR_CHECK(chosen->index != rejected->index && chosen->score > rejected->score,
             "best_worst: internal error on prompt '", group.prompt_id,
             "': chosen and rejected must differ with S(chosen) > S(rejected)");
    auto pair = make_actor_pair(group, *chosen, *rejected);
    pair.meta["policy"] = "best_worst";
    result.pairs.push_back(std::move(pair));
  }
  return result;
}

}  // namespace mr::plugins::recipe
