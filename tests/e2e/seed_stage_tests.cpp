// End-to-end: the seed stage ([seed_sft], iteration 0 of `metareward run`) on the CI-sized run
// of run_setup.hpp: what it records, that iteration 1 starts from its model, resuming around it,
// its config errors, and how `plan` and `report` show it.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "jsonl_rows.hpp"
#include "run_files.hpp"
#include "run_setup.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using mr::tests::CliResult;
using mr::tests::read_text;
using mr::tests::run_cli;
using mr::tests::RunSetup;
using mr::tests::snapshot;

#ifdef MR_E2E_HAVE_TORCH_BACKEND
namespace {

/// 6 rows: 4 one-turn conversations, one with two assistant turns (2 examples), one bad line.
const char* kEftData =
    "{\"messages\": [{\"role\": \"user\", \"content\": \"Rate: Sort 3 1 2 -> 1 2 3\"}, "
    "{\"role\": \"assistant\", \"content\": \"Correct and direct. Score: 5\"}]}\n"
    "{\"messages\": [{\"role\": \"user\", \"content\": \"Rate: Add 2 + 5 -> 8\"}, "
    "{\"role\": \"assistant\", \"content\": \"Wrong sum. Score: 1\"}]}\n"
    "not json\n"
    "{\"messages\": [{\"role\": \"user\", \"content\": \"Rate: Reverse abc -> cba\"}, "
    "{\"role\": \"assistant\", \"content\": \"Right. Score: 5\"}]}\n"
    "{\"messages\": [{\"role\": \"user\", \"content\": \"Rate: Count a in banana -> 2\"}, "
    "{\"role\": \"assistant\", \"content\": \"Off by one. Score: 2\"}, "
    "{\"role\": \"user\", \"content\": \"And -> 3?\"}, "
    "{\"role\": \"assistant\", \"content\": \"Correct. Score: 5\"}]}\n"
    "{\"messages\": [{\"role\": \"user\", \"content\": \"Rate: Multiply 3 * 4 -> 12\"}, "
    "{\"role\": \"assistant\", \"content\": \"Correct. Score: 4\"}]}\n";

const char* kSeedTable =
    "\n[seed_sft]\n"
    "data = \"eft.jsonl\"\n"
    "epochs = 1\n"
    "batch_size = 2\n"
    "micro_batch_size = 2\n"
    "learning_rate = 0.01\n";

/// RunSetup whose config has the [seed_sft] table above and its data file.
struct SeedRunSetup : RunSetup {
  SeedRunSetup() {
    dir.write("eft.jsonl", kEftData);
    mr::tests::write_text(config, read_text(config) + kSeedTable);
  }
};

std::string weights(const fs::path& model) {
  return read_text(model / "model.safetensors");
}

}  // namespace

TEST_CASE("seed stage: [seed_sft] trains iteration 0, and iteration 1 starts from its model",
          "[e2e][run][seed]") {
  SeedRunSetup s;
  // One iteration without pairs (no judgment parses), so M_1 is a copy of M_0.
  const CliResult r = s.run({"--iterations", "1", "--set", "run.train_judge=false", "--set",
                             "judge_rubric.score_regex=\"NEVER([0-5])\""});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const fs::path run = s.out;
  const fs::path iter0 = run / "iter_0";

  const json metrics = json::parse(read_text(iter0 / "metrics.json"));
  CHECK(metrics["iteration"] == 0);
  CHECK(metrics["iterations"] == 1);
  const json& seed = metrics["seed_sft"];
  CHECK(seed["type"] == "sft");
  CHECK(seed["rows"] == 6);
  CHECK(seed["accepted"] == 5);
  CHECK(seed["drops"] == json({{"not valid JSON", 1}}));
  CHECK(seed["examples"] == 6);  // one per assistant turn
  const auto steps = mr::tests::jsonl_rows(read_text(iter0 / "train_metrics.jsonl"));
  CHECK(steps.size() == 3);  // 6 examples, batch 2, 1 epoch
  CHECK(seed["steps"] == steps.size());
  REQUIRE(!steps.empty());
  CHECK(seed["final"]["loss"] == steps.back()["loss"]);
  CHECK(json::parse(read_text(iter0 / "timings.json"))["stages"]["seed_sft"].is_number());
  CHECK_FALSE(fs::exists(iter0 / "train_state"));
  CHECK_FALSE(fs::exists(iter0 / "eval"));  // no [evaluation] table

  // M_0 is trained; iteration 1 had no pairs, so M_1 is M_0 byte for byte (not the config's model).
  REQUIRE(fs::exists(iter0 / "model" / "config.json"));
  CHECK(weights(iter0 / "model") != weights(s.model));
  CHECK(json::parse(read_text(run / "iter_1" / "metrics.json"))["training"]["pairs"] == 0);
  CHECK(weights(run / "iter_1" / "model") == weights(iter0 / "model"));
  // The policy is reloaded from M_0 before iteration 1 generates.
  const std::string reload = "model 'policy' <- " + (iter0 / "model").string();
  const auto reloaded_at = r.err.find(reload);
  REQUIRE(reloaded_at != std::string::npos);
  CHECK(reloaded_at < r.err.find("=== iter 1/1"));

  bool listed = false;
  const json manifest = json::parse(read_text(run / "manifest.json"));
  for (const auto& p : manifest["plugins"])
    listed = listed || (p["name"] == "sft" && p["kind"] == "optimizer");
  CHECK(listed);
  CHECK_THAT(read_text(run / "config.resolved.toml"),
             Catch::Contains("[seed_sft]\ntype = \"sft\"\ndata = \"eft.jsonl\"\n"));

  // `report` and `compare` read a run with an iter_0 directory; the report shows the stage.
  const CliResult report = run_cli({"report", run.string()});
  INFO(report.err);
  REQUIRE(report.exit_code == 0);
  CHECK_THAT(read_text(run / "report.md"), Catch::Contains("### Seed stage (iteration 0)") &&
                                               Catch::Contains("| sft | 6 | 1 | 6 | 3 |"));
  CHECK_THAT(read_text(run / "report.html"), Catch::Contains("id=\"table-seed-stage\""));
  const CliResult compare = run_cli({"compare", run.string()});
  CHECK_THAT(compare.err, Catch::Contains("no evaluation metrics"));  // not a crash on iter_0
  CHECK(compare.exit_code == 1);

  // `plan` shows the seed stage with the examples it counts in the data file.
  const CliResult plan = run_cli({"plan", s.config.string()}, s.dir.path());
  INFO(plan.err);
  REQUIRE(plan.exit_code == 0);
  CHECK_THAT(plan.out, Catch::Contains("Seed stage (iteration 0): sft on 6 examples from ") &&
                           Catch::Contains("1 epoch of batch 2: 3 optimizer steps at most"));
  const CliResult plan_json = run_cli({"plan", s.config.string(), "--json"}, s.dir.path());
  REQUIRE(plan_json.exit_code == 0);
  CHECK(json::parse(plan_json.out)["seed_stage"]["steps"] == 3);
}

TEST_CASE("seed stage: --resume skips a complete seed stage and reruns an unfinished one",
          "[e2e][run][seed]") {
  SeedRunSetup s;
  const std::vector<std::string> args = {"--iterations", "1"};
  const CliResult first = s.run(args);
  INFO(first.err);
  REQUIRE(first.exit_code == 0);
  // Iteration 1 trains on pairs, starting from M_0.
  CHECK(json::parse(read_text(s.out / "iter_1" / "metrics.json"))["training"]["pairs"] > 0);
  CHECK_THAT(first.err,
             Catch::Contains("model 'policy' <- " + (s.out / "iter_0" / "model").string()));
  const auto expected = snapshot(s.out);

  // One after the other (not SECTIONs, which would repeat the first run): each resume must
  // leave the same bytes.
  std::vector<std::string> resume = args;
  resume.push_back("--resume");
  {
    INFO("killed after the seed stage: iteration 0 is kept, iteration 1 is the same");
    fs::remove_all(s.out / "iter_1");
    const CliResult r = s.run(resume);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.err, Catch::Contains("the seed stage (iteration 0) is complete") &&
                          !Catch::Contains("=== seed stage"));
    CHECK(snapshot(s.out) == expected);
  }
  {
    INFO("killed before the seed stage finished: it runs again to the same bytes");
    fs::remove_all(s.out / "iter_1");
    fs::remove(s.out / "iter_0" / "metrics.json");
    fs::remove_all(s.out / "iter_0" / "model");
    fs::create_directories(s.out / "iter_0" / "model.tmp.123");  // a writer killed mid-save
    const CliResult r = s.run(resume);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.err, Catch::Contains("=== seed stage (iteration 0)"));
    CHECK(snapshot(s.out) == expected);
  }
  {
    INFO("a complete run has nothing left to do");
    const CliResult r = s.run(resume);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.err, Catch::Contains("nothing to do"));
    CHECK(snapshot(s.out) == expected);
  }
}

TEST_CASE("seed stage: with an [evaluation] table the seed evaluation measures M_0",
          "[e2e][run][seed][evaluation]") {
  SeedRunSetup s;
  mr::tests::write_text(s.config, "[plugins]\nlibraries = [\"" + std::string(MR_FIXTURE_EVALUATOR) +
                                      "\"]\n" + read_text(s.config) +
                                      "\n[evaluation]\ntype = \"fixture_eval\"\nprompts = 2\n");
  const CliResult r = s.run({"--iterations", "1"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const fs::path iter0 = s.out / "iter_0";
  // Iteration 0's evaluation is of the seed stage's checkpoint, after it was trained.
  const json models = json::parse(read_text(iter0 / "eval" / "models.json"));
  CHECK(models["actor"] == (iter0 / "model").string());
  CHECK(fs::exists(iter0 / "metrics.json"));
  CHECK(json::parse(read_text(iter0 / "eval" / "metrics.json"))["iteration"] == 0);
  const auto trained = r.err.find("=== seed stage");
  const auto evaluated = r.err.find("evaluating the seed models");
  REQUIRE(trained != std::string::npos);
  REQUIRE(evaluated != std::string::npos);
  CHECK(trained < evaluated);
  CHECK(json::parse(read_text(s.out / "iter_1" / "eval" / "models.json"))["actor"] ==
        (s.out / "iter_1" / "model").string());
}

TEST_CASE("seed stage: [seed_sft] errors name the file, line and key, all at once",
          "[e2e][run][seed][config]") {
  // Every error comes before a model is loaded: the config names a model that is not there.
  struct {
    mr::tests::ScratchDir dir{"seed_errors"};
    fs::path config, out;
    CliResult run() const { return run_cli({"run", config.string()}, dir.path()); }
  } s;
  s.dir.write("prompts.jsonl", mr::tests::kPrompts);
  s.out = s.dir.path() / "run";
  s.config = s.dir.write("run.toml", mr::tests::run_config(s.dir.path() / "no_model", s.out));
  const std::string base = read_text(s.config);
  // The line of the first key of the appended table.
  const std::string at = s.config.string() + ":" +
                         std::to_string(std::count(base.begin(), base.end(), '\n') + 3) + ":";

  SECTION("a missing data key, an unknown key and a per-iteration value") {
    mr::tests::write_text(s.config, base + "\n[seed_sft]\nlerning_rate = 0.1\nepochs = [1, 2]\n");
    const CliResult r = run_cli({"config", "check", s.config.string()}, s.dir.path());
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("3 error(s) in " + s.config.string()));
    CHECK_THAT(r.err, Catch::Contains("[seed_sft.data] missing required key 'data' for "
                                      "[seed_sft] (optimizer 'sft')"));
    CHECK_THAT(r.err, Catch::Contains(at + "16: [seed_sft.lerning_rate] unknown key "
                                           "'lerning_rate' for [seed_sft] (optimizer 'sft'); did "
                                           "you mean 'learning_rate'?"));
    CHECK_THAT(r.err, Catch::Contains("[seed_sft.epochs] expected int, got array [1, 2] (this key "
                                      "cannot be given per iteration)"));
  }
  SECTION("an unknown optimizer type") {
    mr::tests::write_text(s.config, base + "\n[seed_sft]\ntype = \"sfft\"\ndata = \"x.jsonl\"\n");
    const CliResult r = run_cli({"config", "check", s.config.string()}, s.dir.path());
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(at + "8: [seed_sft.type] unknown optimizer 'sfft' (did you "
                                           "mean 'sft'?"));
  }
  SECTION("a missing data file fails the run before its directory exists") {
    mr::tests::write_text(s.config, base + "\n[seed_sft]\ndata = \"missing.jsonl\"\n");
    const CliResult r = s.run();
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains(at + "8: [seed_sft.data]") &&
                          Catch::Contains((s.dir.path() / "missing.jsonl").string()) &&
                          Catch::Contains("does not exist"));
    CHECK_FALSE(fs::exists(s.out));
  }
  SECTION("a data file without a usable example fails the run before its directory exists") {
    s.dir.write("empty.jsonl",
                "not json\n{\"messages\": [{\"role\": \"user\", \"content\": "
                "\"no answer\"}]}\n");
    mr::tests::write_text(s.config, base + "\n[seed_sft]\ndata = \"empty.jsonl\"\n");
    const CliResult r = s.run();
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("[seed_sft.data]") &&
                          Catch::Contains("holds no usable example (2 rows, 0 accepted"));
    CHECK_FALSE(fs::exists(s.out));
  }
}
#endif
