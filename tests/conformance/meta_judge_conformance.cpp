// Conformance of every registered meta-judge strategy (see conformance_support.hpp), planned and
// decided with the registered additive5 rubric.
#include "conformance_support.hpp"

using namespace mr::test::conformance;
using mr::sdk::MetaJudgeStrategy;
using mr::sdk::PluginKind;

namespace {
/// The recipe's additive5 rubric, loaded from its library (kept for the whole run).
const mr::sdk::JudgeRubric& rubric() {
  static const auto* r =
      new Instance<mr::sdk::JudgeRubric>(make_default<mr::sdk::JudgeRubric>("additive5"));
  return *r->plugin;
}

/// Skips (returning) the calling test when the build registers no meta-judge strategy, or not the
/// additive5 rubric the strategies are driven with.
#define MR_SKIP_WITHOUT_STRATEGIES()                                                      \
  do {                                                                                    \
    if (names_of(PluginKind::MetaJudge).empty())                                          \
      MR_SKIP("no meta-judge strategy is registered (the recipe plugins are not built)"); \
    if (!registered("additive5"))                                                         \
      MR_SKIP("the additive5 rubric the strategies are driven with is not registered");   \
  } while (false)

std::string random_verdict(std::mt19937_64& rng) {
  switch (rng() % 4) {
    case 0:
      return "Reasoning.\nWinner: Judgement A";
    case 1:
      return "Reasoning.\nWinner: Judgment B";
    case 2:
      return "**Winner:** Judgement B";
    default:
      return "No idea.";
  }
}
}  // namespace

TEST_CASE("meta_judge conformance: registered strategies exist", "[conformance][meta_judge]") {
#ifndef MR_CONFORMANCE_HAVE_RECIPE
  MR_SKIP("the recipe plugins (pairwise_elo, none) are not built");
#endif
  auto names = names_of(PluginKind::MetaJudge);
  CHECK(std::find(names.begin(), names.end(), "pairwise_elo") != names.end());
  CHECK(std::find(names.begin(), names.end(), "none") != names.end());
}

TEST_CASE("meta_judge conformance: schema defaults validate", "[conformance][meta_judge]") {
  if (names_of(PluginKind::MetaJudge).empty())
    MR_SKIP("no meta-judge strategy is registered (the recipe plugins are not built)");
  auto name = GENERATE(from_range(names_of(PluginKind::MetaJudge)));
  INFO("strategy " << origin(name));
  check_schema(name);
  CHECK_NOTHROW(make_default<MetaJudgeStrategy>(name));
}

TEST_CASE("meta_judge conformance: battles and judge pairs reference existing judgments",
          "[conformance][meta_judge]") {
  MR_SKIP_WITHOUT_STRATEGIES();
  auto name = GENERATE(from_range(names_of(PluginKind::MetaJudge)));
  auto seed = GENERATE(1u, 2u, 3u);
  INFO("strategy " << origin(name) << ", seed " << seed);
  auto inst = make_default<MetaJudgeStrategy>(name);
  auto groups = random_groups(100 + seed);
  const mr::sdk::IterationInfo info{1, 1, seed};

  // Judgment id -> (prompt id, response id, judgment).
  struct Where {
    std::string prompt_id, response_id;
    const mr::sdk::Judgment* judgment;
  };
  std::map<std::string, Where> judgments;
  for (const auto& g : groups)
    for (const auto& r : g.responses)
      for (const auto& j : r.judgments) judgments[j.id] = {g.prompt_id, r.id, &j};

  auto plan = inst.plugin->plan(groups, rubric(), info);
  std::set<std::string> ids;
  for (const auto& b : plan) {
    INFO("battle " << b.id);
    CHECK(ids.insert(b.id).second);
    REQUIRE(judgments.count(b.judgment_a_id) == 1);
    REQUIRE(judgments.count(b.judgment_b_id) == 1);
    CHECK(b.judgment_a_id != b.judgment_b_id);
    CHECK(judgments[b.judgment_a_id].response_id == b.response_id);
    CHECK(judgments[b.judgment_b_id].response_id == b.response_id);
    CHECK(judgments[b.judgment_a_id].prompt_id == b.prompt_id);
    CHECK_FALSE(b.messages.empty());
  }
  SECTION("plan is deterministic under a fixed seed") {
    auto again = inst.plugin->plan(groups, rubric(), info);
    REQUIRE(again.size() == plan.size());
    for (std::size_t i = 0; i < plan.size(); ++i) CHECK(again[i].id == plan[i].id);
  }
  SECTION("decide with random verdicts returns well-formed, deterministic results") {
    std::mt19937_64 rng(seed);
    std::vector<mr::sdk::Battle> battles;
    for (const auto& req : plan) battles.push_back({req, random_verdict(rng), 0});
    auto result = inst.plugin->decide(groups, rubric(), battles, info, 1000);
    REQUIRE(result.battles.size() == battles.size());
    for (std::size_t i = 0; i < battles.size(); ++i) {
      CHECK(result.battles[i].request.id == battles[i].request.id);
      CHECK(result.battles[i].outcome >= -1);
      CHECK(result.battles[i].outcome <= 1);
    }
    for (const auto& p : result.judge_pairs) {
      INFO("pair " << p.id);
      CHECK(p.role == mr::sdk::PairRole::Judge);
      REQUIRE(judgments.count(p.chosen_id) == 1);
      REQUIRE(judgments.count(p.rejected_id) == 1);
      CHECK(p.chosen_id != p.rejected_id);
      CHECK(judgments[p.chosen_id].response_id == judgments[p.rejected_id].response_id);
      CHECK(judgments[p.chosen_id].prompt_id == p.prompt_id);
      CHECK(p.chosen == judgments[p.chosen_id].judgment->text);
      CHECK(p.rejected == judgments[p.rejected_id].judgment->text);
      CHECK(p.chosen != p.rejected);
      CHECK_FALSE(p.prompt.empty());
    }
    for (const auto& [key, value] : result.diagnostics) {
      INFO("diagnostic " << key);
      CHECK(std::isfinite(value));
    }
    auto again = inst.plugin->decide(groups, rubric(), battles, info, 1000);
    REQUIRE(again.judge_pairs.size() == result.judge_pairs.size());
    for (std::size_t i = 0; i < result.judge_pairs.size(); ++i) {
      CHECK(again.judge_pairs[i].chosen_id == result.judge_pairs[i].chosen_id);
      CHECK(again.judge_pairs[i].rejected_id == result.judge_pairs[i].rejected_id);
    }
    CHECK(again.diagnostics == result.diagnostics);
  }
}
