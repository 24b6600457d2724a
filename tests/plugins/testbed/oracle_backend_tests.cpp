// The `testbed_oracle` controlled judge / meta-judge: its judgments and verdicts have the accuracy
// and biases their settings say (within sampling error: each check allows 4 standard errors),
// its prompts are the recipe's own, and its outputs parse with the recipe's parsers.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "additive_rubric.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/testbed/judge_data.hpp"
#include "metareward/testbed/oracle_backend.hpp"
#include "metareward/testbed/teacher.hpp"
#include "score_parser.hpp"
#include "test_host_context.hpp"

namespace sdk = mr::sdk;
namespace tb = mr::plugins::testbed;

namespace {

struct Instance {
  std::unique_ptr<mr::test::TestHostContext> ctx;
  std::unique_ptr<tb::OracleBackend> backend;
};

Instance make(sdk::Table overrides) {
  Instance i;
  i.ctx = std::make_unique<mr::test::TestHostContext>(mr::test::config_from_schema(
      tb::oracle_backend_schema(), std::move(overrides), 1, "models.judge"));
  i.backend = std::make_unique<tb::OracleBackend>(*i.ctx);
  return i;
}

/// Checks that `hits` of `n` Bernoulli draws agree with probability `p` (4 standard errors).
void check_rate(int hits, int n, double p) {
  const double rate = static_cast<double>(hits) / n;
  const double se = std::sqrt(std::max(p * (1.0 - p), 1e-4) / n);
  INFO("rate " << rate << " expected " << p << " (n " << n << ")");
  CHECK(std::abs(rate - p) <= 4.0 * se);
}

struct Graded {
  tb::TaskInstance task;
  std::string response;
  int oracle = 0;
};

/// `n` teacher answers (right or wrong, bare or verbose) to fresh tasks of every family.
std::vector<Graded> graded_answers(int n, std::uint64_t seed) {
  tb::Rng rng(seed);
  const std::vector<tb::TaskFamily> families = {tb::TaskFamily::Add, tb::TaskFamily::Multiply,
                                                tb::TaskFamily::Sort, tb::TaskFamily::Reverse,
                                                tb::TaskFamily::Count};
  tb::TeacherOptions teacher;
  teacher.p_correct = 0.5;
  teacher.p_verbose = 0.5;
  std::vector<Graded> out;
  for (int i = 0; i < n; ++i) {
    Graded g;
    g.task = tb::generate_instance(rng.pick(families), rng);
    g.response = tb::teacher_answer(g.task, teacher, rng).text;
    g.oracle = tb::oracle_score(g.task, g.response).score;
    out.push_back(std::move(g));
  }
  return out;
}

sdk::GenerationRequest judge_request(const Graded& g, int i) {
  sdk::GenerationRequest r;
  r.id = "j" + std::to_string(i);
  r.messages = tb::judge_conversation({{"user", g.task.prompt}}, g.response);
  r.sampling.max_new_tokens = 48;
  r.seed = 100 + static_cast<std::uint64_t>(i);
  return r;
}

}  // namespace

TEST_CASE("testbed_oracle: templates are matched as the recipe renders them",
          "[testbed][oracle_backend]") {
  const sdk::Conversation prompt = {{"user", "Add the numbers: 3 + 4"}};
  const auto judge = tb::judge_conversation(prompt, "The answer is 7.");
  const auto parts = tb::match_template(tb::kTestbedJudgeTemplate, judge[0].content);
  REQUIRE(parts.has_value());
  CHECK(*parts == std::vector<std::string>{"Add the numbers: 3 + 4", "The answer is 7."});
  const auto meta = tb::meta_judge_conversation(prompt, "7", "Good. Score: 5", "Bad. Score: 1");
  const auto m = tb::match_template(tb::kTestbedMetaJudgeTemplate, meta[0].content);
  REQUIRE(m.has_value());
  CHECK(*m ==
        std::vector<std::string>{"Add the numbers: 3 + 4", "7", "Good. Score: 5", "Bad. Score: 1"});
  CHECK_FALSE(tb::match_template(tb::kTestbedJudgeTemplate, "Add the numbers: 3 + 4"));
  CHECK_FALSE(tb::match_template(tb::kTestbedJudgeTemplate, "Rate the answer 0-5.\nTask: x"));
  CHECK(tb::match_template("{{literal}} {a}!", "{literal} b!") == std::vector<std::string>{"b"});
}

TEST_CASE("testbed_oracle: extra sentences count the teacher's filler",
          "[testbed][oracle_backend]") {
  CHECK(tb::extra_sentences("42") == 0);
  CHECK(tb::extra_sentences("3 5 8") == 0);
  CHECK(tb::extra_sentences("The answer is 42.") == 0);
  CHECK(tb::extra_sentences("Here you go: 42. Hope this helps!") == 1);
  CHECK(tb::extra_sentences("Sure! The answer is 42. Let me know if you need more help.") == 2);
  CHECK(tb::extra_sentences("Let me think... it is 42. I hope that helps!") == 2);
  CHECK(tb::extra_sentences("  ") == 0);
}

TEST_CASE("testbed_oracle: judge accuracy matches its setting", "[testbed][oracle_backend]") {
  const double accuracy = GENERATE(1.0, 0.7, 0.0);
  auto inst = make({{"judge_accuracy", sdk::Value(accuracy)}});
  const auto answers = graded_answers(3000, 5);
  std::vector<sdk::GenerationRequest> reqs;
  for (std::size_t i = 0; i < answers.size(); ++i)
    reqs.push_back(judge_request(answers[i], static_cast<int>(i)));
  const auto results = inst.backend->generate(reqs);
  REQUIRE(results.size() == reqs.size());
  const mr::plugins::recipe::ScoreParser parser(sdk::ScoreRange{0.0, 5.0});
  int exact = 0;
  std::vector<int> histogram(6, 0);
  for (std::size_t i = 0; i < results.size(); ++i) {
    INFO(reqs[i].messages[0].content);
    REQUIRE(results[i].error.empty());
    REQUIRE(results[i].completions.size() == 1);
    const auto parsed = parser.parse(results[i].completions[0].text);
    REQUIRE(parsed.score.has_value());
    const int s = static_cast<int>(*parsed.score);
    ++histogram[static_cast<std::size_t>(s)];
    if (s == answers[i].oracle) ++exact;
  }
  // Inaccurate judgments are uniform over 0-5, so 1 in 6 of them is right by chance.
  INFO("judge_accuracy " << accuracy);
  check_rate(exact, static_cast<int>(results.size()), accuracy + (1.0 - accuracy) / 6.0);
  if (accuracy == 0.0)
    for (int count : histogram) check_rate(count, static_cast<int>(results.size()), 1.0 / 6.0);
}

TEST_CASE("testbed_oracle: length bias adds its points per extra sentence",
          "[testbed][oracle_backend]") {
  tb::OracleBackendOptions o;
  o.length_bias = 0.5;
  const int n = 4000;
  for (int extra : {0, 1, 3}) {
    double sum = 0;
    for (int i = 0; i < n; ++i)
      sum += tb::controlled_judge_score(1, extra, o, static_cast<std::uint64_t>(i));
    const double mean = sum / n;
    INFO("extra sentences " << extra << ": mean score " << mean);
    // 1 + 0.5 * extra with stochastic rounding; the draw's variance is at most 1/4.
    CHECK(std::abs(mean - (1.0 + 0.5 * extra)) <= 4.0 * std::sqrt(0.25 / n));
  }
  CHECK(tb::controlled_judge_score(5, 4, o, 1) == 5);  // clipped
  // Through the backend: a verbose wrong answer is scored higher than its oracle score.
  auto inst = make({{"length_bias", sdk::Value(1.0)}});
  const sdk::Conversation prompt = {{"user", "Add the numbers: 3 + 4"}};
  sdk::GenerationRequest r;
  r.id = "verbose";
  r.messages =
      tb::judge_conversation(prompt, "Sure! The answer is 8. Let me know if you need more help.");
  r.sampling.max_new_tokens = 64;
  const auto out = inst.backend->generate({r});
  REQUIRE(out[0].error.empty());
  const int oracle = tb::oracle_score(*tb::parse_prompt("Add the numbers: 3 + 4"),
                                      "Sure! The answer is 8. Let me know if you need more help.")
                         .score;
  CHECK(out[0].completions[0].text == tb::judgment_text(std::min(5, oracle + 2)));
}

TEST_CASE("testbed_oracle: meta-judge accuracy and position bias match their settings",
          "[testbed][oracle_backend]") {
  const int n = 4000;
  SECTION("accuracy, either order") {
    tb::OracleBackendOptions o;
    o.meta_accuracy = 0.8;
    int right = 0;
    for (int i = 0; i < n; ++i) {
      const bool better_first = i % 2 == 0;  // oracle 4: the judgment saying 4 is better
      const auto a = better_first ? 4.0 : 1.0, b = better_first ? 1.0 : 4.0;
      const bool names_a = tb::controlled_verdict_a(4, a, b, o, static_cast<std::uint64_t>(i));
      if (names_a == better_first) ++right;
    }
    check_rate(right, n, 0.8);
  }
  SECTION("position bias: A is named when worse") {
    tb::OracleBackendOptions o;
    o.meta_position_bias = 0.3;
    int a_named = 0;
    for (int i = 0; i < n; ++i)
      if (tb::controlled_verdict_a(4, 1.0, 4.0, o, static_cast<std::uint64_t>(i))) ++a_named;
    check_rate(a_named, n, 0.3);
  }
  SECTION("an unparseable judgment loses to a parseable one") {
    tb::OracleBackendOptions o;
    CHECK_FALSE(tb::controlled_verdict_a(2, std::nullopt, 5.0, o, 1));
    CHECK(tb::controlled_verdict_a(2, 0.0, std::nullopt, o, 1));
  }
  SECTION("through the backend, in the recipe's verdict format") {
    auto inst = make({});
    const sdk::Conversation prompt = {{"user", "Add the numbers: 3 + 4"}};
    const mr::plugins::recipe::VerdictParser parser;
    sdk::GenerationRequest r;
    r.id = "battle";
    r.sampling.max_new_tokens = 32;
    r.n = 3;
    r.messages =
        tb::meta_judge_conversation(prompt, "7", tb::judgment_text(1), tb::judgment_text(5));
    auto out = inst.backend->generate({r});
    REQUIRE(out[0].error.empty());
    REQUIRE(out[0].completions.size() == 3);
    for (const auto& c : out[0].completions) CHECK(parser.parse(c.text) == -1);  // B says 5
    r.messages =
        tb::meta_judge_conversation(prompt, "7", tb::judgment_text(5), tb::judgment_text(1));
    out = inst.backend->generate({r});
    for (const auto& c : out[0].completions) CHECK(parser.parse(c.text) == +1);
  }
}

TEST_CASE("testbed_oracle: bad prompts fail alone and bad settings name their key",
          "[testbed][oracle_backend]") {
  auto inst = make({});
  sdk::GenerationRequest actor;
  actor.id = "actor";
  actor.messages = {{"user", "Add the numbers: 3 + 4"}};
  sdk::GenerationRequest unknown_task = actor;
  unknown_task.id = "unknown";
  unknown_task.messages = tb::judge_conversation({{"user", "Write a poem"}}, "Roses.");
  sdk::GenerationRequest good = actor;
  good.id = "good";
  good.messages = tb::judge_conversation({{"user", "Add the numbers: 3 + 4"}}, "7");
  good.sampling.max_new_tokens = 10;  // cuts "Exact answer, nothing extra. Score: 5"
  const auto out = inst.backend->generate({actor, unknown_task, good});
  REQUIRE(out.size() == 3);
  CHECK(out[0].error.find("matches neither judge_template nor meta_judge_template") !=
        std::string::npos);
  CHECK(out[0].error.find("'actor'") != std::string::npos);
  CHECK(out[1].error.find("not a testbed task") != std::string::npos);
  REQUIRE(out[2].error.empty());
  CHECK(out[2].completions[0].text == "Exact answ");
  CHECK(out[2].completions[0].finish_reason == sdk::FinishReason::Length);
  CHECK(out[2].completions[0].tokens == 10);

  CHECK_THROWS_WITH(make({{"judge_template", sdk::Value("Rate {response}")}}),
                    Catch::Contains("judge_template") && Catch::Contains("2 placeholders"));
  CHECK_THROWS_WITH(make({{"meta_position_bias", sdk::Value(1.5)}}),
                    Catch::Contains("meta_position_bias"));
}
