// End-to-end: the evaluator plugins from the CLI. `metareward eval` with two `metareward serve`
// processes playing model and judge over HTTP gives the in-process numbers, and a re-run asks the
// judge nothing; a run with three [evaluation.NAME] tables records win rates, the arena score and
// judge agreement per iteration, caches the baseline once for the whole run, and `report` /
// `compare` show the intervals.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "run_setup.hpp"
#include "serve_process.hpp"
#include "tiny_model.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using mr::tests::CliResult;
using mr::tests::read_text;
using mr::tests::run_cli;
using mr::tests::ScratchDir;

namespace {

/// AlpacaEval-format instructions with the baseline's outputs.
std::string instructions(int n) {
  std::string out;
  for (int i = 0; i < n; ++i)
    out += json({{"instruction",
                  "Task " + std::to_string(i) + ": list " + std::to_string(i + 2) + " colors"},
                 {"output", "Red" + std::string(static_cast<std::size_t>(i % 4), '!')},
                 {"generator", "reference"}})
               .dump() +
           "\n";
  return out;
}

/// The random tiny model writes bytes: its verdicts are read as the first letter it writes,
/// a-m for output A and n-z for B, so that some parse and some do not.
std::string letter_verdicts() {
  std::string labels;
  for (int i = 0; i < 26; ++i)
    labels += std::string(labels.empty() ? "" : ", ") + "\"" + static_cast<char>('A' + i) +
              (i < 13 ? "=1" : "=-1") + "\"";
  return "verdict_regex = \"([a-z])\"\nverdict_labels = [" + labels + "]\n" +
         "judge_template = \"J {instruction}|{output_a}|{output_b}\"\njudge_system = \"\"\n";
}

std::string model_table(const std::string& name, const std::string& type_and_location) {
  return "[models." + name + "]\n" + type_and_location + "\n";
}

json evaluation_of(const fs::path& metrics) {
  return json::parse(read_text(metrics)).at("evaluation");
}

void check_interval(const json& evaluation, const std::string& key) {
  INFO(key << " in " << evaluation.dump());
  REQUIRE(evaluation.contains(key));
  REQUIRE(evaluation.contains(key + "/ci_low"));
  REQUIRE(evaluation.contains(key + "/ci_high"));
  CHECK(evaluation[key + "/ci_low"].get<double>() <= evaluation[key].get<double>() + 1e-9);
  CHECK(evaluation[key + "/ci_high"].get<double>() >= evaluation[key].get<double>() - 1e-9);
}

}  // namespace

TEST_CASE("eval: pairwise_winrate and arena_score with serve playing model and judge over HTTP",
          "[e2e][evaluation][http]") {
  ScratchDir dir("eval_http");
  const fs::path model = mr::tests::tiny_model(dir, "3");
  ScratchDir judge_dir("eval_http_judge");
  const fs::path judge = mr::tests::tiny_model(judge_dir, "4");
  dir.write("instructions.jsonl", instructions(16));
  const std::string evaluation =
      "[run]\nseed = 5\nthreads = 1\n\n[roles]\nactor = \"policy\"\njudge = \"judge\"\n"
      "meta_judge = \"judge\"\n\n[evaluation]\ntype = \"pairwise_winrate\"\n"
      "instructions = \"instructions.jsonl\"\njudge_model = \"judge\"\nmax_new_tokens = 10\n"
      "judge_max_new_tokens = 6\njudge_temperature = 1.0\norder = \"both\"\n"
      "bootstrap_rounds = 200\n" +
      letter_verdicts();
  dir.write("in_process.toml",
            evaluation +
                model_table("policy", "type = \"torch\"\npath = \"" + model.string() + "\"") +
                model_table("judge", "type = \"torch\"\npath = \"" + judge.string() + "\""));

  mr::tests::ServeProcess model_server(dir.path() / "model_serve.log",
                                       {"--model", model.string(), "--threads", "1"});
  mr::tests::ServeProcess judge_server(dir.path() / "judge_serve.log",
                                       {"--model", judge.string(), "--threads", "1"});
  auto openai = [](const mr::tests::ServeProcess& s) {
    return "type = \"openai\"\nbase_url = \"http://127.0.0.1:" + std::to_string(s.port()) +
           "/v1\"\nconcurrency = 4";
  };
  dir.write("http.toml", evaluation + model_table("policy", openai(model_server)) +
                             model_table("judge", openai(judge_server)));

  const CliResult local = run_cli({"eval", "in_process.toml", "--out", "local"}, dir.path());
  INFO(local.err);
  REQUIRE(local.exit_code == 0);
  const CliResult http = run_cli({"eval", "http.toml", "--out", "http"}, dir.path());
  INFO(http.err);
  REQUIRE(http.exit_code == 0);
  const json local_eval = evaluation_of(dir.path() / "local" / "metrics.json");
  const json http_eval = evaluation_of(dir.path() / "http" / "metrics.json");
  // Generation through HTTP changes nothing: same answers, verdicts and numbers.
  CHECK(http_eval == local_eval);
  check_interval(http_eval, "actor/win_rate");
  check_interval(http_eval, "actor/lc_win_rate");
  CHECK(http_eval["actor/judged_instructions"].get<double>() > 0);
  CHECK(http_eval["judge/verdict_parse_failures"].get<double>() > 0);  // counted, not zero
  CHECK(read_text(dir.path() / "http" / "pairwise_winrate.jsonl") ==
        read_text(dir.path() / "local" / "pairwise_winrate.jsonl"));

  // A re-run into the same directory asks the judge nothing and gives the same file.
  const CliResult again = run_cli({"eval", "http.toml", "--out", "http"}, dir.path());
  INFO(again.err);
  REQUIRE(again.exit_code == 0);
  CHECK_THAT(again.err, Catch::Contains("0 verdicts asked, 32 from the cache"));
  CHECK(evaluation_of(dir.path() / "http" / "metrics.json") == http_eval);

  // Arena-style over the same servers: the verdict cache keys include the template, so these
  // are new verdicts; the score comes with its 5th-95th percentile interval.
  std::string arena = read_text(dir.path() / "http.toml");
  arena = std::regex_replace(arena, std::regex("pairwise_winrate"), "arena_score");
  mr::tests::write_text(dir.path() / "arena.toml", arena);
  const CliResult a = run_cli({"eval", "arena.toml", "--out", "arena"}, dir.path());
  INFO(a.err);
  REQUIRE(a.exit_code == 0);
  check_interval(evaluation_of(dir.path() / "arena" / "metrics.json"), "actor/arena_score");

  // compare shows the interval in the metric's cell.
  const CliResult cmp = run_cli({"compare", "http", "--metrics", "actor/win_rate"}, dir.path());
  INFO(cmp.err);
  REQUIRE(cmp.exit_code == 0);
  CHECK(std::regex_search(cmp.out, std::regex("[0-9.]+ \\[[0-9.]+, [0-9.]+\\]")));
  CHECK(cmp.out.find("ci_low") == std::string::npos);
}

TEST_CASE("eval: a misconfigured evaluator names the key or the file", "[e2e][evaluation]") {
  ScratchDir dir("eval_errors");
  const fs::path model = mr::tests::tiny_model(dir, "3");
  const std::string base = "[models.policy]\ntype = \"torch\"\npath = \"" + model.string() +
                           "\"\n[evaluation]\ntype = \"pairwise_winrate\"\n";
  dir.write("missing_key.toml", base);
  CliResult r = run_cli({"eval", "missing_key.toml", "--out", "a"}, dir.path());
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("instructions"));
  dir.write("no_file.toml", base + "instructions = \"nowhere.jsonl\"\n");
  r = run_cli({"eval", "no_file.toml", "--out", "b"}, dir.path());
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("nowhere.jsonl"));
  dir.write("prompts_only.jsonl", "{\"prompt\": \"hi\"}\n");
  dir.write("no_baseline.toml", base + "instructions = \"prompts_only.jsonl\"\n");
  r = run_cli({"eval", "no_baseline.toml", "--out", "c"}, dir.path());
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("baseline_outputs") && Catch::Contains("baseline_model"));
  dir.write("bad_judge.toml",
            base + "instructions = \"prompts_only.jsonl\"\nbaseline_model = \"ghost\"\n");
  r = run_cli({"eval", "bad_judge.toml", "--out", "d"}, dir.path());
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("[models.ghost]"));
}

TEST_CASE("run: [evaluation.NAME] tables record win rates and judge agreement per iteration",
          "[e2e][evaluation][run]") {
  mr::tests::RunSetup s("eval_run");
  ScratchDir baseline_dir("eval_run_baseline");
  const fs::path baseline = mr::tests::tiny_model(baseline_dir, "9");
  s.dir.write("instructions.jsonl",
              "{\"prompt\": \"Name a fruit\"}\n{\"prompt\": \"Say hi\"}\n"
              "{\"prompt\": \"Count to 3\"}\n{\"prompt\": \"Spell cat\"}\n"
              "{\"prompt\": \"Add 1 and 1\"}\n{\"prompt\": \"Sort b a\"}\n");
  const std::string head_to_head =
      "instructions = \"instructions.jsonl\"\nbaseline_model = \"baseline\"\n"
      "max_new_tokens = 8\njudge_max_new_tokens = 6\njudge_temperature = 1.0\n"
      "bootstrap_rounds = 100\n" +
      letter_verdicts();
  mr::tests::write_text(
      s.config, read_text(s.config) + "\n[models.baseline]\ntype = \"torch\"\npath = \"" +
                    baseline.string() + "\"\n\n[evaluation.alpaca]\ntype = \"pairwise_winrate\"\n" +
                    head_to_head + "\n[evaluation.arena]\ntype = \"arena_score\"\n" + head_to_head +
                    "\n[evaluation.agreement]\ntype = \"judge_agreement\"\npairs = \"run\"\n"
                    "label_judge = \"baseline\"\njudgments = 2\njudge_max_new_tokens = 6\n"
                    "bootstrap_rounds = 100\n" +
                    letter_verdicts());
  const CliResult r = s.run();
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  for (int t : {0, 1, 2}) {
    INFO("iteration " << t);
    const fs::path metrics = t == 0 ? s.out / "iter_0" / "eval" / "metrics.json"
                                    : s.out / ("iter_" + std::to_string(t)) / "metrics.json";
    const json e = evaluation_of(metrics);
    check_interval(e, "alpaca/actor/lc_win_rate");
    check_interval(e, "arena/actor/arena_score");
    const fs::path eval_dir = t == 0 ? metrics.parent_path() : metrics.parent_path() / "eval";
    CHECK(fs::exists(eval_dir / "alpaca" / "pairwise_winrate.jsonl"));
    CHECK(fs::exists(eval_dir / "arena" / "arena_score.jsonl"));
    // The seed models have no pairs yet; iterations 1 and 2 relabel their own actor_pairs.jsonl.
    CHECK(e.contains("agreement/labels/pairs") == (t > 0));
    if (t > 0) CHECK(e.contains("agreement/judge/parse_failure_rate"));
  }
  // The baseline model answered each instruction once for the whole run and both head-to-head
  // evaluators (its cache is shared); the verdicts are cached beside it.
  std::ifstream cache(s.out / "eval_cache" / "baseline_answers.jsonl");
  int lines = 0;
  for (std::string line; std::getline(cache, line);) ++lines;
  CHECK(lines == 6);
  CHECK(fs::exists(s.out / "eval_cache" / "verdicts.jsonl"));

  // The report draws the intervals as error bars.
  const CliResult report = run_cli({"report", s.out.string()}, s.dir.path());
  INFO(report.err);
  REQUIRE(report.exit_code == 0);
  const std::string html = read_text(s.out / "report.html");
  CHECK_THAT(html, Catch::Contains("class=\"error-bar\""));
  CHECK_THAT(html, Catch::Contains("alpaca/actor/win_rate (with confidence intervals)"));
}
