// Judge-score and verdict parser tables, and regex configuration errors.
#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

#include "metareward/sdk/error.hpp"
#include "score_parser.hpp"
#include "test_host_context.hpp"

using mr::plugins::recipe::kDefaultScorePattern;
using mr::plugins::recipe::Pattern;
using mr::plugins::recipe::ScoreParser;
using mr::plugins::recipe::VerdictParser;

namespace {

struct ScoreCase {
  std::string text;
  std::optional<double> score;  ///< nullopt: must fail
  std::string error;            ///< substring of the error when it fails
};

const std::vector<ScoreCase>& score_cases() {
  static const std::vector<ScoreCase> cases = {
      // Plain and case variations.
      {"The response is relevant and complete.\nScore: 4", 4.0, ""},
      {"Score: 5", 5.0, ""},
      {"score: 3", 3.0, ""},
      {"SCORE: 2", 2.0, ""},
      {"Score:3", 3.0, ""},
      {"Score:   0", 0.0, ""},
      {"score : 3", 3.0, ""},
      {"Score:\n4", 4.0, ""},
      // Decimals written by trained judges.
      {"Score: 4.75", 4.75, ""},
      {"Score: 0.5", 0.5, ""},
      {"Score: .5", 0.5, ""},
      {"Score: 5.0", 5.0, ""},
      {"Score: 3.\n", 3.0, ""},
      {"Score: +3", 3.0, ""},
      // Markdown and decoration.
      {"**Score:** 4", 4.0, ""},
      {"**Score: 4**", 4.0, ""},
      {"*Score*: 4.5", 4.5, ""},
      {"__Score__: 1", 1.0, ""},
      {"### Score: 5", 5.0, ""},
      {"Score: `4`", 4.0, ""},
      {"Score: [3]", 3.0, ""},
      {"Score: (2)", 2.0, ""},
      {"Score: \"4\"", 4.0, ""},
      {"Score: 4/5", 4.0, ""},
      {"Score: 4 points", 4.0, ""},
      {"Final Score: 2", 2.0, ""},
      {"Total score: 3 out of 5", 3.0, ""},
      // The LAST occurrence decides.
      {"Earlier I wrote Score: 2, but on reflection\nScore: 4", 4.0, ""},
      {"Score: 1\nScore: 5", 5.0, ""},
      {"The format asks for Score: <total points>.\nScore: 3", 3.0, ""},
      {"The response deserves a high score: 4 of 5 points.\nScore: 4", 4.0, ""},
      {"Justification in 80 words.\n\nScore: 4\n", 4.0, ""},
      // Failures: no score line.
      {"", std::nullopt, "no 'Score:' line"},
      {"The response is great, I give it 4 points.", std::nullopt, "no 'Score:' line"},
      {"Scores: 4", std::nullopt, "no 'Score:' line"},
      {"Scored 4", std::nullopt, "no 'Score:' line"},
      {"Score - 4", std::nullopt, "no 'Score:' line"},
      {"underscore: 4", std::nullopt, "no 'Score:' line"},
      // Failures: the last Score: has no number (no fallback to an earlier one).
      {"Score: N/A", std::nullopt, "has no number"},
      {"Score: 4\nScore: unclear", std::nullopt, "has no number"},
      {"Score: four", std::nullopt, "has no number"},
      {"Score: <total points>", std::nullopt, "has no number"},
      // Failures: out of [0, 5].
      {"Score: 6", std::nullopt, "6 outside [0, 5]"},
      {"Score: -1", std::nullopt, "-1 outside [0, 5]"},
      {"Score: 5.5", std::nullopt, "5.5 outside [0, 5]"},
      {"Score: 45", std::nullopt, "45 outside [0, 5]"},
      {"Score: 10", std::nullopt, "outside [0, 5]"},
  };
  return cases;
}

struct VerdictCase {
  std::string text;
  int outcome;
};

const std::vector<VerdictCase>& verdict_cases() {
  static const std::vector<VerdictCase> cases = {
      {"Winner: Judgement A", +1},
      {"Winner: Judgement B", -1},
      {"Winner: Judgment A", +1},
      {"winner: judgment b", -1},
      {"WINNER: JUDGEMENT B", -1},
      {"**Winner:** Judgement A", +1},
      {"Winner: **Judgment B**", -1},
      {"*Winner*: Judgement B", -1},
      {"Winner: [Judgement A]", +1},
      {"Winner: Judgement B.", -1},
      {"Winner:Judgement A", +1},
      {"Winner: JudgementA", +1},
      {"Both are close, but A misreads criterion 3.\n\nWinner: Judgement B\n", -1},
      {"Winner: Judgement A\nOn reflection, A is wrong.\nWinner: Judgement B", -1},
      {"Judgement B is more careful overall. Winner: Judgement A", +1},
      {"The format is Winner: [Judgement A | Judgement B].\nWinner: Judgement B", -1},
      // Unparseable: 0.
      {"Winner: [Judgement A | Judgement B]", 0},
      {"Winner: Judgement B\nWinner: [Judgement A | Judgement B]", 0},
      {"", 0},
      {"Judgement A is better.", 0},
      {"The winner is Judgement A", 0},
      {"Winner: Both", 0},
      {"Winner: tie", 0},
      {"Winner: Judgement C", 0},
      {"Winner: Judgement AB", 0},
      {"Winner: A", 0},
  };
  return cases;
}

}  // namespace

TEST_CASE("score parser: table of judgments", "[recipe][parser]") {
  REQUIRE(score_cases().size() >= 40);
  ScoreParser parser({0.0, 5.0});
  for (const auto& c : score_cases()) {
    INFO("judgment: " << c.text);
    auto parsed = parser.parse(c.text);
    if (c.score) {
      REQUIRE(parsed.score.has_value());
      CHECK(*parsed.score == Approx(*c.score));
      CHECK(parsed.error.empty());
    } else {
      CHECK_FALSE(parsed.score.has_value());
      CHECK_THAT(parsed.error, Catch::Matchers::Contains(c.error));
    }
  }
}

TEST_CASE("score parser: the range is configurable", "[recipe][parser]") {
  ScoreParser parser({1.0, 10.0});
  SECTION("values inside an inclusive 1..10 range parse") {
    CHECK(*parser.parse("Score: 10").score == 10.0);
    CHECK(*parser.parse("Score: 1").score == 1.0);
    CHECK(*parser.parse("Score: 7.5").score == 7.5);
  }
  SECTION("values outside it are errors, never clamped") {
    auto p = parser.parse("Score: 0");
    CHECK_FALSE(p.score);
    CHECK(p.error == "0 outside [1, 10]");
    CHECK_FALSE(parser.parse("Score: 11").score);
  }
}

TEST_CASE("verdict parser: table of meta-judge outputs", "[recipe][parser]") {
  REQUIRE(verdict_cases().size() >= 20);
  VerdictParser parser;
  for (const auto& c : verdict_cases()) {
    INFO("verdict: " << c.text);
    CHECK(parser.parse(c.text) == c.outcome);
  }
}

TEST_CASE("score parser: configurable regex", "[recipe][parser][config]") {
  SECTION("a custom pattern with one capture group is used, last match wins") {
    ScoreParser parser(Pattern::compile(R"(rating\s*=\s*(\d+))", "score_regex"), {0.0, 5.0});
    CHECK(*parser.parse("rating=2 ... Rating = 3").score == 3.0);
    CHECK_FALSE(parser.parse("Score: 4").score);
  }
  SECTION("an invalid regex is a ConfigError naming the key") {
    auto config =
        mr::test::config_from_schema({mr::sdk::ParamSpec::string_("score_regex", "", "")});
    try {
      Pattern::compile("(unclosed", config, "score_regex");
      FAIL("expected a ConfigError");
    } catch (const mr::sdk::ConfigError& e) {
      CHECK_THAT(e.what(), Catch::Matchers::Contains("score_regex") &&
                               Catch::Matchers::Contains("not a valid regular expression"));
    }
  }
  SECTION("a pattern without exactly one capture group is a ConfigError") {
    CHECK_THROWS_WITH(Pattern::compile(R"(Score: \d+)", "score_regex"),
                      Catch::Matchers::Contains("exactly one capture group") &&
                          Catch::Matchers::Contains("got 0"));
    CHECK_THROWS_WITH(Pattern::compile(R"((Score): (\d+))", "score_regex"),
                      Catch::Matchers::Contains("got 2"));
    CHECK_THROWS_AS(Pattern::compile(R"((Score): (\d+))", "score_regex"), mr::sdk::ConfigError);
  }
  SECTION("the built-in pattern compiles with one group") {
    CHECK(Pattern::compile(kDefaultScorePattern, "score_regex").capture_count() == 1);
  }
}

TEST_CASE("score parser: a capture that is not a number is an error", "[recipe][parser]") {
  ScoreParser parser(Pattern::compile(R"(score:\s*(\S+))", "score_regex"), {0.0, 5.0});
  auto p = parser.parse("Score: 4,5");
  CHECK_FALSE(p.score);
  CHECK_THAT(p.error, Catch::Matchers::Contains("is not a number"));
}

TEST_CASE("score parser: hostile outputs fail cleanly instead of crashing", "[recipe][parser]") {
  ScoreParser parser({0.0, 5.0});
  SECTION("a million spaces between 'Score:' and the number") {
    auto p = parser.parse("Score:" + std::string(1000000, ' ') + "4");
    REQUIRE(p.score);
    CHECK(*p.score == 4.0);
  }
  SECTION("a million markdown stars between 'Score' and the colon") {
    auto p = parser.parse("Score" + std::string(1000000, '*') + ": 3");
    REQUIRE(p.score);
    CHECK(*p.score == 3.0);
  }
  SECTION("a catastrophically backtracking user pattern hits the match limit: an error") {
    ScoreParser slow(Pattern::compile(R"(^(a+)+$)", "score_regex"), {0.0, 5.0});
    auto p = slow.parse(std::string(40, 'a') + "!");
    CHECK_FALSE(p.score);
    CHECK_THAT(p.error, Catch::Matchers::Contains("score pattern failed"));
  }
  SECTION("verdicts: long decoration runs and invalid UTF-8 bytes") {
    VerdictParser verdicts;
    CHECK(verdicts.parse("Winner:" + std::string(500000, ' ') + "Judgement B") == -1);
    CHECK(verdicts.parse("\xff\xfe Winner: Judgement A \xc3") == +1);
  }
}
