// `metareward testbed bootstrap`: argument handling, the planned commands, the run through a
// recording HostContext::run_command, and (when the host supports run_command) the real thing
// at the tiny size through the built binary.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_runner.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/testbed/bootstrap.hpp"
#include "metareward/testbed/commands.hpp"
#include "metareward/testbed/judge_data.hpp"
#include "metareward/testbed/oracle.hpp"
#include "metareward/testbed/tasks.hpp"
#include "metareward/testbed/teacher.hpp"
#include "skip.hpp"
#include "test_host_context.hpp"

namespace fs = std::filesystem;
namespace tb = mr::plugins::testbed;
namespace sdk = mr::sdk;
using mr::test::TestHostContext;
using mr::tests::CliResult;
using mr::tests::read_text;
using mr::tests::run_cli;
using mr::tests::ScratchDir;
using Args = std::vector<std::string>;

namespace {

tb::BootstrapOptions parse(const Args& args) {
  tb::BootstrapOptions o;
  REQUIRE(tb::parse_bootstrap_args(args, o));
  return o;
}

std::string usage_error(const Args& args) {
  tb::BootstrapOptions o;
  try {
    tb::parse_bootstrap_args(args, o);
  } catch (const tb::UsageError& e) {
    return e.what();
  }
  return "(no error)";
}

/// Records the commands it is asked to run; answers each with the next status (0 when out).
class RecordingHost : public TestHostContext {
 public:
  explicit RecordingHost(std::vector<int> statuses = {})
      : TestHostContext(sdk::Config("testbed", {}, 1)), statuses_(std::move(statuses)) {}
  int run_command(const std::vector<std::string>& args) override {
    commands.push_back(args);
    if (statuses_.empty()) return 0;
    const int s = statuses_.front();
    statuses_.erase(statuses_.begin());
    return s;
  }
  std::vector<Args> commands;

 private:
  std::vector<int> statuses_;
};

}  // namespace

TEST_CASE("testbed bootstrap: options, presets and usage errors", "[testbed][bootstrap]") {
  SECTION("small is the default; tiny is a preset for tests") {
    const auto small = parse({"--out", "d"});
    CHECK(small.size == "small");
    CHECK(small.out == "d");
    CHECK(small.seed == 1);
    CHECK(small.model.hidden_size == 128);
    CHECK(small.data.sft_examples == 8000);
    CHECK(small.sft.judge_warmup_epochs == 4);
    CHECK(small.sft.epochs == 4);
    CHECK(small.sft.judge_warmup_learning_rate == 0.003);
    CHECK(small.sft.learning_rate == 0.003);
    CHECK(small.sft.batch_size == 16);
    const auto tiny = parse({"--out", "d", "--size", "tiny"});
    CHECK(tiny.size == "tiny");
    CHECK(tiny.model.hidden_size == 32);
    CHECK(tiny.model.layers == 2);
    CHECK(tiny.sft.epochs == 1);
    CHECK(tiny.data.sft_examples == 300);
    CHECK(tiny.sft.judge_warmup_epochs == 0);
  }
  SECTION("explicit flags override the preset whatever their order") {
    const auto o = parse({"--epochs",
                          "2",
                          "--hidden-size=48",
                          "--out",
                          "d",
                          "--size",
                          "tiny",
                          "--seed",
                          "9",
                          "--lr",
                          "0.002",
                          "--sft-examples",
                          "77",
                          "--p-correct",
                          "0.4",
                          "--sft-set",
                          "weight_decay=0.01",
                          "--sft-set",
                          "optimizer.adam_beta2=0.99",
                          "--threads",
                          "2",
                          "--force"});
    CHECK(o.size == "tiny");
    CHECK(o.sft.epochs == 2);
    CHECK(o.model.hidden_size == 48);
    CHECK(o.model.layers == 2);  // from the preset
    CHECK(o.seed == 9);
    CHECK(o.data.seed == 9);
    CHECK(o.sft.learning_rate == 0.002);
    CHECK(o.data.sft_examples == 77);
    CHECK(o.data.teacher.p_correct == 0.4);
    CHECK(o.sft.extra == Args{"weight_decay=0.01", "optimizer.adam_beta2=0.99"});
    CHECK(o.threads == 2);
    CHECK(o.force);
  }
  SECTION("--help") {
    tb::BootstrapOptions o;
    CHECK_FALSE(tb::parse_bootstrap_args({"--out", "d", "--help"}, o));
    CHECK_THAT(tb::bootstrap_usage(),
               Catch::Contains("--hidden-size N") && Catch::Contains("[tiny 32, small 128]") &&
                   Catch::Contains("--sft-set KEY=VALUE") && Catch::Contains("--p-correct X"));
  }
  SECTION("usage errors name the flag and the value") {
    CHECK_THAT(usage_error({}), Catch::Contains("--out DIR is required"));
    CHECK_THAT(usage_error({"--out", "d", "--size", "huge"}),
               Catch::Contains("--size must be tiny or small, got 'huge'"));
    CHECK_THAT(usage_error({"--out", "d", "--hidden-size", "100", "--heads", "8"}),
               Catch::Contains("multiple of --heads"));
    CHECK_THAT(usage_error({"--out", "d", "--heads", "4", "--kv-heads", "3"}),
               Catch::Contains("multiple of --kv-heads"));
    CHECK_THAT(usage_error({"--out", "d", "--hidden-size", "30", "--heads", "6"}),
               Catch::Contains("must be even"));
    CHECK_THAT(usage_error({"--out", "d", "--context", "100"}),
               Catch::Contains("--context (100) must be at least --max-length (256)"));
    CHECK_THAT(usage_error({"--out", "d", "--lr", "-1"}), Catch::Contains("--lr must be > 0"));
    CHECK_THAT(usage_error({"--out", "d", "--layers", "0"}),
               Catch::Contains("--layers must be in [1, 256], got 0"));
    CHECK_THAT(usage_error({"--out", "d", "--sft-set", "epochs"}),
               Catch::Contains("--sft-set expects KEY=VALUE, got 'epochs'"));
    CHECK_THAT(usage_error({"--out", "d", "--epochs", "1", "--epochs", "2"}),
               Catch::Contains("option '--epochs' cannot be specified more than once"));
    CHECK_THAT(usage_error({"--out", "d", "--force=yes"}),
               Catch::Contains("option '--force' does not take any arguments"));
    CHECK_THAT(usage_error({"--out", "d", "--judge-share", "0.9", "--meta-share", "0.2"}),
               Catch::Contains("--judge-share + --meta-share must be at most 1"));
    CHECK_THAT(usage_error({"--out", "d", "--bogus", "1"}),
               Catch::Contains("unrecognised option '--bogus'"));
    CHECK_THAT(usage_error({"--out", "d", "--judge-share", "0", "--meta-share", "0"}),
               Catch::Contains("--judge-warmup-epochs 4 needs judge or meta-judge rows"));
    CHECK(parse({"--out", "d", "--judge-share", "0", "--meta-share", "0", "--judge-warmup-epochs",
                 "0"})
              .sft.judge_warmup_epochs == 0);
  }
}

TEST_CASE("testbed bootstrap: the judge warm-up trains on the judge rows first",
          "[testbed][bootstrap]") {
  const tb::BootstrapPlan plan =
      tb::plan_bootstrap(parse({"--out", "/tmp/tb", "--judge-warmup-epochs", "3",
                                "--judge-warmup-lr", "0.01", "--lr", "0.002"}));
  REQUIRE(plan.commands.size() == 3);
  const Args& warmup = plan.commands[1];
  const Args& main = plan.commands[2];
  auto value_of = [](const Args& args, const std::string& flag) {
    const auto it = std::find(args.begin(), args.end(), flag);
    return it == args.end() || it + 1 == args.end() ? std::string() : *(it + 1);
  };
  CHECK(warmup[0] == "sft");
  CHECK(value_of(warmup, "--model") == "/tmp/tb/init_model");
  CHECK(value_of(warmup, "--data") == "/tmp/tb/data/judge_sft.jsonl");
  CHECK(value_of(warmup, "--out") == "/tmp/tb/judge_warmup_model");
  CHECK(value_of(warmup, "--metrics") == "/tmp/tb/judge_warmup_metrics.jsonl");
  CHECK(std::find(warmup.begin(), warmup.end(), "optimizer.epochs=3") != warmup.end());
  // The mixed SFT starts from the warmed-up model, with its own epochs.
  CHECK(value_of(main, "--model") == "/tmp/tb/judge_warmup_model");
  CHECK(value_of(main, "--data") == "/tmp/tb/data/sft.jsonl");
  CHECK(value_of(main, "--out") == "/tmp/tb/seed_model");
  CHECK(std::find(main.begin(), main.end(), "optimizer.epochs=4") != main.end());
  // The warm-up runs at its own, higher learning rate.
  CHECK(std::find(warmup.begin(), warmup.end(), "optimizer.learning_rate=0.01") != warmup.end());
  CHECK(std::find(main.begin(), main.end(), "optimizer.learning_rate=0.002") != main.end());
  // Every other optimizer setting is shared.
  auto settings = [](const Args& args) {
    Args out;
    for (std::size_t i = 0; i + 1 < args.size(); ++i)
      if (args[i] == "--set" && args[i + 1].rfind("optimizer.epochs=", 0) != 0 &&
          args[i + 1].rfind("optimizer.learning_rate=", 0) != 0)
        out.push_back(args[i + 1]);
    return out;
  };
  CHECK(settings(warmup) == settings(main));
  CHECK(plan.judge_warmup_model == "/tmp/tb/judge_warmup_model");
}

TEST_CASE("testbed bootstrap: the model config and the planned commands", "[testbed][bootstrap]") {
  auto o = parse({"--out", "/tmp/tb", "--size", "tiny", "--seed", "4", "--sft-set",
                  "weight_decay=0.01", "--lr", "1e-5"});
  const tb::BootstrapPlan plan = tb::plan_bootstrap(o);
  SECTION("a Llama config with the byte-level vocabulary") {
    const auto j = nlohmann::json::parse(plan.model_config_json);
    CHECK(j["architectures"] == nlohmann::json::array({"LlamaForCausalLM"}));
    CHECK(j["hidden_size"] == 32);
    CHECK(j["intermediate_size"] == 64);
    CHECK(j["num_hidden_layers"] == 2);
    CHECK(j["num_attention_heads"] == 4);
    CHECK(j["num_key_value_heads"] == 2);
    CHECK(j["vocab_size"] == 259);
    CHECK(j["max_position_embeddings"] == 320);
  }
  SECTION("init-model, then sft on the data with the optimizer settings") {
    REQUIRE(plan.commands.size() == 2);
    CHECK(plan.commands[0] == Args{"init-model", "--config", "/tmp/tb/model_config.json", "--out",
                                   "/tmp/tb/init_model", "--seed", "4"});
    CHECK(plan.commands[1] == Args{"sft",
                                   "--model",
                                   "/tmp/tb/init_model",
                                   "--data",
                                   "/tmp/tb/data/sft.jsonl",
                                   "--out",
                                   "/tmp/tb/seed_model",
                                   "--seed",
                                   "4",
                                   "--threads",
                                   "0",
                                   "--metrics",
                                   "/tmp/tb/sft_metrics.jsonl",
                                   "--set",
                                   "optimizer.epochs=1",
                                   "--set",
                                   "optimizer.learning_rate=1e-05",
                                   "--set",
                                   "optimizer.batch_size=16",
                                   "--set",
                                   "optimizer.max_length=256",
                                   "--set",
                                   "optimizer.warmup_ratio=0.05",
                                   "--set",
                                   "optimizer.micro_batch_size=16",
                                   "--set",
                                   "optimizer.weight_decay=0.01"});
  }
  SECTION("float settings stay TOML floats") {
    o.sft.learning_rate = 1.0;
    o.sft.warmup_ratio = 0.0;
    const auto p = tb::plan_bootstrap(o);
    CHECK(std::find(p.commands[1].begin(), p.commands[1].end(), "optimizer.learning_rate=1.0") !=
          p.commands[1].end());
    CHECK(std::find(p.commands[1].begin(), p.commands[1].end(), "optimizer.warmup_ratio=0.0") !=
          p.commands[1].end());
  }
}

TEST_CASE("testbed bootstrap: runs the plan through run_command", "[testbed][bootstrap]") {
  ScratchDir dir("tb_bootstrap_run");
  const fs::path out = dir.path() / "seed";
  const Args args = {"--out", out.string(), "--size", "tiny", "--sft-examples", "40"};
  std::ostringstream o, e;
  SECTION("data, model config, both commands, then bootstrap.json") {
    RecordingHost host;
    REQUIRE(tb::bootstrap_command(args, host, o, e) == 0);
    const auto plan = tb::plan_bootstrap(parse(args));
    CHECK(host.commands == plan.commands);
    for (const char* f : {"sft.jsonl", "judge_sft.jsonl", "train_prompts.jsonl",
                          "eval_prompts.jsonl", "manifest.json"})
      CHECK(fs::exists(out / "data" / f));
    CHECK(read_text(out / "model_config.json") == plan.model_config_json);
    const auto manifest = nlohmann::json::parse(read_text(out / "bootstrap.json"));
    CHECK(manifest["size"] == "tiny");
    CHECK(manifest["data"]["sft_examples"] == 40);
    REQUIRE(manifest["commands"].size() == 2);
    CHECK(manifest["commands"][1]["args"] == plan.commands[1]);
    CHECK(manifest["commands"][1]["exit_status"] == 0);
    CHECK_THAT(o.str(), Catch::Contains("running metareward init-model") &&
                            Catch::Contains("seed model in"));
    SECTION("a second bootstrap into the same directory is refused without --force") {
      RecordingHost again;
      std::ostringstream o2, e2;
      CHECK(tb::bootstrap_command(args, again, o2, e2) == 1);
      CHECK(again.commands.empty());
      CHECK_THAT(e2.str(),
                 Catch::Contains("already holds a bootstrap") && Catch::Contains("--force"));
      Args forced = args;
      forced.push_back("--force");
      CHECK(tb::bootstrap_command(forced, again, o2, e2) == 0);
      CHECK(again.commands.size() == 2);
    }
  }
  SECTION("a failing command stops the bootstrap before bootstrap.json") {
    RecordingHost host({0, 3});
    CHECK(tb::bootstrap_command(args, host, o, e) == 1);
    CHECK(host.commands.size() == 2);
    CHECK_FALSE(fs::exists(out / "bootstrap.json"));
    CHECK_THAT(e.str(),
               Catch::Contains("metareward sft") && Catch::Contains("failed with exit status 3"));
    RecordingHost first_fails({1});
    CHECK(tb::bootstrap_command(args, first_fails, o, e) == 1);
    CHECK(first_fails.commands.size() == 1);
  }
  SECTION("a usage error runs nothing and exits 2 with the usage") {
    RecordingHost host;
    CHECK(tb::bootstrap_command({"--size", "tiny"}, host, o, e) == 2);
    CHECK(host.commands.empty());
    CHECK_THAT(e.str(), Catch::Contains("--out DIR is required") &&
                            Catch::Contains("usage: metareward testbed bootstrap"));
    CHECK_FALSE(fs::exists(out));
  }
  SECTION("a host without run_command fails with the SDK's error") {
    TestHostContext plain(sdk::Config("testbed", {}, 1));
    CHECK_THROWS_AS(tb::bootstrap_command(args, plain, o, e), sdk::PluginError);
  }
}

TEST_CASE("testbed bootstrap: the tiny seed model through the built binary",
          "[testbed][bootstrap][e2e]") {
#ifndef MR_TESTBED_HAVE_TORCH_BACKEND
  MR_SKIP("this build has no torch backend / optimizers (init-model, sft)");
#endif
  ScratchDir dir("tb_bootstrap_e2e");
  const fs::path out = dir.path() / "seed";
  const CliResult r = run_cli({"--plugin-dir", MR_TESTBED_PLUGIN_DIR, "testbed", "bootstrap",
                               "--out", out.string(), "--size", "tiny", "--threads", "1"});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json"})
    CHECK(fs::exists(out / "seed_model" / f));
  const auto config = nlohmann::json::parse(read_text(out / "seed_model" / "config.json"));
  CHECK(config["hidden_size"] == 32);
  CHECK(config["vocab_size"] == 259);
  const auto manifest = nlohmann::json::parse(read_text(out / "bootstrap.json"));
  REQUIRE(manifest["commands"].size() == 2);
  for (const auto& c : manifest["commands"]) CHECK(c["exit_status"] == 0);
  // The SFT step trained: its metrics file has steps with a finite loss.
  const std::string metrics = read_text(out / "sft_metrics.jsonl");
  CHECK_THAT(metrics, Catch::Contains("\"loss\""));

  SECTION("the recipe config runs one reduced iteration on it, evaluated by the testbed") {
    const fs::path run = dir.path() / "run";
    auto quoted = [](const fs::path& p) { return "\"" + p.string() + "\""; };
    const CliResult r =
        run_cli({"--plugin-dir",
                 MR_TESTBED_PLUGIN_DIR,
                 "run",
                 (fs::path(MR_SOURCE_DIR) / "configs" / "testbed" / "meta_rewarding.toml").string(),
                 "--out",
                 run.string(),
                 "--iterations",
                 "1",
                 "--set",
                 "prompts.files=[" + quoted(out / "data" / "train_prompts.jsonl") + "]",
                 "--set",
                 "prompts.per_iteration=8",
                 "--set",
                 "models.policy.path=" + quoted(out / "seed_model"),
                 "--set",
                 "evaluation.prompts=" + quoted(out / "data" / "eval_prompts.jsonl"),
                 "--set",
                 "evaluation.max_prompts=10",
                 "--set",
                 "evaluation.judge_pairs=6",
                 "--set",
                 "run.threads=1"});
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(read_text(run / "iter_0" / "eval" / "answers.jsonl").size() > 0);
    for (const fs::path& file :
         {run / "iter_0" / "eval" / "metrics.json", run / "iter_1" / "metrics.json"}) {
      INFO(file.string());
      const auto doc = nlohmann::json::parse(read_text(file));
      const auto& evaluation = doc["evaluation"];
      // The tiny model writes no parseable judgment, so only these are certain to be there.
      for (const char* key :
           {"actor/oracle_score", "actor/exact_accuracy", "actor/correct_accuracy",
            "actor/mean_length_chars", "actor/win_rate_vs_seed", "judge/parse_failure_rate",
            "meta_judge/parse_failure_rate"})
        CHECK(evaluation.contains(key));
    }
  }
}

namespace {

/// Answers `generate` by writing, for every prompt of its --input, the completions `answer`
/// gives; records every command like RecordingHost.
class FakeGenerateHost : public RecordingHost {
 public:
  using Answer = std::function<std::vector<std::string>(const tb::TaskInstance&)>;
  explicit FakeGenerateHost(Answer answer) : answer_(std::move(answer)) {}
  int run_command(const std::vector<std::string>& args) override {
    RecordingHost::run_command(args);
    if (args.empty() || args[0] != "generate") return 0;
    auto value = [&](const std::string& flag) {
      const auto it = std::find(args.begin(), args.end(), flag);
      REQUIRE(it + 1 < args.end());
      return *(it + 1);
    };
    std::ifstream in(value("--input"));
    std::ofstream out(value("--output"));
    for (std::string line; std::getline(in, line);) {
      const auto row = nlohmann::json::parse(line);
      const std::string prompt = row["prompt"];
      const auto task = tb::parse_prompt(prompt);
      REQUIRE(task);
      nlohmann::json completions = nlohmann::json::array();
      for (const auto& t : answer_(*task)) completions.push_back({{"text", t}});
      out << nlohmann::json{{"id", row["id"]},
                            {"messages", {{{"role", "user"}, {"content", prompt}}}},
                            {"completions", completions}}
                 .dump()
          << "\n";
    }
    return 0;
  }

 private:
  Answer answer_;
};

}  // namespace

TEST_CASE("testbed bootstrap: the own-sample stage plans generate and sft after the instruct model",
          "[testbed][bootstrap][own_samples]") {
  const auto o = parse({"--out", "/tmp/tb", "--size", "tiny", "--own-sample-prompts", "30",
                        "--own-samples", "3", "--own-epochs", "5", "--own-lr", "0.002"});
  const auto plan = tb::plan_bootstrap(o);
  REQUIRE(plan.commands.size() == 2);
  // The instruction SFT now writes the instruct model; the stage's SFT writes the seed model.
  CHECK(plan.commands[1][6] == "/tmp/tb/instruct_model");
  CHECK(plan.instruct_model == "/tmp/tb/instruct_model");
  CHECK(plan.own_generate == Args{"generate", "--model", "/tmp/tb/instruct_model", "--input",
                                  "/tmp/tb/data/own_sample_prompts.jsonl", "--output",
                                  "/tmp/tb/data/own_samples.jsonl", "--n", "3", "--temperature",
                                  "0.8", "--top-p", "0.95", "--max-new-tokens", "96", "--seed",
                                  "1", "--threads", "0", "--batch-size", "64"});
  REQUIRE(plan.own_sft.size() > 8);
  CHECK(Args(plan.own_sft.begin(), plan.own_sft.begin() + 7) ==
        Args{"sft", "--model", "/tmp/tb/instruct_model", "--data",
             "/tmp/tb/data/own_judge_sft.jsonl", "--out", "/tmp/tb/seed_model"});
  CHECK(std::find(plan.own_sft.begin(), plan.own_sft.end(), "optimizer.epochs=5") !=
        plan.own_sft.end());
  CHECK(std::find(plan.own_sft.begin(), plan.own_sft.end(), "optimizer.learning_rate=0.002") !=
        plan.own_sft.end());
  SECTION("--own-from starts from an existing model: nothing runs before the stage") {
    const auto from = tb::plan_bootstrap(parse({"--out", "/tmp/tb", "--size", "tiny",
                                                "--own-sample-prompts", "30", "--own-from",
                                                "/models/seed"}));
    CHECK(from.commands.empty());
    CHECK(from.own_generate[2] == "/models/seed");
    CHECK(from.own_sft[2] == "/models/seed");
  }
  SECTION("off by default: the plain two commands") {
    const auto plain = tb::plan_bootstrap(parse({"--out", "/tmp/tb", "--size", "tiny"}));
    CHECK(plain.own_generate.empty());
    CHECK(plain.own_sft.empty());
    CHECK(plain.commands.back()[6] == "/tmp/tb/seed_model");
  }
  SECTION("usage errors") {
    CHECK_THAT(usage_error({"--out", "/tmp/tb", "--own-from", "/m"}),
               Catch::Contains("--own-sample-prompts"));
    CHECK_THAT(usage_error({"--out", "/tmp/tb", "--size", "tiny", "--own-sample-prompts", "201"}),
               Catch::Contains("exceeds --train-prompts (200)"));
    CHECK_THAT(usage_error({"--out", "/tmp/tb", "--own-meta-share", "2"}),
               Catch::Contains("--own-meta-share"));
  }
}

TEST_CASE("testbed bootstrap: the own-sample stage grades what generate wrote into judge rows",
          "[testbed][bootstrap][own_samples]") {
  ScratchDir dir("tb_bootstrap_own");
  const fs::path out = dir.path() / "seed";
  const Args args = {"--out",          out.string(), "--size",    "tiny", "--sft-examples",
                     "40",             "--own-sample-prompts",   "10",   "--own-samples",
                     "2",              "--judge-noise", "0",      "--length-bias", "0"};
  // One right and one wrong sample per prompt (the teacher's answer and its mistake).
  FakeGenerateHost host([](const tb::TaskInstance& task) {
    tb::Rng rng(1);
    return std::vector<std::string>{task.answer, tb::wrong_answer(task, rng)};
  });
  std::ostringstream o, e;
  REQUIRE(tb::bootstrap_command(args, host, o, e) == 0);
  const auto plan = tb::plan_bootstrap(parse(args));
  REQUIRE(host.commands.size() == 4);
  CHECK(host.commands[2] == plan.own_generate);
  CHECK(host.commands[3] == plan.own_sft);
  CHECK(read_text(out / "data" / "own_sample_prompts.jsonl").size() > 0);
  const auto manifest = nlohmann::json::parse(read_text(out / "bootstrap.json"));
  const auto& st = manifest["own_samples"]["stats"];
  CHECK(st["prompts"] == 10);
  CHECK(st["samples"] == 20);
  CHECK(st["correct"] == 10);
  CHECK(st["accuracy"] == Approx(0.5));
  CHECK(st["prompts_mixed"] == 10);
  CHECK(st["dropped"] == 0);
  CHECK(manifest["commands"].size() == 4);
  CHECK_THAT(o.str(), Catch::Contains("50.0 % correct"));
  // Every judge row states the oracle's score of its response (no noise, no length bias).
  int judge_rows = 0;
  std::ifstream rows(out / "data" / "own_judge_sft.jsonl");
  for (std::string line; std::getline(rows, line);) {
    const auto row = nlohmann::json::parse(line);
    if (row["kind"] != "judge") continue;
    ++judge_rows;
    const std::string prompt = row["messages"][0]["content"];
    const auto task_at = prompt.find("Task: "), answer_at = prompt.find("\nAnswer: ");
    REQUIRE(task_at != std::string::npos);
    REQUIRE(answer_at != std::string::npos);
    const auto task = tb::parse_prompt(prompt.substr(task_at + 6, answer_at - task_at - 6));
    REQUIRE(task);
    const std::string response =
        prompt.substr(answer_at + 9, prompt.size() - answer_at - 10);  // up to the final \n
    CHECK(row["messages"][1]["content"] ==
          tb::judgment_text(tb::oracle_score(*task, response).score));
  }
  CHECK(judge_rows == 20);
  CHECK(judge_rows == st["judge_rows"]);

  SECTION("a generate that wrote nothing gradable fails before the stage's sft") {
    FakeGenerateHost empty([](const tb::TaskInstance&) { return std::vector<std::string>{}; });
    Args forced = args;
    forced.push_back("--force");
    std::ostringstream o2, e2;
    CHECK(tb::bootstrap_command(forced, empty, o2, e2) == 1);
    CHECK(empty.commands.size() == 3);
    CHECK_THAT(e2.str(), Catch::Contains("holds no gradable sample"));
    CHECK_FALSE(fs::exists(out / "bootstrap.json"));
  }
}

TEST_CASE("testbed bootstrap: a reduced seed stage on the tiny model's own samples",
          "[testbed][bootstrap][own_samples][e2e]") {
#ifndef MR_TESTBED_HAVE_TORCH_BACKEND
  MR_SKIP("this build has no torch backend / optimizers (init-model, sft)");
#endif
  ScratchDir dir("tb_bootstrap_own_e2e");
  const fs::path out = dir.path() / "seed";
  const CliResult r = run_cli({"--plugin-dir", MR_TESTBED_PLUGIN_DIR, "testbed", "bootstrap",
                               "--out", out.string(), "--size", "tiny", "--threads", "1",
                               "--own-sample-prompts", "12", "--own-samples", "2",
                               "--own-max-new-tokens", "24"});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  for (const char* model : {"instruct_model", "seed_model"})
    CHECK(fs::exists(out / model / "model.safetensors"));
  const auto manifest = nlohmann::json::parse(read_text(out / "bootstrap.json"));
  REQUIRE(manifest["commands"].size() == 4);
  for (const auto& c : manifest["commands"]) CHECK(c["exit_status"] == 0);
  const auto& st = manifest["own_samples"]["stats"];
  CHECK(st["prompts"] == 12);
  CHECK(st["samples"] == 24);
  std::int64_t lines = 0;
  std::ifstream rows(out / "data" / "own_judge_sft.jsonl");
  for (std::string line; std::getline(rows, line);) ++lines;
  CHECK(lines == st["judge_rows"].get<std::int64_t>() + st["meta_rows"].get<std::int64_t>() +
                     st["replay_rows"].get<std::int64_t>());
  CHECK_THAT(read_text(out / "own_judge_sft_metrics.jsonl"), Catch::Contains("\"loss\""));
  // The stage trained the instruct model further: the seed differs from it.
  CHECK(read_text(out / "seed_model" / "model.safetensors") !=
        read_text(out / "instruct_model" / "model.safetensors"));

  SECTION("--own-from adds the stage to an existing model without retraining it") {
    const fs::path again = dir.path() / "again";
    const CliResult r2 = run_cli(
        {"--plugin-dir", MR_TESTBED_PLUGIN_DIR, "testbed", "bootstrap", "--out", again.string(),
         "--size", "tiny", "--threads", "1", "--own-sample-prompts", "12", "--own-samples", "2",
         "--own-max-new-tokens", "24", "--own-from", (out / "instruct_model").string()});
    INFO("stderr: " << r2.err);
    REQUIRE(r2.exit_code == 0);
    const auto m2 = nlohmann::json::parse(read_text(again / "bootstrap.json"));
    CHECK(m2["commands"].size() == 2);  // generate and sft only
    CHECK_FALSE(fs::exists(again / "init_model"));
    // Same data, same instruct model, same seed: the same samples.
    CHECK(read_text(again / "data" / "own_samples.jsonl") ==
          read_text(out / "data" / "own_samples.jsonl"));
  }
}
