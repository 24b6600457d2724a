// The pairwise Elo meta-judge strategy (method.md §2 step 5).
#include "pairwise_elo.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <set>
#include <unordered_map>

#include "metareward/sdk/error.hpp"

namespace mr::plugins::recipe {

const char* const kMetaJudgeTemplate =
    R"(Below are a user's question, an AI assistant's response to it, and two judgments of that response written by different evaluators. Each evaluator was asked to grade the response with the following additive five-point rubric, starting from 0 and adding one point per criterion met:

- 1 point if the response is relevant and offers some information related to the question, even if incomplete or partly off-topic.
- 1 point if it covers a substantial part of the question without fully resolving it.
- 1 point if it usefully answers the essential parts of the question.
- 1 point if it is clearly written from an AI assistant's point of view, answers directly and comprehensively, and is well organized and helpful.
- 1 point if it is impeccably tailored to the question, shows expert knowledge, and contains no extraneous information.

Each evaluator gave a short justification and a final "Score: <total points>".

User's question:
{instruction}

<response>
{response}
</response>

Judgment A:
<judgment_a>
{judgment_a}
</judgment_a>

Judgment B:
<judgment_b>
{judgment_b}
</judgment_b>

Decide which judgment evaluates the response more accurately. Consider how faithfully each one applies the rubric, whether its assessment of the response is correct, and whether its reasoning and its final score agree with each other. Explain your reasoning, then end with a final line naming the better judgment in exactly this form: "Winner: [Judgement A | Judgement B]")";

mr::sdk::Schema pairwise_elo_schema() {
  using mr::sdk::ParamSpec;
  return {
      ParamSpec::string_("template", kMetaJudgeTemplate,
                         "Meta-judge prompt. Placeholders: {instruction} (the user's "
                         "conversation as text), {response}, {judgment_a} (shown first) and "
                         "{judgment_b} (both required), substituted in one pass. Judgments are "
                         "inserted in full, score line included."),
      ParamSpec::string_("system", "", "Optional system prompt for the meta-judge; empty = none."),
      ParamSpec::string_("instruction_turns", "all",
                         "What {instruction} shows: 'all' turns or only the 'last_user' turn.")
          .one_of({"all", "last_user"}),
      ParamSpec::string_("verdict_regex", kDefaultVerdictPattern,
                         "PCRE2 regex (case-insensitive) with one capture group reading 'A' "
                         "or 'B'; the LAST match decides, anything else is an unparseable "
                         "verdict (outcome 0). The default reads 'Winner: Judgement A' and "
                         "'Winner: Judgment B' with markdown decoration."),
      ParamSpec::string_("response_selection", "max_variance",
                         "Which responses of a prompt are meta-judged: 'max_variance' (the one "
                         "whose valid judgment scores have the highest population variance; "
                         "ties broken by a seeded random choice), 'all', or one 'random' "
                         "response.")
          .one_of({"max_variance", "all", "random"}),
      ParamSpec::bool_("skip_zero_variance", true,
                       "Never meta-judge a response whose valid judgments all give the same "
                       "score (the paper skips these)."),
      ParamSpec::string_("positional_weight_scope", "iteration",
                         "Where the positional weights ω1/ω2 are counted: over all valid "
                         "verdicts of the 'iteration', or per 'response'.")
          .one_of({"iteration", "response"}),
      ParamSpec::float_("elo_prior", 0.01,
                        "Pseudo-wins added each way between every two judgments before the "
                        "Bradley-Terry fit, so undefeated judgments keep a finite Elo.")
          .range(0.0, std::nullopt, true),
      ParamSpec::float_("bt_tolerance", 1e-9,
                        "The MM iteration stops when no Elo moves by more than this.")
          .range(0.0, 1.0, true),
      ParamSpec::int_("bt_max_iterations", 10000,
                      "Upper bound on MM iterations per response (non-convergence is counted in "
                      "the 'bt_not_converged' diagnostic).")
          .range(1.0, 10000000.0),
      ParamSpec::float_("elo_tie_epsilon", 1e-6,
                        "Elo values closer than this are equal: no pair when max and min Elo "
                        "tie; among tied maxima (minima) the earliest judgment is taken.")
          .range(0.0, std::nullopt),
      ParamSpec::int_("max_chosen_judgment_chars", 0,
                      "Drop a judge pair whose chosen judgment is longer than this many "
                      "characters; 0 = no cap. Paper: about [1100, 1000].")
          .range(0.0, std::nullopt)
          .per_iteration_allowed(),
      ParamSpec::bool_("drop_same_score_pairs", false,
                       "Guard (NeMo-Aligner, not the paper): drop judge pairs whose chosen and "
                       "rejected judgments give the same score."),
      ParamSpec::float_("max_score_class_share", 0.0,
                        "Guard (NeMo-Aligner): at most this share of the judge pairs may have "
                        "the same chosen-judgment score; 0 = off (NeMo used 0.4).")
          .range(0.0, 1.0),
      ParamSpec::float_("max_judge_pair_ratio", 0.0,
                        "Guard (NeMo-Aligner): at most this many judge pairs per actor pair of "
                        "the iteration (0 = off). A cap of 15% of the pooled pairs is 0.176.")
          .range(0.0, std::nullopt),
  };
}

PositionalWeights positional_weights(std::int64_t wins_first, std::int64_t wins_second) {
  const std::int64_t total = wins_first + wins_second;
  if (total <= 0) return {};
  return {static_cast<double>(wins_second) / static_cast<double>(total),
          static_cast<double>(wins_first) / static_cast<double>(total)};
}

BattleMatrix battle_matrix(std::size_t n,
                           const std::vector<IndexedBattle>& battles,
                           const PositionalWeights& w) {
  BattleMatrix b(n, std::vector<double>(n, 0.0));
  for (const auto& x : battles) {
    MR_CHECK(x.a < n && x.b < n, "battle_matrix: node index out of range");
    if (x.a == x.b) continue;
    if (x.outcome > 0) b[x.a][x.b] += w.first;   // A won from the first position.
    if (x.outcome < 0) b[x.b][x.a] += w.second;  // B won from the second position.
  }
  return b;
}

double population_variance(const std::vector<double>& values) {
  if (values.size() < 2) return 0.0;
  const double n = static_cast<double>(values.size());
  const double mean = std::accumulate(values.begin(), values.end(), 0.0) / n;
  double ss = 0.0;
  for (double v : values) ss += (v - mean) * (v - mean);
  return ss / n;
}

namespace {

// Variances closer than this are ties (and a variance below it is zero).
constexpr double kVarianceEpsilon = 1e-12;
// Seed streams, so that the different random choices of one iteration are independent.
constexpr std::uint64_t kStreamResponse = 0x7265737053454cULL;    // response selection
constexpr std::uint64_t kStreamClassCap = 0x636c617373436170ULL;  // score-class cap
constexpr std::uint64_t kStreamRatioCap = 0x726174696f436170ULL;  // judge/actor ratio cap

std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

void count_drop(mr::sdk::DropCounts& drops, const std::string& reason, std::int64_t n = 1) {
  if (n > 0) drops[reason] += n;
}

std::vector<std::size_t> valid_judgments(const mr::sdk::ResponseCandidate& r) {
  std::vector<std::size_t> out;
  for (std::size_t j = 0; j < r.judgments.size(); ++j)
    if (r.judgments[j].score) out.push_back(j);
  return out;
}

std::vector<double> valid_scores(const mr::sdk::ResponseCandidate& r) {
  std::vector<double> out;
  for (const auto& j : r.judgments)
    if (j.score) out.push_back(*j.score);
  return out;
}

// `count` of `items` (indices into the pairs) chosen by a seeded shuffle, back in index order.
std::vector<std::size_t> seeded_subset(std::vector<std::size_t> items,
                                       std::size_t count,
                                       std::uint64_t seed) {
  if (count >= items.size()) return items;
  seeded_shuffle(items, seed);
  items.resize(count);
  std::sort(items.begin(), items.end());
  return items;
}

}  // namespace

PairwiseEloStrategy::PairwiseEloStrategy(mr::sdk::HostContext& ctx)
    : ctx_(ctx),
      config_(ctx.config()),
      template_(config_.get_string("template")),
      system_(config_.get_string("system")),
      turns_(parse_instruction_turns(config_.get_string("instruction_turns"))),
      verdicts_(Pattern::compile(config_.get_string("verdict_regex"), config_, "verdict_regex")),
      skip_zero_variance_(config_.get_bool("skip_zero_variance")),
      per_response_weights_(config_.get_string("positional_weight_scope") == "response"),
      elo_tie_epsilon_(config_.get_float("elo_tie_epsilon")),
      drop_same_score_(config_.get_bool("drop_same_score_pairs")),
      max_score_class_share_(config_.get_float("max_score_class_share")),
      max_judge_pair_ratio_(config_.get_float("max_judge_pair_ratio")) {
  for (const char* slot : {"judgment_a", "judgment_b"})
    if (!has_placeholder(template_, slot))
      config_.fail("template", std::string("must contain the placeholder {") + slot + "}");
  const std::string sel = config_.get_string("response_selection");
  selection_ = sel == "all"      ? Selection::All
               : sel == "random" ? Selection::Random
                                 : Selection::MaxVariance;
  bt_.prior = config_.get_float("elo_prior");
  if (!(bt_.prior > 0.0)) config_.fail("elo_prior", "must be > 0");
  bt_.tolerance = config_.get_float("bt_tolerance");
  bt_.max_iterations = static_cast<int>(config_.get_int("bt_max_iterations"));
  if (bt_.max_iterations < 1) config_.fail("bt_max_iterations", "must be >= 1");
  if (max_score_class_share_ < 0.0 || max_score_class_share_ > 1.0)
    config_.fail("max_score_class_share", "must be in [0, 1]");
  if (max_judge_pair_ratio_ < 0.0) config_.fail("max_judge_pair_ratio", "must be >= 0");
  for (int it = 1; it <= config_.iterations(); ++it)
    if (config_.get_int("max_chosen_judgment_chars", it) < 0)
      config_.fail("max_chosen_judgment_chars",
                   "must be >= 0 (0 = no cap) for iteration " + std::to_string(it));
}

std::vector<std::pair<std::size_t, std::size_t>> PairwiseEloStrategy::select_responses(
    const std::vector<mr::sdk::PromptGroup>& groups,
    const mr::sdk::IterationInfo& info,
    mr::sdk::DropCounts& drops) const {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const auto& group = groups[g];
    // Responses with at least two valid judgments (one judgment has nothing to battle).
    std::vector<std::size_t> eligible;
    std::vector<double> variance;
    bool any_two_valid = false;
    for (std::size_t r = 0; r < group.responses.size(); ++r) {
      auto scores = valid_scores(group.responses[r]);
      if (scores.size() < 2) continue;
      any_two_valid = true;
      double v = population_variance(scores);
      if (skip_zero_variance_ && v <= kVarianceEpsilon) continue;
      eligible.push_back(r);
      variance.push_back(v);
    }
    if (eligible.empty()) {
      count_drop(drops, any_two_valid ? "all_judgment_scores_equal"
                                      : "no_response_with_2_valid_judgments");
      continue;
    }
    const std::uint64_t seed = mr::sdk::derive_seed(
        mr::sdk::derive_seed(info.seed, kStreamResponse), stable_hash(group.prompt_id));
    if (selection_ == Selection::All) {
      for (std::size_t r : eligible) out.emplace_back(g, r);
    } else if (selection_ == Selection::Random) {
      out.emplace_back(g, eligible[seeded_index(seed, eligible.size())]);
    } else {
      const double max_v = *std::max_element(variance.begin(), variance.end());
      std::vector<std::size_t> tied;
      for (std::size_t k = 0; k < eligible.size(); ++k)
        if (variance[k] >= max_v - kVarianceEpsilon) tied.push_back(eligible[k]);
      out.emplace_back(g, tied[seeded_index(seed, tied.size())]);
    }
  }
  return out;
}

std::vector<mr::sdk::BattleRequest> PairwiseEloStrategy::plan(
    const std::vector<mr::sdk::PromptGroup>& groups,
    const mr::sdk::JudgeRubric& /*rubric*/,
    const mr::sdk::IterationInfo& info) {
  mr::sdk::DropCounts ignored;  // decide() recounts these into its result.
  std::vector<mr::sdk::BattleRequest> out;
  for (const auto& [g, r] : select_responses(groups, info, ignored)) {
    const auto& group = groups[g];
    const auto& resp = group.responses[r];
    const std::string instruction = render_instruction(group.prompt, turns_);
    const auto valid = valid_judgments(resp);
    // Every unordered pair of valid judgments, once in each order.
    for (std::size_t x = 0; x < valid.size(); ++x) {
      for (std::size_t y = x + 1; y < valid.size(); ++y) {
        for (int order = 0; order < 2; ++order) {
          const std::size_t a = order == 0 ? valid[x] : valid[y];
          const std::size_t b = order == 0 ? valid[y] : valid[x];
          mr::sdk::BattleRequest req;
          req.id = resp.id + "/j" + std::to_string(a) + "-j" + std::to_string(b);
          req.prompt_id = group.prompt_id;
          req.response_id = resp.id;
          req.judgment_a_id = resp.judgments[a].id;
          req.judgment_b_id = resp.judgments[b].id;
          if (!system_.empty()) req.messages.push_back({"system", system_});
          req.messages.push_back(
              {"user", substitute(template_, {{"instruction", instruction},
                                              {"response", resp.text},
                                              {"judgment_a", resp.judgments[a].text},
                                              {"judgment_b", resp.judgments[b].text}})});
          out.push_back(std::move(req));
        }
      }
    }
  }
  return out;
}

mr::sdk::MetaJudgeResult PairwiseEloStrategy::decide(
    const std::vector<mr::sdk::PromptGroup>& groups,
    const mr::sdk::JudgeRubric& rubric,
    std::vector<mr::sdk::Battle> battles,
    const mr::sdk::IterationInfo& info,
    std::int64_t actor_pairs) {
  mr::sdk::MetaJudgeResult result;
  select_responses(groups, info, result.drops);  // Recount the prompts plan() skipped.

  struct Ref {
    std::size_t g, r, j;
  };
  std::unordered_map<std::string_view, Ref> by_id;
  for (std::size_t g = 0; g < groups.size(); ++g)
    for (std::size_t r = 0; r < groups[g].responses.size(); ++r)
      for (std::size_t j = 0; j < groups[g].responses[r].judgments.size(); ++j)
        by_id.emplace(groups[g].responses[r].judgments[j].id, Ref{g, r, j});

  // Battles per meta-judged response, in order of first appearance.
  struct ResponseBattles {
    std::size_t g, r;
    std::vector<std::pair<std::size_t, std::size_t>> refs;  // (judgment a, judgment b)
    std::vector<int> outcomes;
  };
  std::vector<ResponseBattles> per_response;
  std::map<std::pair<std::size_t, std::size_t>, std::size_t> slot;

  std::int64_t wins_first = 0, wins_second = 0, unparsed = 0;
  std::int64_t bias_battles = 0, bias_higher_won = 0, unknown = 0;
  for (auto& battle : battles) {
    battle.outcome = verdicts_.parse(battle.verdict_text);
    if (battle.outcome == 0) ++unparsed;
    auto ia = by_id.find(battle.request.judgment_a_id);
    auto ib = by_id.find(battle.request.judgment_b_id);
    if (ia == by_id.end() || ib == by_id.end() || ia->second.g != ib->second.g ||
        ia->second.r != ib->second.r || ia->second.j == ib->second.j ||
        groups[ia->second.g].responses[ia->second.r].id != battle.request.response_id) {
      ++unknown;
      continue;
    }
    const Ref a = ia->second, b = ib->second;
    auto key = std::make_pair(a.g, a.r);
    auto [it, inserted] = slot.emplace(key, per_response.size());
    if (inserted) per_response.push_back({a.g, a.r, {}, {}});
    per_response[it->second].refs.emplace_back(a.j, b.j);
    per_response[it->second].outcomes.push_back(battle.outcome);
    if (battle.outcome > 0) ++wins_first;
    if (battle.outcome < 0) ++wins_second;
    const auto& judgments = groups[a.g].responses[a.r].judgments;
    const auto& sa = judgments[a.j].score;
    const auto& sb = judgments[b.j].score;
    if (battle.outcome != 0 && sa && sb && *sa != *sb) {
      ++bias_battles;
      if ((battle.outcome > 0) == (*sa > *sb)) ++bias_higher_won;
    }
  }
  if (unknown > 0) {
    count_drop(result.drops, "unknown_battle_reference", unknown);
    ctx_.logger().warn("pairwise_elo: " + std::to_string(unknown) +
                       " battle(s) reference judgments that are not in the prompt groups; "
                       "they were ignored");
  }
  const PositionalWeights global_w = positional_weights(wins_first, wins_second);
  const std::int64_t cap = config_.get_int("max_chosen_judgment_chars", info.iteration);

  double spread_sum = 0.0;
  std::int64_t not_converged = 0;
  std::vector<mr::sdk::PreferencePair> pairs;
  std::vector<std::string> pair_class;  // chosen-judgment score class of each pair
  for (const auto& rb : per_response) {
    const auto& group = groups[rb.g];
    const auto& resp = group.responses[rb.r];
    // Nodes: the judgments that appear in this response's battles, in judgment order.
    std::set<std::size_t> node_set;
    for (const auto& [a, b] : rb.refs) {
      node_set.insert(a);
      node_set.insert(b);
    }
    std::vector<std::size_t> nodes(node_set.begin(), node_set.end());
    auto node_of = [&](std::size_t j) {
      return static_cast<std::size_t>(std::lower_bound(nodes.begin(), nodes.end(), j) -
                                      nodes.begin());
    };
    std::vector<IndexedBattle> indexed;
    std::int64_t w1 = 0, w2 = 0;
    for (std::size_t k = 0; k < rb.refs.size(); ++k) {
      indexed.push_back({node_of(rb.refs[k].first), node_of(rb.refs[k].second), rb.outcomes[k]});
      if (rb.outcomes[k] > 0) ++w1;
      if (rb.outcomes[k] < 0) ++w2;
    }
    const PositionalWeights w = per_response_weights_ ? positional_weights(w1, w2) : global_w;
    const BradleyTerryResult fit = fit_bradley_terry(battle_matrix(nodes.size(), indexed, w), bt_);
    if (!fit.converged) ++not_converged;
    // Earliest judgment wins ties at the top and at the bottom (nodes are in judgment order).
    std::size_t hi = 0, lo = 0;
    for (std::size_t k = 1; k < nodes.size(); ++k) {
      if (fit.elo[k] > fit.elo[hi] + elo_tie_epsilon_) hi = k;
      if (fit.elo[k] < fit.elo[lo] - elo_tie_epsilon_) lo = k;
    }
    const double spread = fit.elo[hi] - fit.elo[lo];
    spread_sum += spread;
    if (spread <= elo_tie_epsilon_) {
      count_drop(result.drops, "equal_elo");
      continue;
    }
    const auto& chosen = resp.judgments[nodes[hi]];
    const auto& rejected = resp.judgments[nodes[lo]];
    if (chosen.text == rejected.text) {
      count_drop(result.drops, "identical_judgment_text");
      continue;
    }
    if (cap > 0 && utf8_length(chosen.text) > cap) {
      count_drop(result.drops, "chosen_judgment_too_long");
      continue;
    }
    if (drop_same_score_ && chosen.score && rejected.score && *chosen.score == *rejected.score) {
      count_drop(result.drops, "same_judgment_score");
      continue;
    }
    mr::sdk::PreferencePair p;
    p.id = resp.id + "/judge";
    p.role = mr::sdk::PairRole::Judge;
    p.prompt = rubric.build_prompt(group.prompt, resp.text);
    p.chosen = chosen.text;
    p.rejected = rejected.text;
    p.prompt_id = group.prompt_id;
    p.chosen_id = chosen.id;
    p.rejected_id = rejected.id;
    p.chosen_score = fit.elo[hi];
    p.rejected_score = fit.elo[lo];
    p.meta["policy"] = "pairwise_elo";
    p.meta["response_id"] = resp.id;
    p.meta["chosen_judgment_score"] = chosen.score ? format_number(*chosen.score) : "";
    p.meta["rejected_judgment_score"] = rejected.score ? format_number(*rejected.score) : "";
    p.meta["battles"] = std::to_string(rb.refs.size());
    p.meta["omega_first"] = format_number(w.first);
    p.meta["omega_second"] = format_number(w.second);
    pair_class.push_back(p.meta["chosen_judgment_score"]);
    pairs.push_back(std::move(p));
  }

  // Optional guard: no chosen-score class above max_score_class_share of the kept pairs. Keep
  // the largest T with Σ_c min(n_c, ⌊share·T⌋) >= T; every class then holds <= share of them.
  std::vector<std::size_t> kept(pairs.size());
  std::iota(kept.begin(), kept.end(), 0);
  if (max_score_class_share_ > 0.0 && max_score_class_share_ < 1.0 && !pairs.empty()) {
    std::map<std::string, std::vector<std::size_t>> classes;
    for (std::size_t i = 0; i < pairs.size(); ++i) classes[pair_class[i]].push_back(i);
    auto per_class = [&](std::size_t t) {
      return static_cast<std::size_t>(
          std::floor(max_score_class_share_ * static_cast<double>(t) + 1e-9));
    };
    std::size_t best_t = 0;
    for (std::size_t t = pairs.size(); t > 0; --t) {
      std::size_t sum = 0;
      for (const auto& [_, idx] : classes) sum += std::min(idx.size(), per_class(t));
      if (sum >= t) {
        best_t = t;
        break;
      }
    }
    const std::uint64_t seed = mr::sdk::derive_seed(info.seed, kStreamClassCap);
    kept.clear();
    for (const auto& [name, idx] : classes) {
      auto keep = seeded_subset(idx, std::min(idx.size(), per_class(best_t)),
                                mr::sdk::derive_seed(seed, stable_hash(name)));
      kept.insert(kept.end(), keep.begin(), keep.end());
    }
    std::sort(kept.begin(), kept.end());
    count_drop(result.drops, "score_class_cap",
               static_cast<std::int64_t>(pairs.size() - kept.size()));
  }
  // Optional guard: at most max_judge_pair_ratio judge pairs per actor pair.
  if (max_judge_pair_ratio_ > 0.0) {
    const double limit_d = std::floor(
        max_judge_pair_ratio_ * static_cast<double>(std::max<std::int64_t>(actor_pairs, 0)) + 1e-9);
    const std::size_t limit = static_cast<std::size_t>(limit_d);
    if (kept.size() > limit) {
      count_drop(result.drops, "judge_pair_ratio_cap",
                 static_cast<std::int64_t>(kept.size() - limit));
      kept = seeded_subset(kept, limit, mr::sdk::derive_seed(info.seed, kStreamRatioCap));
    }
  }
  for (std::size_t i : kept) result.judge_pairs.push_back(std::move(pairs[i]));

  auto& d = result.diagnostics;
  const auto total = static_cast<double>(battles.size());
  d["battles"] = total;
  d["valid_verdicts"] = static_cast<double>(wins_first + wins_second);
  d["responses_meta_judged"] = static_cast<double>(per_response.size());
  d["judge_pairs"] = static_cast<double>(result.judge_pairs.size());
  d["omega_first"] = global_w.first;
  d["omega_second"] = global_w.second;
  d["bt_not_converged"] = static_cast<double>(not_converged);
  d["score_bias_battles"] = static_cast<double>(bias_battles);
  if (!battles.empty()) d["verdict_parse_failure_rate"] = static_cast<double>(unparsed) / total;
  if (wins_first + wins_second > 0)
    d["positional_bias"] =
        static_cast<double>(wins_first) / static_cast<double>(wins_first + wins_second);
  if (bias_battles > 0)
    d["score_bias"] = static_cast<double>(bias_higher_won) / static_cast<double>(bias_battles);
  if (!per_response.empty())
    d["elo_spread"] = spread_sum / static_cast<double>(per_response.size());
  result.battles = std::move(battles);
  return result;
}

}  // namespace mr::plugins::recipe
