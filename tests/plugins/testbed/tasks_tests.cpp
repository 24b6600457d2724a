// Task families: seeded reproducible generation, correct answers, short prompts, prompt parsing;
// and the platform-independent random draws underneath.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "metareward/sdk/error.hpp"
#include "metareward/testbed/rng.hpp"
#include "metareward/testbed/tasks.hpp"

using mr::plugins::testbed::family_from_name;
using mr::plugins::testbed::family_name;
using mr::plugins::testbed::generate_instance;
using mr::plugins::testbed::instance_from_row;
using mr::plugins::testbed::kAllFamilies;
using mr::plugins::testbed::parse_prompt;
using mr::plugins::testbed::Rng;
using mr::plugins::testbed::TaskFamily;
using mr::plugins::testbed::TaskInstance;

namespace {

std::vector<std::int64_t> numbers_of(const std::string& text) {
  std::vector<std::int64_t> out;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t j = text.find(' ', i);
    if (j == std::string::npos) j = text.size();
    out.push_back(std::stoll(text.substr(i, j - i)));
    i = j + 1;
  }
  return out;
}

}  // namespace

TEST_CASE("rng: draws are exact, in range and reproducible", "[testbed][tasks]") {
  SECTION("the engine is the standard's mt19937_64") {
    // The standard fixes the 10000th output of a default-seeded mt19937_64.
    Rng rng(5489u);
    std::uint64_t x = 0;
    for (int i = 0; i < 10000; ++i) x = rng.next();
    CHECK(x == 9981545732273789042ULL);
  }
  SECTION("uniform_below stays in range and hits every value about equally") {
    Rng rng(7);
    std::map<std::uint64_t, int> counts;
    for (int i = 0; i < 6000; ++i) ++counts[rng.uniform_below(6)];
    REQUIRE(counts.size() == 6);
    CHECK(counts.begin()->first == 0);
    CHECK(counts.rbegin()->first == 5);
    for (const auto& [value, n] : counts) CHECK(std::abs(n - 1000) < 150);
  }
  SECTION("uniform_int covers both ends; uniform01 stays in [0, 1)") {
    Rng rng(8);
    std::set<std::int64_t> seen;
    for (int i = 0; i < 2000; ++i) seen.insert(rng.uniform_int(3, 6));
    CHECK(seen == std::set<std::int64_t>{3, 4, 5, 6});
    for (int i = 0; i < 2000; ++i) {
      const double u = rng.uniform01();
      CHECK((u >= 0.0 && u < 1.0));
    }
  }
  SECTION("bernoulli honours 0 and 1") {
    Rng rng(9);
    for (int i = 0; i < 100; ++i) {
      CHECK_FALSE(rng.bernoulli(0.0));
      CHECK(rng.bernoulli(1.0));
    }
  }
}

TEST_CASE("tasks: generation is reproducible for a seed", "[testbed][tasks]") {
  auto draw = [](std::uint64_t seed) {
    Rng rng(seed);
    std::vector<std::string> prompts;
    for (int i = 0; i < 50; ++i)
      prompts.push_back(
          generate_instance(kAllFamilies[static_cast<std::size_t>(i % 5)], rng).prompt);
    return prompts;
  };
  CHECK(draw(11) == draw(11));
  CHECK(draw(11) != draw(12));
  SECTION("golden instances pin the draws across platforms and standard libraries") {
    Rng rng(42);
    std::vector<std::string> got;
    for (TaskFamily f : kAllFamilies) {
      const TaskInstance t = generate_instance(f, rng);
      got.push_back(t.prompt + " => " + t.answer);
    }
    CHECK(got == std::vector<std::string>{
                     "Sort ascending: 4 0 2 => 0 2 4",
                     "Reverse the word: eqki => ikqe",
                     "Add the numbers: 7 + 5 => 12",
                     "Multiply the numbers: 2 * 2 => 4",
                     "Count the letter 'z' in: jmmwz => 1",
                 });
  }
}

TEST_CASE("tasks: answers are right and prompts short", "[testbed][tasks]") {
  Rng rng(2024);
  std::map<TaskFamily, std::set<std::string>> distinct;
  for (int i = 0; i < 2500; ++i) {
    const TaskFamily family = kAllFamilies[static_cast<std::size_t>(i % 5)];
    const TaskInstance t = generate_instance(family, rng);
    INFO(t.prompt << " => " << t.answer);
    REQUIRE(t.family == family);
    distinct[family].insert(t.prompt);
    CHECK(t.prompt.size() >= 20);
    CHECK(t.prompt.size() <= 40);
    switch (family) {
      case TaskFamily::Sort: {
        const auto got = numbers_of(t.answer);
        CHECK(std::is_sorted(got.begin(), got.end()));
        CHECK(std::is_permutation(got.begin(), got.end(), t.numbers.begin(), t.numbers.end()));
        CHECK((t.numbers.size() >= 3 && t.numbers.size() <= 5));
        for (auto x : t.numbers) CHECK((x >= 0 && x <= 9));
        break;
      }
      case TaskFamily::Reverse:
        CHECK(std::equal(t.word.rbegin(), t.word.rend(), t.answer.begin(), t.answer.end()));
        CHECK((t.word.size() >= 3 && t.word.size() <= 6));
        break;
      case TaskFamily::Add:
        CHECK(std::stoll(t.answer) == t.numbers.at(0) + t.numbers.at(1));
        CHECK((t.numbers[0] <= 9 && t.numbers[1] <= 9));
        break;
      case TaskFamily::Multiply:
        CHECK(std::stoll(t.answer) == t.numbers.at(0) * t.numbers.at(1));
        CHECK((t.numbers[0] <= 9 && t.numbers[1] <= 9));
        break;
      case TaskFamily::Count:
        CHECK(std::stoll(t.answer) == std::count(t.word.begin(), t.word.end(), t.letter));
        CHECK((t.letter >= 'a' && t.letter <= 'z'));
        CHECK((t.word.size() >= 3 && t.word.size() <= 6));
        break;
    }
  }
  // Every family yields many different prompts; add and multiply draw from 100 each.
  for (const auto& [family, prompts] : distinct)
    CHECK(prompts.size() >=
          (family == TaskFamily::Add || family == TaskFamily::Multiply ? 95u : 300u));
}

TEST_CASE("tasks: prompts parse back into their instances", "[testbed][tasks]") {
  SECTION("every generated prompt round-trips") {
    Rng rng(3);
    for (int i = 0; i < 500; ++i) {
      const TaskInstance t = generate_instance(kAllFamilies[static_cast<std::size_t>(i % 5)], rng);
      auto p = parse_prompt(t.prompt);
      REQUIRE(p.has_value());
      CHECK(p->family == t.family);
      CHECK(p->prompt == t.prompt);
      CHECK(p->answer == t.answer);
      CHECK(p->numbers == t.numbers);
      CHECK(p->word == t.word);
      CHECK(p->letter == t.letter);
    }
  }
  SECTION("other text is not a task prompt") {
    for (const char* text :
         {"", "hello", "Sort ascending: ", "Sort ascending: 01 2", "Sort ascending: 1  2",
          "Sort ascending: 1 2 x", "Reverse the word: Hello",
          "Reverse the word: ", "Add the numbers: 1 +2", "Add the numbers: 1 + -2",
          "Multiply the numbers: 3 x 4", "Count the letter 'A' in: banana",
          "Count the letter 'a' in banana", "Count the letter 'a' in: "}) {
      INFO("'" << text << "'");
      CHECK_FALSE(parse_prompt(text).has_value());
    }
  }
  SECTION("family names round-trip") {
    for (TaskFamily f : kAllFamilies) CHECK(family_from_name(family_name(f)) == f);
    CHECK_FALSE(family_from_name("divide").has_value());
  }
  SECTION("instance_from_row checks task, prompt and answer") {
    CHECK(instance_from_row("add", "Add the numbers: 2 + 3", "5").answer == "5");
    CHECK_THROWS_WITH(instance_from_row("divide", "Add the numbers: 2 + 3", "5"),
                      Catch::Contains("unknown testbed task 'divide'"));
    CHECK_THROWS_WITH(instance_from_row("sort", "Add the numbers: 2 + 3", "5"),
                      Catch::Contains("is not a 'sort' task prompt"));
    CHECK_THROWS_AS(instance_from_row("add", "Add the numbers: 2 + 3", "6"), mr::sdk::DataError);
  }
}
