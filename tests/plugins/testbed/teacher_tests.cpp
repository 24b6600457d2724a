// The imperfect teacher: its rates of correct and verbose answers, what its mistakes look like to
// the oracle, and reproducibility.
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "metareward/testbed/oracle.hpp"
#include "metareward/testbed/teacher.hpp"

using mr::plugins::testbed::generate_instance;
using mr::plugins::testbed::kAllFamilies;
using mr::plugins::testbed::oracle_score;
using mr::plugins::testbed::Rng;
using mr::plugins::testbed::TaskInstance;
using mr::plugins::testbed::teacher_answer;
using mr::plugins::testbed::TeacherAnswer;
using mr::plugins::testbed::TeacherOptions;
using mr::plugins::testbed::wrap_verbose;
using mr::plugins::testbed::wrong_answer;

namespace {

struct Draw {
  TaskInstance task;
  TeacherAnswer answer;
};

std::vector<Draw> draws(const TeacherOptions& options, std::uint64_t seed, int n = 2000) {
  Rng rng(seed);
  std::vector<Draw> out;
  for (int i = 0; i < n; ++i) {
    TaskInstance t = generate_instance(kAllFamilies[static_cast<std::size_t>(i % 5)], rng);
    TeacherAnswer a = teacher_answer(t, options, rng);
    out.push_back({std::move(t), std::move(a)});
  }
  return out;
}

}  // namespace

TEST_CASE("teacher: right and verbose at the configured rates", "[testbed][teacher]") {
  // Binomial standard deviation over 2000 draws is about 0.011; 0.04 is over 3.5 of them.
  const auto ds = draws({0.6, 0.3}, 77);
  int correct = 0, verbose = 0, oracle_correct = 0;
  for (const auto& d : ds) {
    correct += d.answer.correct;
    verbose += d.answer.verbose;
    oracle_correct += oracle_score(d.task, d.answer.text).correct();
  }
  CHECK(std::abs(correct / 2000.0 - 0.6) < 0.04);
  CHECK(std::abs(verbose / 2000.0 - 0.3) < 0.04);
  SECTION("the correct flag is what the oracle sees") {
    CHECK(oracle_correct == correct);
  }
  SECTION("other rates are honoured too") {
    const auto low = draws({0.2, 0.8}, 78);
    int c = 0, v = 0;
    for (const auto& d : low) {
      c += d.answer.correct;
      v += d.answer.verbose;
    }
    CHECK(std::abs(c / 2000.0 - 0.2) < 0.04);
    CHECK(std::abs(v / 2000.0 - 0.8) < 0.04);
  }
  SECTION("probabilities 0 and 1 are absolute") {
    for (const auto& d : draws({1.0, 0.0}, 79, 300)) {
      CHECK(d.answer.text == d.task.answer);
      CHECK(oracle_score(d.task, d.answer.text).score == 5);
    }
    for (const auto& d : draws({0.0, 1.0}, 80, 300)) {
      CHECK_FALSE(d.answer.correct);
      CHECK(d.answer.verbose);
      CHECK(oracle_score(d.task, d.answer.text).score <= 3);
    }
  }
}

TEST_CASE("teacher: answers score as the README says", "[testbed][teacher]") {
  for (const auto& d : draws({0.5, 0.5}, 81)) {
    INFO(d.task.prompt << " -> '" << d.answer.text << "'");
    const int s = oracle_score(d.task, d.answer.text).score;
    if (d.answer.correct && !d.answer.verbose) CHECK(s == 5);
    if (d.answer.correct && d.answer.verbose) CHECK(s == 4);
    // A plausible mistake keeps the answer's form (1 point) and is never fully right.
    if (!d.answer.correct) CHECK((s >= 1 && s <= 3));
  }
}

TEST_CASE("teacher: mistakes are plausible and varied", "[testbed][teacher]") {
  Rng rng(82);
  for (auto family : kAllFamilies) {
    std::map<int, int> by_score;
    for (int i = 0; i < 400; ++i) {
      const TaskInstance t = generate_instance(family, rng);
      const std::string w = wrong_answer(t, rng);
      INFO(t.prompt << " -> '" << w << "'");
      CHECK(w != t.answer);
      CHECK_FALSE(w.empty());
      ++by_score[oracle_score(t, w).score];
    }
    // Both near misses (2-3 points) and clear misses (1 point) occur in every family.
    INFO(mr::plugins::testbed::family_name(family));
    CHECK(by_score[1] > 0);
    CHECK(by_score[2] + by_score[3] > 0);
    CHECK(by_score[4] + by_score[5] == 0);
  }
}

TEST_CASE("teacher: reproducible and wrapping keeps the answer", "[testbed][teacher]") {
  auto texts = [](std::uint64_t seed) {
    std::vector<std::string> out;
    for (const auto& d : draws({0.6, 0.3}, seed, 200)) out.push_back(d.answer.text);
    return out;
  };
  CHECK(texts(90) == texts(90));
  CHECK(texts(90) != texts(91));
  Rng rng(92);
  for (int i = 0; i < 50; ++i) {
    const std::string v = wrap_verbose("7 19 42", rng);
    CHECK(v.find("7 19 42") != std::string::npos);
    CHECK(v.size() > std::string("7 19 42").size());
    CHECK(v.find_first_of("0123456789") == v.find("7 19 42"));
  }
}
