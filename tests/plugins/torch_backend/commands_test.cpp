// The torch backend library's commands (init-model, tokenize) through their command functions,
// its registration, and the sft optimizer on a tiny model.
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "backend_test_util.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/sdk/trainable_model.hpp"
#include "metareward/tokenizer/tokenizer.hpp"
#include "sft_optimizer.hpp"

namespace sdk = mr::sdk;
namespace tbp = mr::plugins::torch_backend;
using json = nlohmann::json;
using mr::test::BackendTempDir;

namespace {

int run_init(const std::vector<std::string>& args,
             std::string* err_text = nullptr,
             std::string* out_text = nullptr) {
  std::ostringstream out, err;
  const int rc = tbp::init_model_command(args, out, err);
  if (err_text) *err_text = err.str();
  if (out_text) *out_text = out.str();
  return rc;
}

/// Records descriptors and commands like the host's registrar.
class CommandCollector : public sdk::Registrar {
 public:
  void add(sdk::PluginDescriptor d) override { plugins.push_back(std::move(d)); }
  void add_command(sdk::CommandDescriptor c) override { commands.push_back(std::move(c)); }
  std::vector<sdk::PluginDescriptor> plugins;
  std::vector<sdk::CommandDescriptor> commands;
};

}  // namespace

TEST_CASE("torch backend: registration", "[torch_backend][commands]") {
  CommandCollector c;
  tbp::register_torch_backend_plugins(c);
  REQUIRE(c.plugins.size() == 1);
  CHECK(c.plugins[0].name == "torch");
  CHECK(c.plugins[0].kind() == sdk::PluginKind::ModelBackend);
  REQUIRE(c.commands.size() == 3);
  CHECK(c.commands[0].name == "init-model");
  CHECK(c.commands[1].name == "merge-lora");
  CHECK(c.commands[2].name == "tokenize");
  for (const auto& command : c.commands) {
    CHECK(command.run);
    CHECK(command.subcommands.empty());
  }
}

TEST_CASE("torch backend: init-model", "[torch_backend][commands]") {
  BackendTempDir tmp;
  const auto config = tmp.path() / "config.json";
  std::ofstream(config) << mr::test::tiny_backend_config();
  SECTION("without --tokenizer: a byte-level tokenizer, ids in the config, plain template") {
    const auto out = tmp.path() / "m";
    REQUIRE(run_init({"--config", config.string(), "--out", out.string(), "--seed", "3"}) == 0);
    for (const char* f : {"config.json", "model.safetensors", "tokenizer.json",
                          "tokenizer_config.json", "generation_config.json"})
      CHECK(std::filesystem::exists(out / f));
    const auto tokenizer = mr::tokenizer::Tokenizer::from_directory(out);
    CHECK(tokenizer.vocab_size() == 259);
    CHECK(tokenizer.config().chat_template == std::string(tbp::kPlainChatTemplateJinja));
    const json cfg = json::parse(std::ifstream(out / "config.json"));
    CHECK(cfg["eos_token_id"] == *tokenizer.eos_id());
    CHECK(cfg["bos_token_id"] == *tokenizer.bos_id());
    const json gen = json::parse(std::ifstream(out / "generation_config.json"));
    CHECK(gen["eos_token_id"] == *tokenizer.eos_id());
    // Immediately usable, and the seed decides the weights.
    auto b = mr::test::make_backend(out);
    CHECK(b->generate({mr::test::request("x", "hi", 1, 0.0, 4)})[0].error.empty());
    const auto again = tmp.path() / "m2";
    REQUIRE(run_init({"--config", config.string(), "--out", again.string(), "--seed=3"}) == 0);
    auto read = [](const std::filesystem::path& p) {
      std::ifstream in(p, std::ios::binary);
      return std::string(std::istreambuf_iterator<char>(in), {});
    };
    CHECK(read(out / "model.safetensors") == read(again / "model.safetensors"));
    const auto other = tmp.path() / "m3";
    REQUIRE(run_init({"--config", config.string(), "--out", other.string(), "--seed", "4"}) == 0);
    CHECK(read(out / "model.safetensors") != read(other / "model.safetensors"));
  }
  SECTION("--tokenizer copies an existing tokenizer") {
    const auto first = tmp.path() / "first";
    REQUIRE(run_init({"--config", config.string(), "--out", first.string()}) == 0);
    const auto out = tmp.path() / "second";
    REQUIRE(run_init({"--config", config.string(), "--out", out.string(), "--tokenizer",
                      first.string(), "--dtype", "bfloat16"}) == 0);
    CHECK(std::filesystem::exists(out / "tokenizer.json"));
    const json cfg = json::parse(std::ifstream(out / "config.json"));
    CHECK(cfg["torch_dtype"] == "bfloat16");
  }
  SECTION("a vocab_size that does not cover the tokenizer is a clear error") {
    std::string small = mr::test::tiny_backend_config();
    small.replace(small.find("\"vocab_size\": 300"), 17, "\"vocab_size\": 200");
    std::ofstream(config) << small;
    try {
      run_init({"--config", config.string(), "--out", (tmp.path() / "x").string()});
      FAIL("expected a ConfigError");
    } catch (const sdk::ConfigError& e) {
      CHECK(std::string(e.what()).find("vocab_size 200") != std::string::npos);
      CHECK(std::string(e.what()).find("259") != std::string::npos);
    }
    CHECK_FALSE(std::filesystem::exists(tmp.path() / "x"));
  }
  SECTION("usage errors exit 2 with the message and the usage") {
    struct Case {
      std::vector<std::string> args;
      std::string message;
    };
    const std::string c = config.string();
    const std::string o = (tmp.path() / "o").string();
    const std::vector<Case> cases = {
        {{"--config", c}, "init-model: --out DIR is required"},
        {{"--out", o}, "init-model: --config CONFIG.json is required"},
        {{"--bogus", "1"}, "init-model: unrecognised option '--bogus'"},
        {{"--config", c, "--out", o, "--seed", "-1"},
         "init-model: --seed must be a non-negative integer, got '-1'"},
        {{"--config", c, "--out", o, "--seed=1x"},
         "init-model: --seed must be a non-negative integer, got '1x'"},
        {{"--config", c, "--out", o, "--dtype", "int8"},
         "init-model: --dtype must be float32 or bfloat16, got 'int8'"},
        {{"--config"}, "init-model: the required argument for option '--config' is missing"},
        {{"--config", c, "--out", o, "--out", o},
         "init-model: option '--out' cannot be specified more than once"},
        {{"--config", c, "--out", o, "stray"}, "init-model: unexpected argument 'stray'"},
    };
    for (const auto& k : cases) {
      std::string shown;
      for (const auto& a : k.args) shown += " " + a;
      INFO("args:" << shown);
      std::string err;
      CHECK(run_init(k.args, &err) == 2);
      CHECK_THAT(err, Catch::StartsWith(k.message) &&
                          Catch::Contains("usage: metareward init-model --config CONFIG.json"));
    }
    CHECK_FALSE(std::filesystem::exists(tmp.path() / "o"));  // nothing written
  }
  SECTION("--help prints the usage with the options and exits 0") {
    std::string err, out;
    CHECK(run_init({"--help"}, &err, &out) == 0);
    CHECK(err.empty());
    CHECK_THAT(out, Catch::Contains("usage: metareward init-model") &&
                        Catch::Contains("--config CONFIG.json") && Catch::Contains("--out DIR") &&
                        Catch::Contains("--seed S") && Catch::Contains("--tokenizer DIR") &&
                        Catch::Contains("[float32]"));
    CHECK(run_init({"-h"}, &err, &out) == 0);
  }
}

TEST_CASE("torch backend: tokenize", "[torch_backend][commands]") {
  BackendTempDir tmp;
  const auto model = tmp.path() / "m";
  REQUIRE(mr::test::write_tiny_model(model) == 0);
  std::istringstream in("{\"text\": \"ab\"}\nnot json\n\n{\"text\": 3}\n{\"text\": \"<|eos|>\"}\n");
  std::ostringstream out, err;
  // Finished with bad rows (reported inline): exit status 4 (docs/exit_codes.md).
  REQUIRE(tbp::tokenize_command({"--tokenizer", model.string()}, in, out, err) == 4);
  std::istringstream lines(out.str());
  std::vector<json> rows;
  for (std::string line; std::getline(lines, line);) rows.push_back(json::parse(line));
  REQUIRE(rows.size() == 4);
  CHECK(rows[0]["text"] == "ab");
  CHECK(rows[0]["ids"] == json::array({97, 98}));
  CHECK(rows[1]["line"] == 2);
  CHECK(rows[1].contains("error"));
  CHECK(rows[2]["line"] == 4);
  CHECK(rows[3]["ids"] == json::array({257}));
  CHECK(err.str().find("2 bad row(s)") != std::string::npos);
  std::ostringstream o2, e2;
  std::istringstream empty;
  CHECK(tbp::tokenize_command({}, empty, o2, e2) == 2);
  CHECK_THAT(e2.str(), Catch::StartsWith("tokenize: --tokenizer DIR is required") &&
                           Catch::Contains("usage: metareward tokenize --tokenizer DIR"));
  std::ostringstream o3, e3;
  CHECK(tbp::tokenize_command({"--tokenizer", model.string(), "--extra"}, empty, o3, e3) == 2);
  CHECK_THAT(e3.str(), Catch::StartsWith("tokenize: unrecognised option '--extra'"));
  CHECK(o3.str().empty());
  std::ostringstream o4, e4;
  CHECK(tbp::tokenize_command({"--help"}, empty, o4, e4) == 0);
  CHECK_THAT(o4.str(), Catch::Contains("--tokenizer DIR"));
  // --flag=value works as --flag value.
  std::istringstream one("{\"text\": \"ab\"}\n");
  std::ostringstream o5, e5;
  REQUIRE(tbp::tokenize_command({"--tokenizer=" + model.string()}, one, o5, e5) == 0);
  CHECK(json::parse(o5.str())["ids"] == json::array({97, 98}));
}

TEST_CASE("sft optimizer: trains the chosen responses of a tiny model", "[torch_backend][sft]") {
  BackendTempDir tmp;
  const auto model_dir = tmp.path() / "m";
  REQUIRE(mr::test::write_tiny_model(model_dir) == 0);
  auto backend = mr::test::make_backend(model_dir);

  CommandCollector c;
  mr::plugins::optimizers::register_sft_plugin(c);
  REQUIRE(c.plugins.size() == 1);
  const auto& d = c.plugins[0];
  CHECK(d.name == "sft");
  CHECK(d.kind() == sdk::PluginKind::Optimizer);
  sdk::Table overrides = {
      {"learning_rate", sdk::Value(0.01)}, {"epochs", sdk::Value(4)},
      {"batch_size", sdk::Value(2)},       {"micro_batch_size", sdk::Value(1)},
      {"warmup_ratio", sdk::Value(0.0)},   {"lr_schedule", sdk::Value("constant")}};
  mr::test::TestHostContext ctx(mr::test::config_from_schema(d.schema, overrides, 1, "optimizer"));
  auto optimizer = std::get<sdk::Factory<sdk::Optimizer>>(d.factory)(ctx);

  std::vector<sdk::PreferencePair> pairs(2);
  pairs[0].id = "p0";
  pairs[0].prompt = {{"user", "Capital of France?"}};
  pairs[0].chosen = "Paris";
  pairs[0].rejected = "ignored";
  pairs[1].id = "p1";
  pairs[1].prompt = {{"user", "2+2?"}};
  pairs[1].chosen = "4";
  const auto before = backend->score({{"a", pairs[0].prompt, "Paris"}})[0].logprob_sum;
  sdk::TrainingJob job;
  job.output_dir = tmp.path() / "out";
  job.state_dir = tmp.path() / "state";
  std::vector<double> losses;
  job.on_step = [&](const sdk::StepMetrics& m) { losses.push_back(m.values.at("loss")); };
  const auto summary = optimizer->train(*backend->trainable(), pairs, job);
  CHECK(summary.steps == 4);
  REQUIRE(losses.size() == 4);
  CHECK(losses.back() < losses.front());
  const auto after = backend->score({{"a", pairs[0].prompt, "Paris"}})[0].logprob_sum;
  CHECK(after > before + 1.0);
  // The saved model is the trained one.
  auto reloaded = mr::test::make_backend(job.output_dir);
  CHECK(reloaded->score({{"a", pairs[0].prompt, "Paris"}})[0].logprob_sum ==
        Approx(after).margin(1e-3));
}
