// End-to-end: `metareward run` on a tiny randomly initialised model with the real plugins
// (torch backend, additive5, pairwise_elo, length_control, dpo): the artifacts and their ids,
// kill -9 / SIGINT at random points followed by --resume giving byte-identical artifacts, and
// the refusal to resume with a changed config.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "jsonl_rows.hpp"
#include "metareward/core/run/run_loop.hpp"
#include "metareward/core/run/run_session.hpp"
#include "run_files.hpp"
#include "run_setup.hpp"
#include "tiny_model.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using mr::tests::CliResult;
using mr::tests::read_text;
using mr::tests::run_cli;
using mr::tests::RunSetup;
using mr::tests::ScratchDir;
using mr::tests::snapshot;
using mr::tests::tiny_model;

#ifdef MR_E2E_HAVE_TORCH_BACKEND
namespace {

std::vector<json> jsonl(const fs::path& file) {
  return mr::tests::jsonl_rows(read_text(file));
}

/// A `metareward run` child process that the test can signal.
class RunProcess {
 public:
  RunProcess(const std::vector<std::string>& args, const fs::path& cwd, const fs::path& log) {
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::unsetenv("METAREWARD_PLUGIN_PATH");
      if (::chdir(cwd.c_str()) != 0) ::_exit(120);
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<std::string> all = {MR_CLI_PATH};
      all.insert(all.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(MR_CLI_PATH, argv.data());
      ::_exit(127);
    }
  }
  void signal(int sig) const { ::kill(pid_, sig); }
  /// Exit code, or 128 + signal.
  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
};

}  // namespace

TEST_CASE("run: a complete run on a tiny model records every artifact, traceable by id",
          "[e2e][run]") {
  RunSetup s;
  const CliResult r = s.run();
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.err, Catch::Contains("iteration 1/2 summary"));
  CHECK_THAT(r.err, Catch::Contains("iteration 2/2 summary"));

  const fs::path run = s.out;
  for (const char* f : {"config.resolved.toml", "manifest.json", "run.log"})
    CHECK(fs::exists(run / f));
  const json manifest = json::parse(read_text(run / "manifest.json"));
  CHECK(manifest["seed"] == 7);
  CHECK(manifest["models"]["policy"]["architecture"] == "LlamaForCausalLM");
  CHECK(manifest["prompt_pool"]["pool"] == 8);
  std::set<std::string> plugin_names;
  for (const auto& p : manifest["plugins"]) {
    plugin_names.insert(p["name"].get<std::string>());
    CHECK(p["sha256"].get<std::string>().size() == 64);
  }
  CHECK(plugin_names ==
        std::set<std::string>{"additive5", "dpo", "length_control", "pairwise_elo", "torch"});

  std::set<std::string> seen_prompts;
  for (int t = 1; t <= 2; ++t) {
    const fs::path it = run / ("iter_" + std::to_string(t));
    INFO("iteration " << t);
    const auto prompts = jsonl(it / "prompts.jsonl");
    REQUIRE(prompts.size() == 4);
    for (const auto& p : prompts)  // disjoint slices
      CHECK(seen_prompts.insert(p["prompt_id"].get<std::string>()).second);

    const auto responses = jsonl(it / "responses.jsonl");
    REQUIRE(responses.size() == 12);  // 4 prompts x K=3
    std::map<std::string, json> response_by_id;
    for (const auto& row : responses) {
      CHECK(row["text"].is_string());
      CHECK(row["tokens"].get<int>() <= 16);
      response_by_id[row["response_id"].get<std::string>()] = row;
    }
    CHECK(response_by_id.size() == 12);

    const auto judgments = jsonl(it / "judgments.jsonl");
    REQUIRE(judgments.size() == 36);  // 12 responses x N=3
    std::map<std::string, json> judgment_by_id;
    std::int64_t parsed = 0;
    for (const auto& row : judgments) {
      REQUIRE(response_by_id.count(row["response_id"].get<std::string>()));
      CHECK(response_by_id[row["response_id"].get<std::string>()]["prompt_id"] == row["prompt_id"]);
      if (row["score"].is_null()) {
        CHECK(row["parse_error"].is_string());
      } else {
        ++parsed;
        CHECK(row["score"].get<double>() >= 0);
        CHECK(row["score"].get<double>() <= 5);
      }
      judgment_by_id[row["judgment_id"].get<std::string>()] = row;
    }

    const json metrics = json::parse(read_text(it / "metrics.json"));
    CHECK(metrics["iteration"] == t);
    CHECK(metrics["prompts"] == 4);
    CHECK(metrics["actor"]["responses"] == 12);
    CHECK(metrics["judge"]["judgments"] == 36);
    CHECK(metrics["judge"]["parsed"] == parsed);
    std::int64_t histogram_total = 0;
    for (const auto& [bin, n] : metrics["judge"]["score_histogram"].items())
      histogram_total += n.get<std::int64_t>();
    CHECK(histogram_total == parsed);

    const auto actor_pairs = jsonl(it / "actor_pairs.jsonl");
    CHECK(metrics["actor_pairs"]["pairs"] == actor_pairs.size());
    for (const auto& p : actor_pairs) {
      CHECK(p["role"] == "actor");
      const auto& chosen = response_by_id.at(p["chosen_id"].get<std::string>());
      const auto& rejected = response_by_id.at(p["rejected_id"].get<std::string>());
      CHECK(chosen["prompt_id"] == p["prompt_id"]);
      CHECK(rejected["prompt_id"] == p["prompt_id"]);
      CHECK(p["chosen"][0]["content"] == chosen["text"]);
      CHECK(p["rejected"][0]["content"] == rejected["text"]);
      CHECK(p["chosen_score"].get<double>() > p["rejected_score"].get<double>());
      CHECK(p["prompt"][0]["role"] == "user");
      // A response cut at max_new_tokens is marked, so the trainer adds no end-of-turn token.
      CHECK(p.value("chosen_truncated", false) == (chosen["finish_reason"] == "length"));
      CHECK(p.value("rejected_truncated", false) == (rejected["finish_reason"] == "length"));
    }

    const bool trains_judge = t == 1;
    CHECK(metrics["train_judge"] == trains_judge);
    CHECK(fs::exists(it / "meta_judgments.jsonl") == trains_judge);
    std::size_t judge_pair_count = 0;
    if (trains_judge) {
      const auto battles = jsonl(it / "meta_judgments.jsonl");
      REQUIRE(!battles.empty());
      CHECK(metrics["meta_judge"]["battles"] == battles.size());
      for (const auto& b : battles) {
        CHECK(judgment_by_id.count(b["judgment_a_id"].get<std::string>()));
        CHECK(judgment_by_id.count(b["judgment_b_id"].get<std::string>()));
        CHECK(std::set<int>{-1, 0, 1}.count(b["outcome"].get<int>()));
      }
      const auto judge_pairs = jsonl(it / "judge_pairs.jsonl");
      judge_pair_count = judge_pairs.size();
      CHECK(metrics["judge_pairs"]["pairs"] == judge_pairs.size());
      for (const auto& p : judge_pairs) {
        CHECK(p["role"] == "judge");
        CHECK(judgment_by_id.at(p["chosen_id"].get<std::string>())["text"] ==
              p["chosen"][0]["content"]);
        CHECK(judgment_by_id.count(p["rejected_id"].get<std::string>()));
      }
    } else {
      CHECK(metrics["meta_judge"].is_null());
    }

    CHECK(metrics["training"]["pairs"] == actor_pairs.size() + judge_pair_count);
    const auto steps = jsonl(it / "train_metrics.jsonl");
    CHECK(metrics["training"]["steps"] == steps.size());
    for (std::size_t i = 0; i < steps.size(); ++i) {
      CHECK(steps[i]["step"] == i + 1);
      CHECK(steps[i].contains("loss"));
      CHECK(!steps[i].contains("tokens_per_s"));  // wall-clock lives in timings.json
    }
    CHECK(fs::exists(it / "model" / "config.json"));
    CHECK(fs::exists(it / "model" / "model.safetensors"));
    CHECK(!fs::exists(it / "train_state"));
    const json timings = json::parse(read_text(it / "timings.json"));
    for (const char* stage : {"prompts", "actor", "judge", "actor_pairs", "train", "total"})
      CHECK(timings["stages"].contains(stage));
    // No [evaluation] table: nothing is evaluated.
    CHECK(metrics["evaluation"] == json::object());
    CHECK_FALSE(timings["stages"].contains("evaluation"));
    CHECK_FALSE(fs::exists(it / "eval"));
  }
  CHECK_FALSE(fs::exists(run / "iter_0"));
  // The run must have trained on something, or the test proves little.
  CHECK(json::parse(read_text(run / "iter_1" / "metrics.json"))["training"]["pairs"] > 0);
  // Pairs use the columns other trainers read: train-dpo accepts them as they are.
  const CliResult retrain =
      run_cli({"train-dpo", "--model", s.model.string(), "--pairs",
               (run / "iter_1" / "actor_pairs.jsonl").string(), "--out",
               (s.dir.path() / "retrained").string(), "--set", "optimizer.batch_size=2"});
  INFO(retrain.err);
  CHECK(retrain.exit_code == 0);
  const std::string n = std::to_string(jsonl(run / "iter_1" / "actor_pairs.jsonl").size());
  CHECK_THAT(retrain.err, Catch::Contains(n + " rows, " + n + " accepted, 0 dropped"));

  // The report reads what the run wrote.
  const CliResult report = run_cli({"report", run.string()});
  INFO(report.err);
  CHECK(report.exit_code == 0);
  CHECK_THAT(read_text(run / "report.md"), Catch::Contains("iteration") && Catch::Contains("dpo"));
  CHECK_THAT(read_text(run / "report.html"), Catch::Contains("id=\"plot-dpo-loss\""));
  fs::remove(run / "report.md");
  fs::remove(run / "report.html");

  // A finished run is not overwritten; --resume on it has nothing left to do.
  const CliResult again = s.run();
  CHECK(again.exit_code == 2);
  CHECK_THAT(again.err, Catch::Contains("already holds a run") && Catch::Contains("--resume"));
  const auto before = snapshot(run);
  const CliResult resumed = s.run({"--resume"});
  INFO(resumed.err);
  CHECK(resumed.exit_code == 0);
  CHECK_THAT(resumed.err, Catch::Contains("nothing to do"));
  CHECK(snapshot(run) == before);
}

TEST_CASE("run: killed or interrupted at random points, --resume gives byte-identical artifacts",
          "[e2e][run]") {
  RunSetup s;
  const auto start = std::chrono::steady_clock::now();
  const CliResult reference = s.run();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO(reference.err);
  REQUIRE(reference.exit_code == 0);
  const auto expected = snapshot(s.out);
  fs::remove_all(s.out);

  const std::vector<std::string> args = {"run", s.config.string()};
  std::vector<std::string> resume_args = args;
  resume_args.push_back("--resume");
  int interrupted_mid_run = 0;
  int attempt = 0;
  for (const unsigned seed : {11u, 12u, 13u, 14u}) {
    std::mt19937 rng(seed);
    // Within the first 80 % of the uninterrupted run's wall time: a resumed run has less left
    // to do, and a kill after the end tests nothing.
    std::uniform_real_distribution<double> when(0.05, 0.8 * seconds);
    const int sig = seed == 14u ? SIGINT : SIGKILL;  // one graceful stop among the kills
    for (int kill = 0; kill < 2; ++kill) {
      // One log per attempt, so that each check reads only its own process's output.
      const fs::path log = s.dir.path() / ("child" + std::to_string(++attempt) + ".log");
      RunProcess p(fs::exists(s.out) ? resume_args : args, s.dir.path(), log);
      std::this_thread::sleep_for(std::chrono::duration<double>(when(rng)));
      p.signal(sig);
      const int code = p.wait();
      INFO("seed " << seed << " kill " << kill << " exit " << code << "\n" << read_text(log));
      if (code == 128 + SIGKILL || (sig == SIGINT && code == 128 + SIGINT)) ++interrupted_mid_run;
      // A graceful stop prints the command that resumes the run. Only a signal that lands
      // before main() installs its handler (while the dynamic loader maps the libraries) can
      // end the process without a word; then nothing of it is in the log.
      if (sig == SIGINT && code == 128 + SIGINT) {
        const std::string text = read_text(log);
        if (!text.empty())
          CHECK_THAT(text, Catch::Contains("interrupted (SIGINT)") && Catch::Contains("--resume"));
      }
      CHECK((code == 0 || code == 128 + sig));
    }
    const CliResult finish = s.run({"--resume"});
    INFO("seed " << seed << ": " << finish.err);
    REQUIRE(finish.exit_code == 0);
    const auto got = snapshot(s.out);
    std::vector<std::string> differing;
    for (const auto& [name, bytes] : expected)
      if (!got.count(name) || got.at(name) != bytes) differing.push_back(name);
    for (const auto& [name, bytes] : got)
      if (!expected.count(name)) differing.push_back(name + " (unexpected)");
    INFO("differing files: " << Catch::Detail::stringify(differing));
    CHECK(differing.empty());
    fs::remove_all(s.out);
  }
  // The random points must have actually cut runs short, or nothing was tested.
  CHECK(interrupted_mid_run >= 4);  // of 8 attempts
}

TEST_CASE(
    "run: a garbage or foreign iter_T/metrics.json does not count as complete: --resume sets it "
    "aside and redoes the iteration",
    "[e2e][run]") {
  RunSetup s("bad_marker");
  const CliResult reference = s.run();
  INFO(reference.err);
  REQUIRE(reference.exit_code == 0);
  const auto expected = snapshot(s.out);
  const fs::path metrics2 = s.out / "iter_2" / "metrics.json";
  const std::string good = read_text(metrics2);
  struct Case {
    std::string name, text, problem;
  };
  const std::vector<Case> cases = {
      {"truncated", good.substr(0, good.size() / 2), "is not valid JSON"},
      {"not an object", "[1, 2]\n", "is not a JSON object"},
      {"iteration 1's record", read_text(s.out / "iter_1" / "metrics.json"),
       "does not record iteration 2"}};
  for (const auto& c : cases) {
    INFO(c.name);
    {
      std::ofstream out(metrics2, std::ios::binary | std::ios::trunc);
      out << c.text;
    }
    // The report refuses it, naming the file.
    const CliResult report = run_cli({"report", s.out.string()}, s.dir.path());
    CHECK(report.exit_code != 0);
    CHECK_THAT(report.err, Catch::Contains("iter_2/metrics.json"));
    const CliResult resumed = s.run({"--resume"});
    INFO(resumed.err);
    REQUIRE(resumed.exit_code == 0);
    CHECK_THAT(resumed.err, Catch::Contains(c.problem) && Catch::Contains("redoing iteration 2"));
    // Kept for inspection, and everything else is the uninterrupted run's.
    CHECK(read_text(s.out / "iter_2" / "metrics.json.invalid") == c.text);
    fs::remove(s.out / "iter_2" / "metrics.json.invalid");
    const auto got = snapshot(s.out);
    for (const auto& [name, bytes] : expected) {
      INFO(name);
      REQUIRE(got.count(name));
      CHECK(got.at(name) == bytes);
    }
  }
}

TEST_CASE("run: resuming with a changed config is refused with a diff unless --force",
          "[e2e][run]") {
  RunSetup s;
  const CliResult first = s.run({"--iterations", "1"});
  INFO(first.err);
  REQUIRE(first.exit_code == 0);
  const CliResult changed =
      s.run({"--iterations", "1", "--resume", "--set", "optimizer.learning_rate=0.02"});
  CHECK(changed.exit_code == 2);
  CHECK_THAT(changed.err,
             Catch::Contains("[optimizer]") && Catch::Contains("- learning_rate = 0.01") &&
                 Catch::Contains("+ learning_rate = 0.02") && Catch::Contains("--force"));
  // --force continues (here: extends the run by one iteration) and keeps the old config.
  const CliResult forced = s.run({"--iterations", "2", "--resume", "--force"});
  INFO(forced.err);
  CHECK(forced.exit_code == 0);
  CHECK(fs::exists(s.out / "iter_2" / "metrics.json"));
  CHECK(fs::exists(s.out / "config.resolved.toml.before_force"));
  CHECK_THAT(read_text(s.out / "config.resolved.toml"), Catch::Contains("iterations = 2"));

  // A directory that is not a run is never written into.
  s.dir.write("other/file.txt", "keep me");
  const CliResult foreign = s.run({"--out", (s.dir.path() / "other").string()});
  CHECK(foreign.exit_code == 2);
  CHECK_THAT(foreign.err, Catch::Contains("not empty"));
  CHECK(read_text(s.dir.path() / "other" / "file.txt") == "keep me");

  // A missing prompt file is an error naming it, and leaves no run directory behind.
  const fs::path fresh = s.dir.path() / "fresh";
  const CliResult no_prompts =
      s.run({"--out", fresh.string(), "--set", "prompts.files=[\"missing.jsonl\"]"});
  CHECK(no_prompts.exit_code == 1);
  CHECK_THAT(no_prompts.err, Catch::Contains("[prompts]") && Catch::Contains("missing.jsonl"));
  CHECK_FALSE(fs::exists(fresh));
}

TEST_CASE("run: the judge can be another, fixed model (the external-judge ablation)",
          "[e2e][run]") {
  RunSetup s;
  const fs::path judge = s.dir.path() / "judge_model";
  fs::copy(s.model, judge, fs::copy_options::recursive);
  std::string config = read_text(s.config);
  config += "\n[models.fixed]\ntype = \"torch\"\npath = \"" + judge.string() +
            "\"\n\n[roles]\njudge = \"fixed\"\n";
  mr::tests::write_text(s.config, config);
  const CliResult r = s.run();
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const json manifest = json::parse(read_text(s.out / "manifest.json"));
  CHECK(manifest["roles"]["judge"] == "fixed");
  CHECK(manifest["roles"]["actor"] == "policy");
  CHECK(manifest["models"].contains("fixed"));
  CHECK(manifest["models"].contains("policy"));
  // Only the policy is trained and reloaded; the fixed judge's files are untouched.
  CHECK(read_text(judge / "model.safetensors") == read_text(s.model / "model.safetensors"));
  CHECK_THAT(r.err, Catch::Contains("model 'policy' <- ") && !Catch::Contains("model 'fixed' <- "));
}

namespace {

/// The run config of RunSetup plus the fixture evaluator (tests/loader/fixtures/evaluator.cpp),
/// loaded through [plugins] libraries, with `extra` lines in its [evaluation] table.
std::string with_evaluator(const std::string& config, const std::string& extra = "") {
  return "[plugins]\nlibraries = [\"" + std::string(MR_FIXTURE_EVALUATOR) + "\"]\n" + config +
         "\n[evaluation]\ntype = \"fixture_eval\"\nprompts = 3\n" + extra;
}

}  // namespace

TEST_CASE("run: an [evaluation] plugin measures the seed models and every iteration's model",
          "[e2e][run][evaluation]") {
  RunSetup s;
  mr::tests::write_text(s.config, with_evaluator(read_text(s.config)));
  const CliResult r = s.run();
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const fs::path run = s.out;

  // Iteration 0: the seed models, before any training, in iter_0/eval.
  const json seed = json::parse(read_text(run / "iter_0" / "eval" / "metrics.json"));
  CHECK(seed["iteration"] == 0);
  CHECK(seed["evaluation"]["fixture/iteration"] == 0.0);
  CHECK(seed["evaluation"]["fixture/answers"] == 3.0);
  const json seed_models = json::parse(read_text(run / "iter_0" / "eval" / "models.json"));
  CHECK(seed_models["actor"] == s.model.string());
  CHECK(seed_models["calls"] == 1);
  CHECK(jsonl(run / "iter_0" / "eval" / "rows.jsonl").size() == 3);
  CHECK_THAT(r.err,
             Catch::Contains("iteration 0 (seed models) evaluation: actor/mean_length_chars"));

  for (int t = 1; t <= 2; ++t) {
    INFO("iteration " << t);
    const fs::path it = run / ("iter_" + std::to_string(t));
    const json metrics = json::parse(read_text(it / "metrics.json"));
    const json& evaluation = metrics["evaluation"];
    CHECK(evaluation.size() == 5);
    CHECK(evaluation["fixture/iteration"] == static_cast<double>(t));
    CHECK(evaluation["fixture/answers"] == 3.0);
    // The seed of (run seed 7, iteration t, stage 7 = evaluation).
    CHECK(evaluation["fixture/seed_mod"] ==
          static_cast<double>(mr::core::stage_seed(7, t, 7) % 1000000));
    CHECK(evaluation["actor/mean_length_chars"].is_number());
    const json models = json::parse(read_text(it / "eval" / "models.json"));
    // M_t is evaluated: the policy is reloaded after training, also after the last iteration.
    CHECK(models["actor"] == (it / "model").string());
    CHECK(models["judge"] == (it / "model").string());
    CHECK(models["seed"] == mr::core::stage_seed(7, t, 7));
    CHECK(models["calls"] == t + 1);  // one evaluator object for the whole run
    const json timings = json::parse(read_text(it / "timings.json"));
    CHECK(timings["stages"]["evaluation"].is_number());
  }
  CHECK_THAT(r.err, Catch::Contains("  evaluation         actor/mean_length_chars "));
  CHECK_THAT(r.err, Catch::Contains("model 'policy' <- " + (run / "iter_2" / "model").string()));
  const json manifest = json::parse(read_text(run / "manifest.json"));
  bool listed = false;
  for (const auto& p : manifest["plugins"])
    if (p["name"] == "fixture_eval") {
      listed = true;
      CHECK(p["kind"] == "evaluator");
      CHECK(p["sha256"].get<std::string>().size() == 64);
    }
  CHECK(listed);
  CHECK_THAT(
      read_text(run / "config.resolved.toml"),
      Catch::Contains("[evaluation]\ntype = \"fixture_eval\"\n") && Catch::Contains("nan_at = -1"));

  {
    // `eval` of an iteration's checkpoint reproduces the run's numbers.
    const fs::path out = s.dir.path() / "eval_1";
    const CliResult e =
        run_cli({"eval", s.config.string(), "--model", (run / "iter_1" / "model").string(),
                 "--iteration", "1", "--out", out.string()},
                s.dir.path());
    INFO(e.err);
    REQUIRE(e.exit_code == 0);
    const json printed = json::parse(e.out);
    CHECK(printed == json::parse(read_text(out / "metrics.json")));
    CHECK(printed["iteration"] == 1);
    CHECK(printed["evaluation"] ==
          json::parse(read_text(run / "iter_1" / "metrics.json"))["evaluation"]);
    CHECK(json::parse(read_text(out / "models.json"))["actor"] ==
          (run / "iter_1" / "model").string());
    // Without --out: ./eval; without --model: the config's model; without --iteration: 0.
    const CliResult plain = run_cli({"eval", s.config.string()}, s.dir.path());
    INFO(plain.err);
    REQUIRE(plain.exit_code == 0);
    CHECK(json::parse(read_text(s.dir.path() / "eval" / "metrics.json")) ==
          json::parse(read_text(run / "iter_0" / "eval" / "metrics.json")));
  }
  {
    // `compare` tabulates the run's evaluation per iteration.
    const CliResult c =
        run_cli({"compare", run.string(), "--metrics", "fixture/it", "--metrics", "fixture/ans"});
    INFO(c.err);
    REQUIRE(c.exit_code == 0);
    const std::string name = run.string();
    const std::string pad(name.size() - 3, ' ');
    CHECK(c.out == "run" + pad + "  iteration  fixture/answers  fixture/iteration\n" + name +
                       "  0          3                0\n" + name +
                       "  1          3                1\n" + name +
                       "  2          3                2\n");
  }
  {
    // A resume re-evaluates an unfinished iteration, not the recorded seed models.
    const json before = json::parse(read_text(run / "iter_2" / "metrics.json"));
    fs::remove(run / "iter_2" / "metrics.json");
    const CliResult resumed = s.run({"--resume"});
    INFO(resumed.err);
    REQUIRE(resumed.exit_code == 0);
    CHECK_THAT(resumed.err, !Catch::Contains("evaluating the seed models"));
    CHECK(json::parse(read_text(run / "iter_2" / "metrics.json")) == before);
    CHECK(json::parse(read_text(run / "iter_2" / "eval" / "models.json"))["calls"] == 1);
    CHECK(json::parse(read_text(run / "iter_0" / "eval" / "models.json"))["calls"] == 1);
  }
}

TEST_CASE("run: evaluator failures stop the run and name the evaluator and the metric",
          "[e2e][run][evaluation]") {
  RunSetup s;
  const std::string base = read_text(s.config);
  SECTION("a non-finite metric") {
    mr::tests::write_text(s.config, with_evaluator(base, "nan_at = 0\n"));
    const CliResult r = s.run();
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("evaluator 'fixture_eval' at iteration 0 reported a "
                                      "non-finite value for 'fixture/bad'"));
    CHECK_FALSE(fs::exists(s.out / "iter_0" / "eval" / "metrics.json"));
    CHECK_FALSE(fs::exists(s.out / "iter_1"));
  }
  SECTION("an exception from the evaluator") {
    mr::tests::write_text(s.config, with_evaluator(base, "fail_at = 0\n"));
    const CliResult r = s.run();
    CHECK(r.exit_code == 1);
    // The guard names the plugin, its library, the call and the stage; run.log keeps it too.
    const std::string expected = "evaluator 'fixture_eval' (library " +
                                 std::string(MR_FIXTURE_EVALUATOR) +
                                 "), evaluate() at stage evaluation, iteration 0: fixture_eval: "
                                 "asked to fail at iteration 0";
    CHECK_THAT(r.err, Catch::Contains(expected));
    CHECK_THAT(read_text(s.out / "run.log"), Catch::Contains("error: " + expected));
  }
  SECTION("an unknown [evaluation] key is a config error before anything runs") {
    mr::tests::write_text(s.config, with_evaluator(base, "promptz = 4\n"));
    const CliResult r = s.run();
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("[evaluation.promptz] unknown key 'promptz' for evaluator "
                                      "'fixture_eval'; did you mean 'prompts'?"));
    CHECK_FALSE(fs::exists(s.out));
  }
}
#endif
