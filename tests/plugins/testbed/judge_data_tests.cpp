// Judge and meta-judge data: the prompts equal what additive5 / pairwise_elo build with the
// testbed templates, their targets parse with the recipe's parsers, and the simulated judge's
// noise, length bias and the meta-judge labels have the configured rates.
#include <catch2/catch.hpp>

#include <string>

#include "additive_rubric.hpp"
#include "metareward/testbed/judge_data.hpp"
#include "pairwise_elo.hpp"
#include "score_parser.hpp"
#include "test_host_context.hpp"

namespace tb = mr::plugins::testbed;
namespace recipe = mr::plugins::recipe;
using mr::sdk::Conversation;
using mr::sdk::Table;
using mr::sdk::Value;
using mr::test::config_from_schema;
using mr::test::TestHostContext;

namespace {

// (prompt, response) pairs covering every family, verbose and off-task answers, and a response
// that spells the template's own placeholders.
std::vector<std::pair<std::string, std::string>> samples() {
  tb::Rng rng(31);
  std::vector<std::pair<std::string, std::string>> out;
  for (int i = 0; i < 100; ++i) {
    const auto t = tb::generate_instance(tb::kAllFamilies[static_cast<std::size_t>(i % 5)], rng);
    out.emplace_back(t.prompt, tb::sample_judged_response(t, {0.5, 0.5}, 0.2, rng).text);
  }
  out.emplace_back("Add the numbers: 1 + 2", "{instruction} {response} {judgment_a}\nA: 3");
  return out;
}

}  // namespace

TEST_CASE("judge data: the prompt is additive5's with the testbed template", "[testbed][judge]") {
  const recipe::AdditiveRubric rubric(config_from_schema(
      recipe::additive5_schema(), Table{{"template", Value(tb::kTestbedJudgeTemplate)}}));
  SECTION("byte for byte, for every kind of response") {
    for (const auto& [prompt, response] : samples()) {
      const Conversation conv = {{"user", prompt}};
      const Conversation ours = tb::judge_conversation(conv, response);
      const Conversation theirs = rubric.build_prompt(conv, response);
      REQUIRE(ours.size() == theirs.size());
      CHECK(ours[0].role == theirs[0].role);
      CHECK(ours[0].content == theirs[0].content);
    }
  }
  SECTION("the compact template's exact text") {
    CHECK(tb::judge_conversation({{"user", "Add the numbers: 42 + 17"}}, "59")[0].content ==
          "Rate the answer 0-5.\nTask: Add the numbers: 42 + 17\nAnswer: 59\n");
  }
  SECTION("every target parses to the score it was made for") {
    for (int s = 0; s <= 5; ++s) {
      const auto parsed = rubric.parse(tb::judgment_text(s));
      REQUIRE(parsed.score.has_value());
      CHECK(*parsed.score == s);
    }
    CHECK(tb::judgment_text(5) == "Exact answer, nothing extra. Score: 5");
  }
}

TEST_CASE("judge data: the meta-judge prompt is pairwise_elo's battle prompt", "[testbed][judge]") {
  TestHostContext ctx(config_from_schema(
      recipe::pairwise_elo_schema(), Table{{"template", Value(tb::kTestbedMetaJudgeTemplate)}}));
  recipe::PairwiseEloStrategy strategy(ctx);
  const recipe::AdditiveRubric rubric(config_from_schema(recipe::additive5_schema()));
  for (const auto& [prompt, response] : samples()) {
    mr::sdk::PromptGroup group;
    group.prompt_id = "p";
    group.prompt = {{"user", prompt}};
    mr::sdk::ResponseCandidate r;
    r.id = "p/r0";
    r.text = response;
    r.judgments = {{"p/r0/j0", tb::judgment_text(5), 5.0}, {"p/r0/j1", tb::judgment_text(2), 2.0}};
    group.responses = {r};
    const auto plan = strategy.plan({group}, rubric, {1, 1, 7});
    REQUIRE(plan.size() == 2);  // the pair, once in each order
    for (const auto& request : plan) {
      const bool j0_first = request.judgment_a_id == "p/r0/j0";
      const std::string a = tb::judgment_text(j0_first ? 5 : 2);
      const std::string b = tb::judgment_text(j0_first ? 2 : 5);
      const Conversation ours = tb::meta_judge_conversation(group.prompt, response, a, b);
      REQUIRE(ours.size() == request.messages.size());
      CHECK(ours[0].role == request.messages[0].role);
      CHECK(ours[0].content == request.messages[0].content);
    }
  }
  SECTION("the compact template's exact text and verdicts the recipe parses") {
    CHECK(tb::meta_judge_conversation({{"user", "Add the numbers: 1 + 2"}}, "3",
                                      "Exact answer, nothing extra. Score: 5",
                                      "Partly right. Score: 2")[0]
              .content ==
          "Which rating is right?\nTask: Add the numbers: 1 + 2\nAnswer: 3\n"
          "A: Exact answer, nothing extra. Score: 5\nB: Partly right. Score: 2\n");
    const recipe::VerdictParser verdicts;
    CHECK(verdicts.parse(tb::verdict_text(true)) == 1);
    CHECK(verdicts.parse(tb::verdict_text(false)) == -1);
  }
}

TEST_CASE("judge data: noise and length bias of the simulated judge", "[testbed][judge]") {
  tb::Rng rng(41);
  SECTION("length bias: verbose answers gain a point at the configured rate") {
    int raised = 0;
    for (int i = 0; i < 2000; ++i) raised += tb::noisy_judge_score(3, true, {0.0, 0.4}, rng) == 4;
    CHECK(std::abs(raised / 2000.0 - 0.4) < 0.04);
    for (int i = 0; i < 500; ++i) CHECK(tb::noisy_judge_score(3, false, {0.0, 1.0}, rng) == 3);
  }
  SECTION("a verbose correct answer (oracle 4) is often judged 5, the bare one never above 5") {
    int fives = 0;
    for (int i = 0; i < 2000; ++i) fives += tb::noisy_judge_score(4, true, {0.2, 0.5}, rng) == 5;
    // 5 after +1 noise (0.1), or after no noise (0.8) and the bias (0.5): 0.1 + 0.4 = 0.5.
    CHECK(std::abs(fives / 2000.0 - 0.5) < 0.04);
    for (int i = 0; i < 500; ++i) CHECK(tb::noisy_judge_score(5, false, {0.2, 0.5}, rng) <= 5);
  }
  SECTION("score noise moves the score by one at the configured rate, clipped to 0..5") {
    int moved = 0;
    for (int i = 0; i < 2000; ++i) {
      const int s = tb::noisy_judge_score(2, false, {0.3, 0.0}, rng);
      CHECK(std::abs(s - 2) <= 1);
      moved += s != 2;
    }
    CHECK(std::abs(moved / 2000.0 - 0.3) < 0.04);
    for (int i = 0; i < 200; ++i) {
      CHECK(tb::noisy_judge_score(0, false, {1.0, 0.0}, rng) >= 0);
      CHECK(tb::noisy_judge_score(5, true, {1.0, 1.0}, rng) <= 5);
    }
  }
}

TEST_CASE("judge data: meta-judge labels prefer the judgment closer to the oracle",
          "[testbed][judge]") {
  tb::Rng rng(43);
  int agree = 0, a_better = 0;
  for (int i = 0; i < 2000; ++i) {
    const int oracle = i % 6;
    const tb::MetaJudgeExample e = tb::meta_judge_example(oracle, {0.1, 0.7}, rng);
    INFO("oracle " << oracle << ": A " << e.score_a << ", B " << e.score_b);
    CHECK((e.score_a >= 0 && e.score_a <= 5 && e.score_b >= 0 && e.score_b <= 5));
    CHECK(e.a_better == (std::abs(e.score_a - oracle) < std::abs(e.score_b - oracle)));
    CHECK(std::abs(e.score_a - oracle) != std::abs(e.score_b - oracle));
    CHECK(e.judgment_a == tb::judgment_text(e.score_a));
    CHECK(e.judgment_b == tb::judgment_text(e.score_b));
    agree += e.a_wins == e.a_better;
    a_better += e.a_better;
  }
  CHECK(std::abs(agree / 2000.0 - 0.9) < 0.03);
  CHECK(std::abs(a_better / 2000.0 - 0.5) < 0.04);  // no positional shortcut
}
