// RunDirectory's layout rules and the structural config diff that guards --resume.
#include <catch2/catch.hpp>

#include <string>

#include "metareward/core/run/run_directory.hpp"
#include "temp_dir.hpp"

using mr::core::config_diff;
using mr::core::RunDirectory;

TEST_CASE("config_diff compares configs as data, not as lines", "[unit][run_directory]") {
  const std::string base = R"toml(
[run]
seed = 7
iterations = 3

[judge_rubric]
type = "additive5"
template = '''
Line one.
Line two.
Score: <points>
'''

[models.policy]
type = "torch"
path = "a"
)toml";

  SECTION("equal texts, and keys moved within their table, are no change") {
    CHECK(config_diff(base, base).empty());
    std::string moved = base;
    moved.replace(moved.find("seed = 7\niterations = 3"), 23, "iterations = 3\nseed = 7");
    CHECK(config_diff(base, moved).empty());
  }
  SECTION("reordered lines inside a multi-line template are a change (a line diff missed it)") {
    std::string reordered = base;
    reordered.replace(reordered.find("Line one.\nLine two."), 19, "Line two.\nLine one.");
    const std::string diff = config_diff(base, reordered);
    CHECK_THAT(diff, Catch::StartsWith("[judge_rubric]\n"));
    CHECK_THAT(diff, Catch::Contains("- template = ") && Catch::Contains("+ template = "));
  }
  SECTION("a nested table names its full path; added and removed keys are listed") {
    std::string changed = base;
    changed.replace(changed.find("path = \"a\""), 10, "path = \"b\"\ndtype = \"bfloat16\"");
    changed.replace(changed.find("seed = 7\n"), 9, "");
    const std::string diff = config_diff(base, changed);
    CHECK_THAT(diff, Catch::Contains("[models.policy]\n"));
    CHECK_THAT(diff, Catch::Contains("  - path = 'a'\n  + path = 'b'\n"));
    CHECK_THAT(diff, Catch::Contains("  + dtype = 'bfloat16'\n"));
    CHECK_THAT(diff, Catch::Contains("[run]\n  - seed = 7\n"));
  }
  SECTION("a value's type counts: 1 and 1.0 differ") {
    CHECK_FALSE(config_diff("[a]\nx = 1\n", "[a]\nx = 1.0\n").empty());
  }
  SECTION("text that is not TOML is compared whole") {
    CHECK_FALSE(config_diff(base, "not = [toml").empty());
  }
}

TEST_CASE("RunDirectory: iteration names, completion and the seed evaluation",
          "[unit][run_directory]") {
  CHECK(RunDirectory::iteration_number("iter_1") == 1);
  CHECK(RunDirectory::iteration_number("iter_0") == 0);
  CHECK(RunDirectory::iteration_number("iter_12") == 12);
  CHECK_FALSE(RunDirectory::iteration_number("iter_01"));
  CHECK_FALSE(RunDirectory::iteration_number("iter_"));
  CHECK_FALSE(RunDirectory::iteration_number("iter_1x"));
  CHECK_FALSE(RunDirectory::iteration_number("iter_1234567"));
  CHECK_FALSE(RunDirectory::iteration_number("eval"));

  mr::tests::TempDir dir("run_directory");
  const RunDirectory run(dir.path());
  CHECK_FALSE(run.holds_run());
  dir.write("config.resolved.toml", "");
  CHECK(run.holds_run());
  dir.write("iter_1/metrics.json", "{\"iteration\": 1}");
  dir.write("iter_2/responses.jsonl", "");
  dir.write("iter_0/eval/metrics.json", "{}");
  dir.write("iter_x/metrics.json", "{}");
  CHECK(run.complete(0));
  CHECK(run.complete(1));
  CHECK(run.completion_problem(1).empty());
  CHECK_FALSE(run.complete(2));
  CHECK(run.completion_problem(2).empty());  // absent: not a problem, just not done
  CHECK(run.first_incomplete(3) == 2);
  // Only a valid record marks an iteration complete.
  const std::vector<std::pair<std::string, std::string>> broken = {
      {"{\"iteration\": 3", "is not valid JSON"},
      {"[3]", "is not a JSON object"},
      {"{}", "has no \"iteration\""},
      {"{\"iteration\": 1}", "does not record iteration 3"},
      {"{\"iteration\": \"3\"}", "does not record iteration 3"}};
  for (const auto& [text, problem] : broken) {
    INFO(text);
    dir.write("iter_3/metrics.json", text);
    CHECK_FALSE(run.complete(3));
    CHECK(run.completion_problem(3) == problem);
  }
  std::filesystem::remove_all(dir.path() / "iter_3");
  CHECK_FALSE(run.seed_stage_complete());
  dir.write("iter_0/metrics.json", "{\"iteration\": 0}");
  CHECK_FALSE(run.seed_stage_complete());
  CHECK(run.seed_stage_problem() == "has no \"seed_sft\"");
  dir.write("iter_0/metrics.json", "{\"iteration\": 0, \"seed_sft\": {}}");
  CHECK(run.seed_stage_complete());
  CHECK(run.metrics(0) == dir.path() / "iter_0" / "eval" / "metrics.json");
  CHECK(run.file(2, RunDirectory::kResponses) == dir.path() / "iter_2" / "responses.jsonl");
  const auto iterations = run.iteration_dirs();
  REQUIRE(iterations.size() == 2);
  CHECK(iterations.begin()->first == 1);
  CHECK(run.iteration_dirs(/*with_seed=*/true).size() == 3);
}
