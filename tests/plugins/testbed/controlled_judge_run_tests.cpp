// configs/testbed/controlled_judge.toml through the built binary on the committed demo seed: the
// policy acts, `testbed_oracle` judges and meta-judges. With judge_accuracy = 1 every judgment the
// run records states the oracle score of its response; with meta_position_bias = 1 every
// evaluation verdict names judgment A.
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <string>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "metareward/testbed/oracle.hpp"
#include "metareward/testbed/tasks.hpp"
#include "score_parser.hpp"
#include "skip.hpp"

namespace fs = std::filesystem;
namespace tb = mr::plugins::testbed;
using mr::tests::CliResult;
using mr::tests::read_text;
using mr::tests::run_cli;
using mr::tests::ScratchDir;
using nlohmann::json;

namespace {

std::vector<json> read_jsonl(const fs::path& file) {
  std::vector<json> rows;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

}  // namespace

TEST_CASE("testbed controlled judge: a run with testbed_oracle as judge and meta-judge",
          "[testbed][oracle_backend][e2e]") {
#ifndef MR_TESTBED_HAVE_TORCH_BACKEND
  MR_SKIP("the controlled-judge config's actor is a torch model (MR_WITH_TORCH=ON)");
#endif
  ScratchDir dir("tb_controlled_judge");
  const fs::path seed = fs::path(MR_SOURCE_DIR) / "configs" / "testbed" / "seed";
  const fs::path out = dir.path() / "run";
  auto quoted = [](const fs::path& p) { return "\"" + p.string() + "\""; };
  const CliResult r =
      run_cli({"--plugin-dir",
               MR_TESTBED_PLUGIN_DIR,
               "run",
               (fs::path(MR_SOURCE_DIR) / "configs" / "testbed" / "controlled_judge.toml").string(),
               "--set",
               "run.iterations=1",
               "--set",
               "run.output_dir=" + quoted(out),
               "--set",
               "run.threads=1",
               "--set",
               "prompts.files=[" + quoted(seed / "data" / "train_prompts.jsonl") + "]",
               "--set",
               "prompts.per_iteration=12",
               "--set",
               "models.policy.path=" + quoted(seed / "seed_model"),
               "--set",
               "models.judge.judge_accuracy=1.0",
               "--set",
               "models.judge.meta_position_bias=1.0",
               "--set",
               "evaluation.prompts=" + quoted(seed / "data" / "eval_prompts.jsonl"),
               "--set",
               "evaluation.max_prompts=20",
               "--set",
               "evaluation.judge_pairs=10"});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.exit_code == 0);

  std::map<std::string, std::string> prompt_text, response_text;
  for (const auto& p : read_jsonl(out / "iter_1" / "prompts.jsonl"))
    prompt_text[p["prompt_id"]] = p["messages"].back()["content"];
  for (const auto& row : read_jsonl(out / "iter_1" / "responses.jsonl"))
    response_text[row["response_id"]] = row["text"];
  const auto judgments = read_jsonl(out / "iter_1" / "judgments.jsonl");
  REQUIRE(judgments.size() == 12 * 4 * 3);  // prompts x K x N
  for (const auto& j : judgments) {
    INFO(j.dump());
    const auto task = tb::parse_prompt(prompt_text.at(j["prompt_id"]));
    REQUIRE(task.has_value());
    REQUIRE(j["score"].is_number());
    CHECK(j["score"].get<double>() ==
          tb::oracle_score(*task, response_text.at(j["response_id"])).score);
  }
  const auto metrics = json::parse(read_text(out / "iter_1" / "metrics.json"))["evaluation"];
  INFO(metrics.dump(2));
  CHECK(metrics["judge/parse_failure_rate"].get<double>() == 0.0);
  CHECK(metrics["meta_judge/position_a_rate"].get<double>() == 1.0);
  CHECK(metrics["meta_judge/parse_failure_rate"].get<double>() == 0.0);
}
