// Length-controlled actor pair selection (method.md §2 step 4).
#include "length_controlled_policy.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <sstream>

#include "metareward/sdk/error.hpp"
#include "selection_common.hpp"

namespace mr::plugins::recipe {

mr::sdk::Schema length_control_schema() {
  using mr::sdk::ParamSpec;
  mr::sdk::Schema schema = {
      ParamSpec::float_("rho", 0.0,
                        "Length-control tier width ρ: chosen = shortest response scoring >= "
                        "(1-ρ)·S_max + ρ·S_min, rejected = longest scoring <= (1-ρ)·S_min + "
                        "ρ·S_max. 0 = best vs worst. Paper: [0, 0.32, 0.32, 0.4].")
          .range(0.0, 0.5, false, true)
          .per_iteration_allowed(),
      ParamSpec::int_("max_chosen_length", 0,
                      "Top-tier responses longer than this (in length_unit) cannot be chosen; "
                      "0 = no cap. Paper: 2500 chars in iteration 1, i.e. [2500, 0, 0, 0].")
          .range(0.0, std::nullopt)
          .per_iteration_allowed(),
      ParamSpec::string_("length_unit", "chars",
                         "How response length is measured: 'chars' (Unicode code points, "
                         "ResponseCandidate::length_chars) or 'tokens' (length_tokens; responses "
                         "without a token count are dropped and counted).")
          .one_of({"chars", "tokens"}),
  };
  for (auto& spec : candidate_rule_schema()) schema.push_back(std::move(spec));
  return schema;
}

namespace {

double read_rho(const mr::sdk::Config& config, int iteration) {
  double rho = config.get_float("rho", iteration);
  if (!(rho >= 0.0 && rho < 0.5)) {
    std::ostringstream msg;
    msg << "must satisfy 0 <= rho < 0.5 (the tiers would overlap), got " << rho << " for iteration "
        << iteration;
    config.fail("rho", msg.str());
  }
  return rho;
}

std::int64_t read_cap(const mr::sdk::Config& config, int iteration) {
  std::int64_t cap = config.get_int("max_chosen_length", iteration);
  if (cap < 0)
    config.fail("max_chosen_length", "must be >= 0 (0 = no cap), got " + std::to_string(cap) +
                                         " for iteration " + std::to_string(iteration));
  return cap;
}

}  // namespace

LengthControlledPolicy::LengthControlledPolicy(mr::sdk::HostContext& ctx)
    : config_(ctx.config()),
      use_tokens_(ctx.config().get_string("length_unit") == "tokens"),
      rules_(candidate_rules(ctx.config())) {
  // Validate every iteration now, so a bad value fails at start-up, not in iteration 3.
  for (int it = 1; it <= config_.iterations(); ++it) {
    read_rho(config_, it);
    read_cap(config_, it);
  }
}

mr::sdk::PairSelectionResult LengthControlledPolicy::select(
    const std::vector<mr::sdk::PromptGroup>& groups, const mr::sdk::IterationInfo& info) {
  const double rho = read_rho(config_, info.iteration);
  const std::int64_t cap = read_cap(config_, info.iteration);
  LengthFn length =
      use_tokens_ ? LengthFn([](const mr::sdk::ResponseCandidate& r) { return r.length_tokens; })
                  : LengthFn([](const mr::sdk::ResponseCandidate& r) { return r.length_chars; });

  mr::sdk::PairSelectionResult result;
  for (const auto& group : groups) {
    std::vector<Candidate> cands = collect_candidates(group, rules_, length, result.drops);
    const auto span = pairable_span(cands, result.drops);
    if (!span) continue;
    const double s_min = span->min, s_max = span->max;
    const double spread = s_max - s_min;
    const double top_lo = (1.0 - rho) * s_max + rho * s_min;
    const double bottom_hi = (1.0 - rho) * s_min + rho * s_max;
    // Tolerance for scores sitting exactly on a bound (4.04 in the worked example), kept below a
    // quarter of the gap between the tiers so they stay disjoint.
    const double tol = std::min(kScoreEpsilon, 0.25 * (top_lo - bottom_hi));

    const Candidate* chosen = nullptr;
    const Candidate* rejected = nullptr;
    for (const auto& c : cands) {
      if (c.score >= top_lo - tol) {
        if (cap > 0 && c.length > cap) {
          count_drop(result.drops, "chosen_candidate_too_long");
        } else if (chosen == nullptr || c.length < chosen->length ||
                   (c.length == chosen->length && c.score > chosen->score)) {
          chosen = &c;  // Strict comparisons keep the earlier index on a full tie.
        }
      }
      if (c.score <= bottom_hi + tol) {
        if (rejected == nullptr || c.length > rejected->length ||
            (c.length == rejected->length && c.score < rejected->score))
          rejected = &c;
      }
    }
    if (chosen == nullptr) {
      count_drop(result.drops, "no_chosen_within_length_cap");
      continue;
    }
    MR_CHECK(
        rejected != nullptr && chosen->index != rejected->index && chosen->score > rejected->score,
        "length_control: internal error on prompt '", group.prompt_id,
        "': chosen and rejected must differ with S(chosen) > S(rejected)");
    auto pair = make_actor_pair(group, *chosen, *rejected);
    std::ostringstream num;
    num << rho;
    pair.meta["policy"] = "length_control";
    pair.meta["rho"] = num.str();
    pair.meta["length_unit"] = use_tokens_ ? "tokens" : "chars";
    result.pairs.push_back(std::move(pair));
  }
  return result;
}

}  // namespace mr::plugins::recipe
