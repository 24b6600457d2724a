// pairwise_elo: response selection, battle planning, positional weights, Elo pairs, filters,
// guards and diagnostics (method.md §2 step 5); and the `none` strategy.
#include <catch2/catch.hpp>

#include <functional>
#include <map>
#include <set>

#include "additive_rubric.hpp"
#include "metareward/sdk/error.hpp"
#include "no_meta_judge.hpp"
#include "pairwise_elo.hpp"
#include "recipe_test_util.hpp"

using mr::plugins::recipe::additive5_schema;
using mr::plugins::recipe::AdditiveRubric;
using mr::plugins::recipe::battle_matrix;
using mr::plugins::recipe::IndexedBattle;
using mr::plugins::recipe::NoMetaJudge;
using mr::plugins::recipe::pairwise_elo_schema;
using mr::plugins::recipe::PairwiseEloStrategy;
using mr::plugins::recipe::population_variance;
using mr::plugins::recipe::positional_weights;
using mr::sdk::Battle;
using mr::sdk::BattleRequest;
using mr::sdk::IterationInfo;
using mr::sdk::PromptGroup;
using mr::test::config_from_schema;
using mr::test::recipe::build_with_ctx;
using mr::test::recipe::make_response;
using mr::test::recipe::set_judgments;

namespace {

using Scores = std::vector<std::optional<double>>;

PromptGroup group_with(const std::string& id, const std::vector<Scores>& responses) {
  PromptGroup g;
  g.prompt_id = id;
  g.prompt = {{"user", "Question " + id}};
  for (std::size_t i = 0; i < responses.size(); ++i) {
    g.responses.push_back(make_response(id + "/r" + std::to_string(i), std::nullopt, 10));
    set_judgments(g.responses.back(), responses[i]);
  }
  return g;
}

// Meta-judge outputs: `winner(request)` returns +1 (A), -1 (B) or 0 (garbage).
std::vector<Battle> answer(const std::vector<BattleRequest>& plan,
                           const std::function<int(const BattleRequest&)>& winner) {
  std::vector<Battle> out;
  for (const auto& req : plan) {
    Battle b;
    b.request = req;
    int w = winner(req);
    b.verdict_text = w > 0   ? "Reasoning.\nWinner: Judgement A"
                     : w < 0 ? "Reasoning.\nWinner: Judgment B"
                             : "I cannot decide.";
    b.outcome = 99;  // decide() must overwrite it
    out.push_back(std::move(b));
  }
  return out;
}

// Verdicts consistent with a strength per judgment id (higher wins, regardless of position).
std::function<int(const BattleRequest&)> by_strength(std::map<std::string, int> strength) {
  return [strength](const BattleRequest& r) {
    return strength.at(r.judgment_a_id) > strength.at(r.judgment_b_id) ? +1 : -1;
  };
}

const AdditiveRubric& rubric() {
  static const AdditiveRubric r(config_from_schema(additive5_schema()));
  return r;
}

// One prompt, responses: r0 zero variance, r1 var 2/3, r2 var 8/3 (the max) with one invalid.
PromptGroup standard_group() {
  return group_with("p", {{4.0, 4.0, 4.0}, {5.0, 3.0, 4.0}, {5.0, 1.0, 3.0, std::nullopt}});
}

}  // namespace

TEST_CASE("pairwise_elo: helpers", "[recipe][meta_judge]") {
  SECTION("population variance divides by n") {
    CHECK(population_variance({5.0, 1.0, 3.0}) == Approx(8.0 / 3.0));
    CHECK(population_variance({4.0}) == 0.0);
    CHECK(population_variance({2.0, 2.0}) == 0.0);
  }
  SECTION("positional weights: omega1 = win_2nd / total, omega2 = win_1st / total") {
    auto w = positional_weights(3, 1);
    CHECK(w.first == Approx(0.25));
    CHECK(w.second == Approx(0.75));
    auto none = positional_weights(0, 0);
    CHECK(none.first == 0.5);
    CHECK(none.second == 0.5);
  }
  SECTION("battle matrix B_mn = w1 [r_mn = +1] + w2 [r_nm = -1]") {
    // 0 beats 1 from first position; 0 beats 1 from second position; 2 beats 0 from second.
    std::vector<IndexedBattle> battles = {{0, 1, +1}, {1, 0, -1}, {0, 2, -1}, {2, 1, 0}};
    auto b = battle_matrix(3, battles, positional_weights(1, 2));  // w1 = 2/3, w2 = 1/3
    CHECK(b[0][1] == Approx(2.0 / 3.0 + 1.0 / 3.0));
    CHECK(b[1][0] == 0.0);
    CHECK(b[2][0] == Approx(1.0 / 3.0));
    CHECK(b[0][2] == 0.0);
    CHECK(b[2][1] == 0.0);
    CHECK(b[1][2] == 0.0);
  }
}

TEST_CASE("pairwise_elo: plan selects the max-variance response and both orders",
          "[recipe][meta_judge]") {
  auto strategy = build_with_ctx<PairwiseEloStrategy>(pairwise_elo_schema());
  auto g = standard_group();
  auto plan = strategy->plan({g}, rubric(), IterationInfo{1, 1, 5});
  REQUIRE(plan.size() == 6);  // C(3, 2) pairs of valid judgments x 2 orders
  std::set<std::pair<std::string, std::string>> orders;
  for (const auto& b : plan) {
    CHECK(b.prompt_id == "p");
    CHECK(b.response_id == "p/r2");
    CHECK(b.judgment_a_id != b.judgment_b_id);
    CHECK(b.judgment_a_id != "p/r2/j3");  // the invalid judgment is never shown
    CHECK(b.judgment_b_id != "p/r2/j3");
    orders.emplace(b.judgment_a_id, b.judgment_b_id);
    REQUIRE(b.messages.size() == 1);
    const std::string& text = b.messages[0].content;
    // Judgments in full (score line included), A before B, response and question present.
    const std::string& ja = g.responses[2].judgments[b.judgment_a_id.back() - '0'].text;
    const std::string& jb = g.responses[2].judgments[b.judgment_b_id.back() - '0'].text;
    REQUIRE(text.find(ja) != std::string::npos);
    CHECK(text.find(ja) < text.find(jb));
    CHECK(text.find(g.responses[2].text) != std::string::npos);
    CHECK(text.find("Question p") != std::string::npos);
    CHECK(text.find("Winner: [Judgement A | Judgement B]") != std::string::npos);
  }
  CHECK(orders.size() == 6);  // every ordered pair exactly once
  std::set<std::string> ids;
  for (const auto& b : plan) ids.insert(b.id);
  CHECK(ids.size() == 6);
}

TEST_CASE("pairwise_elo: response selection options", "[recipe][meta_judge]") {
  auto g = standard_group();
  SECTION("all: every response with non-zero variance") {
    auto s =
        build_with_ctx<PairwiseEloStrategy>(pairwise_elo_schema(), {{"response_selection", "all"}});
    auto plan = s->plan({g}, rubric(), IterationInfo{});
    CHECK(plan.size() == 12);
  }
  SECTION("all with skip_zero_variance = false also judges the zero-variance response") {
    auto s = build_with_ctx<PairwiseEloStrategy>(
        pairwise_elo_schema(), {{"response_selection", "all"}, {"skip_zero_variance", false}});
    CHECK(s->plan({g}, rubric(), IterationInfo{}).size() == 18);
  }
  SECTION("random: one eligible response, deterministic per seed") {
    auto s = build_with_ctx<PairwiseEloStrategy>(pairwise_elo_schema(),
                                                 {{"response_selection", "random"}});
    std::set<std::string> seen;
    for (std::uint64_t seed = 0; seed < 40; ++seed) {
      auto a = s->plan({g}, rubric(), IterationInfo{1, 1, seed});
      auto b = s->plan({g}, rubric(), IterationInfo{1, 1, seed});
      REQUIRE(a.size() == 6);
      CHECK(a[0].response_id == b[0].response_id);
      seen.insert(a[0].response_id);
    }
    CHECK(seen == std::set<std::string>{"p/r1", "p/r2"});
  }
  SECTION("variance ties are broken by a seeded random choice") {
    auto tied = group_with("t", {{5.0, 1.0}, {1.0, 5.0}, {3.0, 3.0}});
    auto s = build_with_ctx<PairwiseEloStrategy>(pairwise_elo_schema());
    std::set<std::string> seen;
    for (std::uint64_t seed = 0; seed < 40; ++seed) {
      auto a = s->plan({tied}, rubric(), IterationInfo{1, 1, seed});
      REQUIRE(a.size() == 2);
      CHECK(a[0].response_id ==
            s->plan({tied}, rubric(), IterationInfo{1, 1, seed})[0].response_id);
      seen.insert(a[0].response_id);
    }
    CHECK(seen == std::set<std::string>{"t/r0", "t/r1"});
  }
  SECTION("prompts with nothing to judge are skipped and counted in decide()") {
    auto s = build_with_ctx<PairwiseEloStrategy>(pairwise_elo_schema());
    auto flat = group_with("f", {{4.0, 4.0}, {2.0, 2.0, 2.0}});
    auto thin = group_with("t", {{4.0, std::nullopt}, {1.0}});
    CHECK(s->plan({flat, thin}, rubric(), IterationInfo{}).empty());
    auto r = s->decide({flat, thin}, rubric(), {}, IterationInfo{}, 0);
    CHECK(r.drops.at("all_judgment_scores_equal") == 1);
    CHECK(r.drops.at("no_response_with_2_valid_judgments") == 1);
    CHECK(r.judge_pairs.empty());
  }
}

TEST_CASE("pairwise_elo: decide picks the highest- vs lowest-Elo judgment",
          "[recipe][meta_judge]") {
  auto strategy = build_with_ctx<PairwiseEloStrategy>(pairwise_elo_schema());
  auto g = standard_group();
  const IterationInfo info{1, 1, 5};
  auto plan = strategy->plan({g}, rubric(), info);
  // True order: j2 (score 3) > j0 (score 5) > j1 (score 1).
  auto battles = answer(plan, by_strength({{"p/r2/j0", 2}, {"p/r2/j1", 1}, {"p/r2/j2", 3}}));
  auto result = strategy->decide({g}, rubric(), battles, info, 10);

  REQUIRE(result.judge_pairs.size() == 1);
  const auto& p = result.judge_pairs[0];
  CHECK(p.role == mr::sdk::PairRole::Judge);
  CHECK(p.id == "p/r2/judge");
  CHECK(p.prompt_id == "p");
  CHECK(p.chosen_id == "p/r2/j2");
  CHECK(p.rejected_id == "p/r2/j1");
  CHECK(p.chosen == g.responses[2].judgments[2].text);
  CHECK(p.rejected == g.responses[2].judgments[1].text);
  CHECK(p.prompt == rubric().build_prompt(g.prompt, g.responses[2].text));
  CHECK(*p.chosen_score > *p.rejected_score);
  CHECK(p.meta.at("chosen_judgment_score") == "3");
  CHECK(p.meta.at("rejected_judgment_score") == "1");
  CHECK(p.meta.at("response_id") == "p/r2");

  SECTION("every battle comes back with its parsed outcome, in order") {
    REQUIRE(result.battles.size() == plan.size());
    for (std::size_t i = 0; i < plan.size(); ++i) {
      CHECK(result.battles[i].request.id == plan[i].id);
      CHECK(result.battles[i].outcome ==
            (result.battles[i].verdict_text.find("Judgement A") != std::string::npos ? +1 : -1));
    }
  }
  SECTION("diagnostics: positional bias, score bias, parse failures, Elo spread") {
    const auto& d = result.diagnostics;
    CHECK(d.at("battles") == 6);
    CHECK(d.at("valid_verdicts") == 6);
    CHECK(d.at("positional_bias") == Approx(0.5));
    // Higher score wins j0-j1 and j2-j1 (4 battles) but not j0-j2 (2 battles).
    CHECK(d.at("score_bias") == Approx(4.0 / 6.0));
    CHECK(d.at("verdict_parse_failure_rate") == 0.0);
    CHECK(d.at("elo_spread") == Approx(*p.chosen_score - *p.rejected_score));
    CHECK(d.at("judge_pairs") == 1);
    CHECK(d.at("omega_first") == Approx(0.5));
  }
  SECTION("deterministic: the same inputs give the same result") {
    auto again = strategy->decide({g}, rubric(), battles, info, 10);
    REQUIRE(again.judge_pairs.size() == 1);
    CHECK(again.judge_pairs[0].chosen_id == p.chosen_id);
    CHECK(*again.judge_pairs[0].chosen_score == *p.chosen_score);
  }
}

TEST_CASE("pairwise_elo: positional weights", "[recipe][meta_judge]") {
  auto g = standard_group();
  const IterationInfo info{1, 1, 5};
  SECTION("a meta-judge that always picks A carries no information: equal Elo, no pair") {
    auto s = build_with_ctx<PairwiseEloStrategy>(pairwise_elo_schema());
    auto plan = s->plan({g}, rubric(), info);
    auto r =
        s->decide({g}, rubric(), answer(plan, [](const BattleRequest&) { return +1; }), info, 0);
    CHECK(r.judge_pairs.empty());
    CHECK(r.drops.at("equal_elo") == 1);
    CHECK(r.diagnostics.at("positional_bias") == 1.0);
    CHECK(r.diagnostics.at("omega_first") == 0.0);
    CHECK(r.diagnostics.at("omega_second") == 1.0);
  }
  SECTION("scope: iteration-wide counts vs per-response counts") {
    // Prompt a: always A (3 of its pairs x 2 orders = 6 A-wins). Prompt b: by strength (3/3).
    auto a = group_with("a", {{5.0, 1.0, 3.0}});
    auto b = group_with("b", {{5.0, 1.0, 3.0}});
    auto strength = by_strength({{"b/r0/j0", 2}, {"b/r0/j1", 1}, {"b/r0/j2", 3}});
    auto verdict = [&](const BattleRequest& r) { return r.prompt_id == "a" ? +1 : strength(r); };
    for (const char* scope : {"iteration", "response"}) {
      auto s = build_with_ctx<PairwiseEloStrategy>(pairwise_elo_schema(),
                                                   {{"positional_weight_scope", scope}});
      auto plan = s->plan({a, b}, rubric(), info);
      REQUIRE(plan.size() == 12);
      auto r = s->decide({a, b}, rubric(), answer(plan, verdict), info, 0);
      INFO("scope " << scope);
      // Global: 9 A-wins, 3 B-wins -> omega1 = 0.25, omega2 = 0.75.
      CHECK(r.diagnostics.at("omega_first") == Approx(0.25));
      REQUIRE(r.judge_pairs.size() == 1);  // prompt a is symmetric either way
      CHECK(r.judge_pairs[0].prompt_id == "b");
      CHECK(r.judge_pairs[0].chosen_id == "b/r0/j2");
      CHECK(r.judge_pairs[0].meta.at("omega_first") ==
            (std::string(scope) == "iteration" ? "0.25" : "0.5"));
    }
  }
}

TEST_CASE("pairwise_elo: judge pair filters", "[recipe][meta_judge]") {
  const IterationInfo it1{1, 2, 5}, it2{2, 2, 5};
  auto strength = by_strength({{"p/r2/j0", 2}, {"p/r2/j1", 1}, {"p/r2/j2", 3}});
  SECTION("identical chosen and rejected text is skipped") {
    auto g = standard_group();
    g.responses[2].judgments[1].text = g.responses[2].judgments[2].text;
    auto s = build_with_ctx<PairwiseEloStrategy>(pairwise_elo_schema());
    auto r = s->decide({g}, rubric(), answer(s->plan({g}, rubric(), it1), strength), it1, 0);
    CHECK(r.judge_pairs.empty());
    CHECK(r.drops.at("identical_judgment_text") == 1);
  }
  SECTION("chosen judgment length cap, per iteration") {
    auto g = standard_group();
    auto s = build_with_ctx<PairwiseEloStrategy>(
        pairwise_elo_schema(), {{"max_chosen_judgment_chars", mr::sdk::Array{10, 0}}}, 2);
    auto plan = s->plan({g}, rubric(), it1);
    auto r1 = s->decide({g}, rubric(), answer(plan, strength), it1, 0);
    CHECK(r1.judge_pairs.empty());
    CHECK(r1.drops.at("chosen_judgment_too_long") == 1);
    CHECK(s->decide({g}, rubric(), answer(plan, strength), it2, 0).judge_pairs.size() == 1);
  }
  SECTION("drop_same_score_pairs") {
    auto g = group_with("p", {{5.0, 1.0, 5.0}});
    auto order = by_strength({{"p/r0/j0", 3}, {"p/r0/j1", 2}, {"p/r0/j2", 1}});
    auto off = build_with_ctx<PairwiseEloStrategy>(pairwise_elo_schema());
    auto plan = off->plan({g}, rubric(), it1);
    auto kept = off->decide({g}, rubric(), answer(plan, order), it1, 0);
    REQUIRE(kept.judge_pairs.size() == 1);
    CHECK(kept.judge_pairs[0].chosen_id == "p/r0/j0");
    CHECK(kept.judge_pairs[0].rejected_id == "p/r0/j2");
    auto on = build_with_ctx<PairwiseEloStrategy>(pairwise_elo_schema(),
                                                  {{"drop_same_score_pairs", true}});
    auto dropped = on->decide({g}, rubric(), answer(plan, order), it1, 0);
    CHECK(dropped.judge_pairs.empty());
    CHECK(dropped.drops.at("same_judgment_score") == 1);
  }
  SECTION("unparseable verdicts count as failures and carry no weight") {
    auto g = standard_group();
    auto s = build_with_ctx<PairwiseEloStrategy>(pairwise_elo_schema());
    auto plan = s->plan({g}, rubric(), it1);
    auto battles = answer(plan, strength);
    battles[0].verdict_text = "Winner: [Judgement A | Judgement B]";
    battles[1].verdict_text = "";
    auto r = s->decide({g}, rubric(), battles, it1, 0);
    CHECK(r.battles[0].outcome == 0);
    CHECK(r.battles[1].outcome == 0);
    CHECK(r.diagnostics.at("verdict_parse_failure_rate") == Approx(2.0 / 6.0));
    CHECK(r.diagnostics.at("valid_verdicts") == 4);
  }
  SECTION("battles that reference unknown judgments are ignored, counted and logged") {
    auto g = standard_group();
    auto s = build_with_ctx<PairwiseEloStrategy>(pairwise_elo_schema());
    auto battles = answer(s->plan({g}, rubric(), it1), strength);
    Battle stray = battles[0];
    stray.request.judgment_a_id = "nowhere/j0";
    battles.push_back(stray);
    auto r = s->decide({g}, rubric(), battles, it1, 0);
    CHECK(r.drops.at("unknown_battle_reference") == 1);
    CHECK(r.judge_pairs.size() == 1);
    auto logged = s.ctx->recorder().messages();
    REQUIRE(logged.size() == 1);
    CHECK(logged[0].first == mr::sdk::LogLevel::Warn);
  }
}

namespace {
// n prompts whose single response has judgments (chosen_score, other); j0 wins every battle.
std::vector<PromptGroup> scored_prompts(const std::vector<double>& chosen_scores) {
  std::vector<PromptGroup> groups;
  for (std::size_t i = 0; i < chosen_scores.size(); ++i) {
    double other = chosen_scores[i] == 0.0 ? 1.0 : 0.0;
    groups.push_back(group_with("q" + std::to_string(i), {{chosen_scores[i], other}}));
  }
  return groups;
}
int first_judgment_wins(const BattleRequest& r) {
  return r.judgment_a_id.back() == '0' ? +1 : -1;
}
}  // namespace

TEST_CASE("pairwise_elo: optional NeMo-style guards", "[recipe][meta_judge]") {
  const IterationInfo info{1, 1, 77};
  auto groups = scored_prompts({5, 5, 5, 5, 4, 4, 3, 3});
  SECTION("off by default: every prompt yields a pair") {
    auto s = build_with_ctx<PairwiseEloStrategy>(pairwise_elo_schema());
    auto r = s->decide(groups, rubric(),
                       answer(s->plan(groups, rubric(), info), first_judgment_wins), info, 1);
    CHECK(r.judge_pairs.size() == 8);
  }
  SECTION("max_score_class_share 0.4: no chosen score above 40% of the kept pairs") {
    auto s = build_with_ctx<PairwiseEloStrategy>(pairwise_elo_schema(),
                                                 {{"max_score_class_share", 0.4}});
    auto r = s->decide(groups, rubric(),
                       answer(s->plan(groups, rubric(), info), first_judgment_wins), info, 0);
    // Largest T with sum_c min(n_c, floor(0.4 T)) >= T is 6: two pairs of each score.
    REQUIRE(r.judge_pairs.size() == 6);
    CHECK(r.drops.at("score_class_cap") == 2);
    std::map<std::string, int> per_class;
    for (const auto& p : r.judge_pairs) ++per_class[p.meta.at("chosen_judgment_score")];
    CHECK(per_class == std::map<std::string, int>{{"3", 2}, {"4", 2}, {"5", 2}});
    for (std::size_t i = 1; i < r.judge_pairs.size(); ++i)  // original order kept
      CHECK(r.judge_pairs[i - 1].prompt_id < r.judge_pairs[i].prompt_id);
  }
  SECTION("max_judge_pair_ratio: at most ratio x actor pairs, seeded subset") {
    auto s = build_with_ctx<PairwiseEloStrategy>(pairwise_elo_schema(),
                                                 {{"max_judge_pair_ratio", 0.25}});
    auto battles = answer(s->plan(groups, rubric(), info), first_judgment_wins);
    auto r = s->decide(groups, rubric(), battles, info, 10);
    CHECK(r.judge_pairs.size() == 2);
    CHECK(r.drops.at("judge_pair_ratio_cap") == 6);
    auto again = s->decide(groups, rubric(), battles, info, 10);
    REQUIRE(again.judge_pairs.size() == 2);
    CHECK(again.judge_pairs[0].id == r.judge_pairs[0].id);
    CHECK(again.judge_pairs[1].id == r.judge_pairs[1].id);
    CHECK(s->decide(groups, rubric(), battles, info, 100).judge_pairs.size() == 8);
  }
}

TEST_CASE("pairwise_elo: template robustness and config errors", "[recipe][meta_judge][config]") {
  SECTION("judgments containing placeholders are inserted verbatim") {
    auto g = group_with("p", {{5.0, 1.0}});
    g.responses[0].judgments[0].text = "A says {judgment_b} and {response}. Score: 5";
    g.responses[0].judgments[1].text = "B quotes </judgment_a> {instruction}. Score: 1";
    auto s = build_with_ctx<PairwiseEloStrategy>(
        pairwise_elo_schema(),
        {{"template", "Q:{instruction}|R:{response}|A:{judgment_a}|B:{judgment_b}"}});
    auto plan = s->plan({g}, rubric(), IterationInfo{});
    REQUIRE(plan.size() == 2);
    CHECK(plan[0].messages[0].content == "Q:Question p|R:" + g.responses[0].text +
                                             "|A:" + g.responses[0].judgments[0].text +
                                             "|B:" + g.responses[0].judgments[1].text);
  }
  SECTION("a system prompt is sent first") {
    auto g = group_with("p", {{5.0, 1.0}});
    auto s = build_with_ctx<PairwiseEloStrategy>(pairwise_elo_schema(), {{"system", "Be fair."}});
    auto plan = s->plan({g}, rubric(), IterationInfo{});
    REQUIRE(plan[0].messages.size() == 2);
    CHECK(plan[0].messages[0].role == "system");
  }
  SECTION("a template without {judgment_b} is rejected") {
    mr::test::TestHostContext ctx(config_from_schema(
        pairwise_elo_schema(), {{"template", "{judgment_a} only"}}, 1, "meta_judge"));
    CHECK_THROWS_WITH(PairwiseEloStrategy(ctx),
                      Catch::Matchers::Contains("[meta_judge.template]") &&
                          Catch::Matchers::Contains("{judgment_b}"));
  }
  SECTION("an invalid verdict_regex names the key") {
    mr::test::TestHostContext ctx(config_from_schema(
        pairwise_elo_schema(), {{"verdict_regex", "Winner: (A|B"}}, 1, "meta_judge"));
    CHECK_THROWS_WITH(PairwiseEloStrategy(ctx),
                      Catch::Matchers::Contains("[meta_judge.verdict_regex]"));
  }
  SECTION("a custom verdict_regex is used") {
    auto g = group_with("p", {{5.0, 1.0}});
    auto s = build_with_ctx<PairwiseEloStrategy>(pairwise_elo_schema(),
                                                 {{"verdict_regex", R"(better:\s*(A|B))"}});
    auto plan = s->plan({g}, rubric(), IterationInfo{});
    std::vector<Battle> battles;
    for (const auto& req : plan) battles.push_back({req, "Better: B", 0});
    auto r = s->decide({g}, rubric(), battles, IterationInfo{}, 0);
    CHECK(r.battles[0].outcome == -1);
    CHECK(r.diagnostics.at("positional_bias") == 0.0);
  }
}

TEST_CASE("none: no battles and no judge pairs", "[recipe][meta_judge]") {
  NoMetaJudge none;
  auto g = standard_group();
  CHECK(none.plan({g}, rubric(), IterationInfo{}).empty());
  auto r = none.decide({g}, rubric(), {}, IterationInfo{}, 10);
  CHECK(r.judge_pairs.empty());
  CHECK(r.battles.empty());
  CHECK(r.drops.empty());
}
