// The oracle additive 0-5 rubric: one table per task family (bare, verbose, partial, garbage and
// empty answers), the ladder rule and the per-criterion bits.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "metareward/testbed/oracle.hpp"
#include "metareward/testbed/tasks.hpp"
#include "metareward/testbed/teacher.hpp"

using mr::plugins::testbed::oracle_score;
using mr::plugins::testbed::OracleScore;
using mr::plugins::testbed::parse_prompt;
using mr::plugins::testbed::TaskInstance;

namespace {

struct Row {
  std::string response;
  int score;
};

TaskInstance task(const std::string& prompt) {
  auto t = parse_prompt(prompt);
  REQUIRE(t.has_value());
  return *t;
}

void check_table(const TaskInstance& t, const std::vector<Row>& rows) {
  for (const auto& row : rows) {
    INFO("task '" << t.prompt << "' (answer '" << t.answer << "'), response '" << row.response
                  << "'");
    CHECK(oracle_score(t, row.response).score == row.score);
  }
}

}  // namespace

TEST_CASE("oracle: sort grades the last run of numbers", "[testbed][oracle]") {
  const TaskInstance t = task("Sort ascending: 42 7 19");
  REQUIRE(t.answer == "7 19 42");
  SECTION("the bare answer scores 5, surrounding whitespace ignored") {
    check_table(t, {{"7 19 42", 5}, {"  7 19 42\n", 5}});
  }
  SECTION("the right list with extra text or another format scores 4") {
    check_table(t, {{"Sure! The answer is 7 19 42. Let me know if you need more help.", 4},
                    {"7, 19, 42", 4},
                    {"[7, 19, 42]", 4},
                    {"42 7 19 -> 7 19 42", 4},
                    {"7 19 42.", 4}});
  }
  SECTION("partially right lists score 1-3") {
    check_table(t, {{"7 19", 2},        // half the positions right, an element missing
                    {"7 19 43", 2},     // off by one: right positions but wrong multiset
                    {"7 19 42 42", 2},  // an extra element
                    {"7 42 19", 1},     // swapped pair: one position of three
                    {"42 7 19", 1}});   // the input echoed: no position right
    const TaskInstance four = task("Sort ascending: 5 3 9 1");
    check_table(four, {{"1 3 9 5", 3},    // swapped tail: half the positions, right numbers
                       {"1 3 5", 2},      // dropped element
                       {"9 5 3 1", 1}});  // descending
  }
  SECTION("a final number after the list is the answer that counts") {
    check_table(t, {{"7 19 42 is the answer, not 1", 1}});
  }
  SECTION("garbage and empty score 0") {
    check_table(t, {{"", 0}, {"   ", 0}, {"seven nineteen forty-two", 0}, {"???", 0}});
  }
}

TEST_CASE("oracle: reverse grades the best-matching word", "[testbed][oracle]") {
  const TaskInstance t = task("Reverse the word: hello");
  REQUIRE(t.answer == "olleh");
  SECTION("the bare answer scores 5") {
    check_table(t, {{"olleh", 5}, {"olleh\n", 5}});
  }
  SECTION("the word inside filler scores 4") {
    check_table(t, {{"Sure! The answer is olleh. Let me know if you need more help.", 4},
                    {"hello -> olleh", 4},
                    {"olleh.", 4}});
  }
  SECTION("partially right words score 1-3") {
    check_table(t, {{"ollhe", 3},                 // long prefix, same letters
                    {"The answer is ollhe.", 3},  // same, inside filler
                    {"olle", 2},                  // long prefix, a letter dropped
                    {"ollehx", 2},                // long prefix, a letter added
                    {"hello", 1},                 // the word echoed
                    {"lleho", 1},                 // same letters, wrong start
                    {"Olleh", 1}});               // letters compare case-sensitively
  }
  SECTION("no word at all scores 0") {
    check_table(t, {{"", 0}, {"42", 0}, {"!!! ???", 0}, {"\n\t", 0}});
  }
}

TEST_CASE("oracle: add, multiply and count grade the last integer", "[testbed][oracle]") {
  SECTION("add") {
    const TaskInstance t = task("Add the numbers: 42 + 17");
    REQUIRE(t.answer == "59");
    check_table(t, {{"59", 5},
                    {" 59 ", 5},
                    {"Sure! The answer is 59. Let me know if you need more help.", 4},
                    {"42 + 17 = 59", 4},
                    {"059", 4},       // right value, not the exact text
                    {"58", 3},        // close (within 10%), right digit count
                    {"64", 3},        // |error| 5 is still within 10% of 59
                    {"59 or 60", 3},  // the last number is the answer given
                    {"65", 1},        // too far
                    {"69", 1},        // carry slip
                    {"5", 1},
                    {"fifty-nine", 0},
                    {"", 0}});
    const TaskInstance ten = task("Add the numbers: 5 + 5");
    check_table(ten, {{"10", 5}, {"11", 3}, {"9", 2}, {"100", 1}});  // 9: close, digits wrong
  }
  SECTION("multiply") {
    const TaskInstance t = task("Multiply the numbers: 7 * 12");
    REQUIRE(t.answer == "84");
    check_table(t, {{"84", 5},
                    {"The answer is 84.", 4},
                    {"85", 3},
                    {"77", 3},  // a group short: 7 from 84 is within 10%
                    {"91", 3},
                    {"19", 1},  // added instead of multiplied
                    {"x", 0},
                    {"", 0}});
  }
  SECTION("count") {
    const TaskInstance t = task("Count the letter 'a' in: banana");
    REQUIRE(t.answer == "3");
    check_table(t,
                {{"3", 5}, {"There are 3.", 4}, {"2", 3}, {"4", 3}, {"6", 1}, {"a", 0}, {"", 0}});
    const TaskInstance zero = task("Count the letter 'z' in: banana");
    REQUIRE(zero.answer == "0");
    check_table(zero, {{"0", 5}, {"It is 0.", 4}, {"1", 3}, {"3", 1}, {"none", 0}});
  }
}

TEST_CASE("oracle: points form a ladder and expose their criteria", "[testbed][oracle]") {
  SECTION("a verbose correct answer meets criteria 1-4, not 5") {
    const OracleScore s = oracle_score(task("Add the numbers: 42 + 17"), "The answer is 59.");
    CHECK(s.met == std::array<bool, 5>{true, true, true, true, false});
    CHECK(s.awarded == s.met);
    CHECK(s.score == 4);
    CHECK(s.candidate == "59");
    CHECK(s.correct());
    CHECK_FALSE(s.exact());
  }
  SECTION("a criterion met above an unmet one earns nothing") {
    // The right numbers in the wrong order: basic elements met, substantial part not.
    const OracleScore s = oracle_score(task("Sort ascending: 42 7 19"), "42 7 19");
    CHECK(s.met == std::array<bool, 5>{true, false, true, false, false});
    CHECK(s.awarded == std::array<bool, 5>{true, false, false, false, false});
    CHECK(s.score == 1);
    CHECK(s.candidate == "42 7 19");
  }
  SECTION("the bare answer earns every point") {
    const OracleScore s = oracle_score(task("Reverse the word: abc"), "cba");
    CHECK(s.score == 5);
    CHECK(s.exact());
    CHECK(s.candidate == "cba");
  }
  SECTION("nothing to grade earns nothing") {
    const OracleScore s = oracle_score(task("Multiply the numbers: 3 * 4"), "");
    CHECK(s.score == 0);
    CHECK(s.candidate.empty());
    CHECK(s.awarded == std::array<bool, 5>{});
  }
  SECTION("awarded is always a prefix and score counts it, over teacher answers") {
    mr::plugins::testbed::Rng rng(5);
    for (int i = 0; i < 500; ++i) {
      const auto family = mr::plugins::testbed::kAllFamilies[static_cast<std::size_t>(i % 5)];
      const TaskInstance t = mr::plugins::testbed::generate_instance(family, rng);
      const auto answer = mr::plugins::testbed::teacher_answer(t, {0.5, 0.5}, rng);
      const OracleScore s = oracle_score(t, answer.text);
      int prefix = 0;
      while (prefix < 5 && s.awarded[static_cast<std::size_t>(prefix)]) ++prefix;
      for (int k = prefix; k < 5; ++k) CHECK_FALSE(s.awarded[static_cast<std::size_t>(k)]);
      CHECK(s.score == prefix);
    }
  }
}
