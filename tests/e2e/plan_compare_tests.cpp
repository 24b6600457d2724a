// End-to-end tests of the commands that read a config or run records without running anything:
// `metareward plan` (the generation budget) and `metareward compare` (evaluation tables over
// runs and seeds), run as a child process exactly as a user would.
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "sample_configs.hpp"
#include "skip.hpp"

namespace fs = std::filesystem;
using mr::tests::CliResult;
using mr::tests::good_config;
using mr::tests::run_cli;
using mr::tests::ScratchDir;

TEST_CASE("cli: plan prints a run's generation budget per iteration", "[e2e][plan]") {
#if !defined(MR_E2E_HAVE_RECIPE) || !defined(MR_E2E_HAVE_TORCH_BACKEND)
  MR_SKIP(
      "the configs need the recipe, torch backend and dpo plugins (MR_BUILD_PLUGINS=ON, "
      "MR_WITH_TORCH=ON)");
#else
  SECTION("configs/meta_rewarding.toml: the paper's 35,000 / 385,000 / 550,000") {
    const CliResult r = run_cli({"plan", "configs/meta_rewarding.toml"}, MR_SOURCE_DIR);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    std::istringstream lines(r.out);
    std::string line;
    std::vector<std::string> rows;
    while (std::getline(lines, line))
      if (!line.empty() && line[0] >= '0' && line[0] <= '9') rows.push_back(line);  // Iterations.
    REQUIRE(rows.size() == 4);
    for (std::size_t i = 0; i < 4; ++i) {
      INFO(rows[i]);
      CHECK_THAT(rows[i], Catch::Contains(" 5000* "));  // No data/prompts.jsonl: planned.
      CHECK_THAT(rows[i], Catch::Contains(" 35000 "));
      CHECK_THAT(rows[i], Catch::Contains(" 385000 "));
      CHECK_THAT(rows[i], i < 2 ? Catch::Contains(" 550000 ") : Catch::Contains(" no "));
    }
    CHECK_THAT(rows[2], !Catch::Contains("550000"));
    CHECK_THAT(r.out, Catch::Contains("configs/data/prompts.jsonl' not found"));
  }
  ScratchDir dir("plan");
  std::string prompts;
  for (int i = 0; i < 25; ++i) prompts += "{\"prompt\": \"question " + std::to_string(i) + "\"}\n";
  dir.write("data/p.jsonl", prompts);
  std::string text = good_config();  // Two iterations; per_iteration is set below.
  text.insert(text.find("[prompts]\n") + 10, "files = [\"data/p.jsonl\"]\n");
  const fs::path cfg = dir.write("plan.toml", text);
  SECTION("readable prompt files give the real slice sizes; --json is machine-readable") {
    const CliResult r =
        run_cli({"plan", cfg.string(), "--json", "--set", "prompts.per_iteration=20"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::StartsWith("{"));
    // 25 prompts, 20 per iteration: iteration 2 gets the remaining 5 (K = 7, N = 11 defaults).
    CHECK_THAT(r.out, Catch::Contains("\"prompts\": 5,"));
    CHECK_THAT(r.out, Catch::Contains("\"actor_generations\": 35,"));
    CHECK_THAT(r.out, Catch::Contains("\"judge_generations\": 385,"));
    CHECK_THAT(r.out, Catch::Contains("\"meta_judge_generations\": 550,"));
    CHECK_THAT(r.out, Catch::Contains("\"prompts_planned\": false"));
    CHECK_THAT(r.err, Catch::Contains("fewer than per_iteration"));
  }
  SECTION("a pool too small for every iteration is an error naming the numbers") {
    const CliResult r = run_cli({"plan", cfg.string(), "--set", "prompts.per_iteration=25"});
    CHECK(r.exit_code == 1);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Catch::Contains("has 25 prompts but iteration 2 of 2"));
  }
  SECTION("an invalid config fails like config check") {
    const CliResult r = run_cli({"plan", cfg.string(), "--set", "run.iterations=0"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("[run.iterations]"));
  }
#endif
}

namespace {

/// Writes a run directory with `evaluations[t]` as the evaluation of iteration t (t = 0: the
/// seed models, in iter_0/eval/metrics.json).
void write_run(const fs::path& run, const std::vector<nlohmann::json>& evaluations) {
  for (std::size_t t = 0; t < evaluations.size(); ++t) {
    const nlohmann::json doc = {{"iteration", t}, {"evaluation", evaluations[t]}};
    const fs::path file = t == 0 ? run / "iter_0" / "eval" / "metrics.json"
                                 : run / ("iter_" + std::to_string(t)) / "metrics.json";
    mr::tests::write_text(file, doc.dump(2));
  }
}

}  // namespace

TEST_CASE("cli: compare tabulates evaluation metrics of runs, with mean ± std over seeds",
          "[e2e][compare]") {
  ScratchDir dir("compare");
  const fs::path runs = dir.path() / "runs";
  write_run(runs / "meta-seed1", {{{"actor/score", 2.0}, {"judge/acc", 0.5}},
                                  {{"actor/score", 3.0}, {"judge/acc", 0.25}}});
  write_run(runs / "meta-seed2", {{{"actor/score", 2.5}, {"judge/acc", 0.5}},
                                  {{"actor/score", 4.0}, {"judge/acc", 0.75}}});
  write_run(runs / "base", {{{"actor/score", 1.0}}});
  // An incomplete iteration (no metrics.json) is not listed.
  fs::create_directories(runs / "base" / "iter_1");

  SECTION("a text table: runs x iterations, metrics as columns, '-' where missing") {
    const CliResult r =
        run_cli({"compare", "runs/meta-seed1", "runs/meta-seed2/", "runs/base"}, dir.path());
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out ==
          "run                                    iteration  actor/score    judge/acc\n"
          "runs/meta-seed1                        0          2              0.5\n"
          "runs/meta-seed1                        1          3              0.25\n"
          "runs/meta-seed2                        0          2.5            0.5\n"
          "runs/meta-seed2                        1          4              0.75\n"
          "runs/base                              0          1              -\n"
          "runs/base                              1          -              -\n"
          "runs/meta-seed* (mean ± std, 2 seeds)  0          2.25 ± 0.3536  0.5 ± 0\n"
          "runs/meta-seed* (mean ± std, 2 seeds)  1          3.5 ± 0.7071   0.5 ± 0.3536\n");
  }
  SECTION("--markdown and --metrics") {
    const CliResult r = run_cli(
        {"compare", "runs/meta-seed1", "runs/meta-seed2", "--markdown", "--metrics", "judge/"},
        dir.path());
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out ==
          "| run | iteration | judge/acc |\n"
          "|---|---|---:|\n"
          "| runs/meta-seed1 | 0 | 0.5 |\n"
          "| runs/meta-seed1 | 1 | 0.25 |\n"
          "| runs/meta-seed2 | 0 | 0.5 |\n"
          "| runs/meta-seed2 | 1 | 0.75 |\n"
          "| runs/meta-seed* (mean ± std, 2 seeds) | 0 | 0.5 ± 0 |\n"
          "| runs/meta-seed* (mean ± std, 2 seeds) | 1 | 0.5 ± 0.3536 |\n");
  }
  SECTION("a seed that lacks a value is counted out of the mean") {
    write_run(runs / "meta-seed3", {{{"actor/score", 3.0}}});
    const CliResult r = run_cli(
        {"compare", "runs/meta-seed1", "runs/meta-seed2", "runs/meta-seed3", "--metrics", "actor/"},
        dir.path());
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.out,
               Catch::Contains("runs/meta-seed* (mean ± std, 3 seeds)  0          2.5 ± 0.5\n"));
    CHECK_THAT(r.out,
               Catch::Contains("runs/meta-seed* (mean ± std, 3 seeds)  1          3.5 ± 0.7071 "
                               "(n=2)\n"));
  }
  SECTION("errors: no run, not a directory, unreadable metrics, a prefix matching nothing") {
    CHECK(run_cli({"compare"}, dir.path()).exit_code == 2);
    const CliResult missing = run_cli({"compare", "runs/nope"}, dir.path());
    CHECK(missing.exit_code == 1);
    CHECK_THAT(missing.err, Catch::Contains("'runs/nope' is not a directory"));
    const CliResult prefix = run_cli({"compare", "runs/base", "--metrics", "judge/"}, dir.path());
    CHECK(prefix.exit_code == 2);
    CHECK_THAT(prefix.err, Catch::Contains("(metrics: actor/score)"));
    mr::tests::write_text(runs / "broken" / "iter_1" / "metrics.json", "{\"evaluation\": ");
    const CliResult broken = run_cli({"compare", "runs/broken"}, dir.path());
    CHECK(broken.exit_code == 1);
    CHECK_THAT(broken.err, Catch::Contains("runs/broken/iter_1/metrics.json:1: not valid JSON"));
    mr::tests::write_text(runs / "text" / "iter_1" / "metrics.json",
                          "{\"evaluation\": {\"actor/score\": \"high\"}}");
    const CliResult text = run_cli({"compare", "runs/text"}, dir.path());
    CHECK(text.exit_code == 1);
    CHECK_THAT(text.err,
               Catch::Contains("evaluation \"actor/score\" is string, expected a number"));
    write_run(runs / "none", {nlohmann::json::object()});
    const CliResult none = run_cli({"compare", "runs/none"}, dir.path());
    CHECK(none.exit_code == 1);
    CHECK_THAT(none.err, Catch::Contains("no evaluation metrics in the given runs"));
  }
  SECTION("a `metareward eval` output directory counts as one iteration") {
    mr::tests::write_text(dir.path() / "evalout" / "metrics.json",
                          "{\"iteration\": 2, \"evaluation\": {\"actor/score\": 4.5}}");
    const CliResult r = run_cli({"compare", "evalout"}, dir.path());
    REQUIRE(r.exit_code == 0);
    CHECK(r.out == "run      iteration  actor/score\nevalout  2          4.5\n");
  }
}
