// End to end through the real `metareward` binary and the built plugin libraries: init-model,
// generate and train-dpo on a tiny model.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "backend_test_util.hpp"

using json = nlohmann::json;

namespace {

int run(const std::string& command) {
  const int status = std::system((command + " >/dev/null 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::vector<json> read_jsonl(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<json> rows;
  for (std::string line; std::getline(in, line);) rows.push_back(json::parse(line));
  return rows;
}

/// `dir`/model written by `init-model` and `dir`/pairs.jsonl (4 pairs); returns the model path.
std::string init_model_and_pairs(const std::filesystem::path& dir, const std::string& cli) {
  std::ofstream(dir / "config.json") << mr::test::tiny_backend_config();
  const std::string model = (dir / "model").string();
  REQUIRE(run(cli + " init-model --config " + (dir / "config.json").string() + " --out " + model +
              " --seed 5") == 0);
  std::ofstream pairs(dir / "pairs.jsonl");
  for (int i = 0; i < 4; ++i)
    pairs << "{\"prompt\": \"Q" << i << "\", \"chosen\": \"good " << i
          << "\", \"rejected\": \"bad\"}\n";
  return model;
}

}  // namespace

TEST_CASE("torch backend e2e: init-model, generate and train-dpo with the CLI",
          "[torch_backend][e2e]") {
  mr::test::BackendTempDir tmp;
  const std::string cli = MR_CLI_PATH;
  const auto dir = tmp.path();
  const std::string model = init_model_and_pairs(dir, cli);

  std::ofstream(dir / "prompts.jsonl") << "{\"prompt\": \"Hello\"}\n"
                                       << "{\"messages\": [{\"role\": \"user\", \"content\": "
                                          "\"Hi\"}]}\n";
  const auto generated = dir / "out.jsonl";
  REQUIRE(run(cli + " generate --model " + model + " --input " + (dir / "prompts.jsonl").string() +
              " --output " + generated.string() + " --n 2 --max-new-tokens 6 --seed 3") == 0);
  const auto rows = read_jsonl(generated);
  REQUIRE(rows.size() == 2);
  for (const auto& row : rows) {
    REQUIRE(row["completions"].size() == 2);
    CHECK(row["completions"][0]["tokens"].get<int>() <= 6);
  }

  const auto trained = dir / "trained";
  REQUIRE(run(cli + " train-dpo --model " + model + " --pairs " + (dir / "pairs.jsonl").string() +
              " --out " + trained.string() + " --metrics " + (dir / "m.jsonl").string() +
              " --set optimizer.batch_size=2 --set optimizer.micro_batch_size=1") == 0);
  CHECK(std::filesystem::exists(trained / "model.safetensors"));
  CHECK(std::filesystem::exists(trained / "tokenizer.json"));
  const auto metrics = read_jsonl(dir / "m.jsonl");
  REQUIRE(metrics.size() == 2);
  CHECK(metrics[1]["step"] == 2);
  // The trained checkpoint loads and generates.
  REQUIRE(run(cli + " generate --model " + trained.string() + " --input " +
              (dir / "prompts.jsonl").string() + " --output " + (dir / "t.jsonl").string() +
              " --max-new-tokens 3") == 0);
  CHECK(read_jsonl(dir / "t.jsonl").size() == 2);
}

TEST_CASE("torch backend e2e: LoRA with train-dpo, merge-lora and --adapter",
          "[torch_backend][e2e][lora]") {
  mr::test::BackendTempDir tmp;
  const std::string cli = MR_CLI_PATH;
  const auto dir = tmp.path();
  const std::string model = init_model_and_pairs(dir, cli);
  const auto trained = dir / "trained";
  const auto adapter = dir / "adapter";
  REQUIRE(
      run(cli + " train-dpo --model " + model + " --pairs " + (dir / "pairs.jsonl").string() +
          " --out " + trained.string() + " --adapter-out " + adapter.string() +
          " --set optimizer.lora=true --set optimizer.lora_r=4 --set optimizer.learning_rate=1e-2"
          " --set optimizer.batch_size=2 --set optimizer.micro_batch_size=1") == 0);
  REQUIRE(std::filesystem::exists(adapter / "adapter_config.json"));
  REQUIRE(std::filesystem::exists(adapter / "adapter_model.safetensors"));
  REQUIRE(std::filesystem::exists(trained / "model.safetensors"));
  const auto merged = dir / "merged";
  REQUIRE(run(cli + " merge-lora --model " + model + " --adapter " + adapter.string() + " --out " +
              merged.string()) == 0);

  // The trained model, the merge-lora output and the base with --adapter score alike, and not
  // like the base.
  std::ofstream(dir / "c.jsonl") << "{\"prompt\": \"Q1\", \"completion\": \"good 1\"}\n";
  auto score = [&](const std::string& args, const std::string& name) {
    const auto out = dir / (name + ".jsonl");
    REQUIRE(run(cli + " score " + args + " --input " + (dir / "c.jsonl").string() + " --output " +
                out.string()) == 0);
    return read_jsonl(out).at(0)["logprob_sum"].get<double>();
  };
  const double base = score("--model " + model, "base");
  const double t = score("--model " + trained.string(), "trained");
  const double m = score("--model " + merged.string(), "merged");
  const double a = score("--model " + model + " --adapter " + adapter.string(), "adapter");
  CHECK(t > base + 1e-3);  // DPO raised the chosen response.
  CHECK(m == Approx(t).margin(1e-4));
  CHECK(a == Approx(t).margin(1e-4));
  // A directory that is no adapter is an error, not a silent base model.
  CHECK(run(cli + " score --model " + model + " --adapter " + model + " --input " +
            (dir / "c.jsonl").string()) != 0);
}
