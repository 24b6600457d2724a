// End-to-end: the model commands a user runs, on a tiny checkpoint written by `init-model`:
// generate (deterministic, batching-invariant), score, train-dpo and sft from the CLI.
#include <catch2/catch.hpp>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "jsonl_rows.hpp"
#include "tiny_model.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using mr::tests::CliResult;
using mr::tests::read_text;
using mr::tests::run_cli;
using mr::tests::ScratchDir;
using mr::tests::tiny_model;
using mr::tests::write_text;

#ifdef MR_E2E_HAVE_TORCH_BACKEND
namespace {

std::vector<json> jsonl(const std::string& text) {
  return mr::tests::jsonl_rows(text);
}

}  // namespace

TEST_CASE("model commands: generate is deterministic and independent of batching", "[e2e][model]") {
  ScratchDir dir("generate");
  const fs::path model = tiny_model(dir);
  const fs::path prompts = dir.write("prompts.jsonl",
                                     "{\"id\": \"a\", \"prompt\": \"Sort 3 1 2\"}\n"
                                     "not json\n"
                                     "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n"
                                     "{\"instruction\": \"Reverse abc\"}\n");
  auto generate = [&](const std::string& out, const std::string& batch) {
    return run_cli({"generate", "--model", model.string(), "--input", prompts.string(), "--output",
                    (dir.path() / out).string(), "--n", "2", "--max-new-tokens", "8", "--seed", "5",
                    "--batch-size", batch});
  };
  const CliResult first = generate("a.jsonl", "4");
  INFO(first.err);
  REQUIRE(first.exit_code == 4);  // finished, but a row was dropped (docs/exit_codes.md)
  CHECK_THAT(first.err, Catch::Contains("not valid JSON"));  // counted, logged drop
  const std::string a = read_text(dir.path() / "a.jsonl");
  const auto rows = jsonl(a);
  REQUIRE(rows.size() == 3);
  CHECK(rows[0]["id"] == "a");
  for (const auto& row : rows) {
    REQUIRE(row["completions"].size() == 2);
    for (const auto& c : row["completions"]) CHECK(c["tokens"].get<int>() <= 8);
  }
  CHECK(generate("b.jsonl", "4").exit_code == 4);
  CHECK(read_text(dir.path() / "b.jsonl") == a);  // same seed, same text
  CHECK(generate("c.jsonl", "1").exit_code == 4);
  CHECK(read_text(dir.path() / "c.jsonl") == a);  // batching does not change results
}

TEST_CASE("model commands: MR_MAX_CPU_ISA caps the CPU kernels, another value is a clear error",
          "[e2e][model]") {
  ScratchDir dir("max_cpu_isa");
  const fs::path model = tiny_model(dir);
  const fs::path prompts = dir.write("prompts.jsonl", "{\"prompt\": \"Sort 3 1 2\"}\n");
  auto generate = [&](const std::string& isa) {
    return run_cli({"generate", "--model", model.string(), "--input", prompts.string(), "--output",
                    (dir.path() / (isa + ".jsonl")).string(), "--max-new-tokens", "4"},
                   std::filesystem::temp_directory_path(), {"MR_MAX_CPU_ISA=" + isa});
  };
  for (const std::string isa : {"avx2", "none"}) {
    INFO(isa);
    const CliResult r = generate(isa);
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(jsonl(read_text(dir.path() / (isa + ".jsonl"))).size() == 1);
  }
  // "none": the backend reports that no kernel of its own runs.
  CHECK_THAT(generate("none").err, Catch::Contains("CPU kernels none"));
  const CliResult bad = generate("sse9");
  CHECK(bad.exit_code != 0);
  CHECK_THAT(bad.err, Catch::Contains("MR_MAX_CPU_ISA=\"sse9\": expected avx512, avx2 or none"));
  CHECK_THAT(bad.err, Catch::Contains("plugin 'torch'"));  // At load, before any work.
  CHECK_FALSE(fs::exists(dir.path() / "sse9.jsonl"));
}

TEST_CASE("model commands: exit 3 when no input row is usable and 4 when some were dropped",
          "[e2e][model]") {
  ScratchDir dir("exit_status");
  const fs::path model = tiny_model(dir);
  const fs::path garbage = dir.write("garbage.jsonl", "not json\n{\"unrelated\": 1}\n");
  const fs::path empty = dir.write("empty.jsonl", "");
  for (const fs::path& input : {garbage, empty}) {
    INFO(input);
    const fs::path out = dir.path() / "out.jsonl";
    const CliResult g = run_cli({"generate", "--model", model.string(), "--input", input.string(),
                                 "--output", out.string(), "--max-new-tokens", "4"});
    CHECK(g.exit_code == 3);
    CHECK_THAT(g.err, Catch::Contains("error: generate: no usable prompt rows in '" +
                                      input.string() + "'"));
    CHECK_FALSE(fs::exists(out));  // nothing written
    const CliResult sc = run_cli({"score", "--model", model.string(), "--input", input.string()});
    CHECK(sc.exit_code == 3);
    CHECK_THAT(sc.err, Catch::Contains("no usable rows"));
    const CliResult t = run_cli({"train-dpo", "--model", model.string(), "--pairs", input.string(),
                                 "--out", (dir.path() / "dpo").string()});
    CHECK(t.exit_code == 3);
    CHECK_THAT(t.err, Catch::Contains("train-dpo: no usable training rows"));
    CHECK_FALSE(fs::exists(dir.path() / "dpo"));
  }
  // score: one good row among bad ones is scored, and the drop is the exit status.
  const fs::path mixed =
      dir.write("mixed.jsonl", "{\"prompt\": \"q\", \"completion\": \"a\"}\nnot json\n");
  const CliResult sc = run_cli({"score", "--model", model.string(), "--input", mixed.string()});
  CHECK(sc.exit_code == 4);
  CHECK(jsonl(sc.out).size() == 1);
  CHECK_THAT(sc.err, Catch::Contains("1 input row(s) were dropped"));
  // tokenize: 0 all good, 4 with a bad row (reported inline), 3 with none usable.
  auto tokenize = [&](const std::string& input) {
    return mr::tests::run_binary(
        "/bin/sh", {"-c", "printf '" + input + "' | \"$0\" tokenize --tokenizer \"$1\"",
                    MR_CLI_PATH, model.string()});
  };
  CHECK(tokenize("{\"text\": \"ab\"}\\n").exit_code == 0);
  const CliResult bad = tokenize("{\"text\": \"ab\"}\\n[1]\\n");
  CHECK(bad.exit_code == 4);
  CHECK_THAT(bad.out, Catch::Contains("\"line\":2"));
  CHECK(tokenize("[1]\\n").exit_code == 3);
  CHECK(tokenize("").exit_code == 3);
}

TEST_CASE("model commands: score, train-dpo and sft work on an init-model checkpoint",
          "[e2e][model]") {
  ScratchDir dir("train");
  const fs::path model = tiny_model(dir);
  std::string pairs, score_rows, sft;
  for (int i = 0; i < 4; ++i) {
    const std::string q = "q" + std::to_string(i);
    pairs += "{\"prompt\": \"" + q + "\", \"chosen\": \"good " + q + "\", \"rejected\": \"bad\"}\n";
    score_rows += "{\"prompt\": \"" + q + "\", \"completion\": \"good " + q + "\"}\n";
    score_rows += "{\"prompt\": \"" + q + "\", \"completion\": \"bad\"}\n";
    sft += "{\"messages\": [{\"role\": \"user\", \"content\": \"" + q +
           "\"}, {\"role\": \"assistant\", \"content\": \"answer " + q + "\"}]}\n";
  }
  const fs::path pairs_file = dir.write("pairs.jsonl", pairs);
  const fs::path score_file = dir.write("score.jsonl", score_rows);
  const fs::path sft_file = dir.write("sft.jsonl", sft);

  auto margins = [&](const fs::path& m) {
    const CliResult r = run_cli({"score", "--model", m.string(), "--input", score_file.string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const auto rows = jsonl(r.out);
    REQUIRE(rows.size() == 8);
    std::vector<double> out;
    for (std::size_t i = 0; i < rows.size(); i += 2) {
      double sum = 0;
      for (const auto& v : rows[i]["token_logprobs"]) sum += v.get<double>();
      CHECK(sum == Approx(rows[i]["logprob_sum"].get<double>()).epsilon(1e-6));
      CHECK(rows[i]["logprob_sum"].get<double>() < 0.0);
      out.push_back(rows[i]["logprob_sum"].get<double>() -
                    rows[i + 1]["logprob_sum"].get<double>());
    }
    return out;
  };
  const std::vector<double> before = margins(model);

  const fs::path trained = dir.path() / "dpo";
  const CliResult dpo =
      run_cli({"train-dpo", "--model", model.string(), "--pairs", pairs_file.string(), "--out",
               trained.string(), "--metrics", (dir.path() / "dpo_metrics.jsonl").string(), "--set",
               "optimizer.batch_size=2", "--set", "optimizer.micro_batch_size=1", "--set",
               "optimizer.learning_rate=0.01", "--set", "optimizer.epochs=3", "--set",
               "optimizer.warmup_ratio=0.0"});
  INFO(dpo.err);
  REQUIRE(dpo.exit_code == 0);
  REQUIRE(fs::exists(trained / "model.safetensors"));
  CHECK(jsonl(read_text(dir.path() / "dpo_metrics.jsonl")).size() == 6);  // 3 epochs x 2 steps
  const std::vector<double> after = margins(trained);
  for (std::size_t i = 0; i < before.size(); ++i) CHECK(after[i] > before[i]);

  const fs::path tuned = dir.path() / "sft";
  const CliResult s =
      run_cli({"sft", "--model", model.string(), "--data", sft_file.string(), "--out",
               tuned.string(), "--metrics", (dir.path() / "sft_metrics.jsonl").string(), "--set",
               "optimizer.batch_size=4", "--set", "optimizer.micro_batch_size=2", "--set",
               "optimizer.learning_rate=0.01", "--set", "optimizer.epochs=5"});
  INFO(s.err);
  REQUIRE(s.exit_code == 0);
  const auto metrics = jsonl(read_text(dir.path() / "sft_metrics.jsonl"));
  REQUIRE(metrics.size() >= 2);
  CHECK(metrics.back()["loss"].get<double>() < metrics.front()["loss"].get<double>());
  REQUIRE(fs::exists(tuned / "model.safetensors"));
}

TEST_CASE("model commands: bad input gives clear errors", "[e2e][model]") {
  ScratchDir dir("bad");
  const CliResult missing = run_cli({"generate", "--model", (dir.path() / "nope").string()});
  CHECK(missing.exit_code != 0);
  CHECK_THAT(missing.err, Catch::Contains("nope"));
  const CliResult no_model = run_cli({"train-dpo", "--pairs", "x.jsonl", "--out", "y"});
  CHECK(no_model.exit_code == 2);
  CHECK_THAT(no_model.err, Catch::Contains("--model is required"));
}

TEST_CASE("model commands: init-model and tokenize parse their options like the host",
          "[e2e][model]") {
  ScratchDir dir("init_usage");
  const std::string out = (dir.path() / "m").string();
  SECTION("--help prints the options and exits 0, before or after the command") {
    for (const auto& args : {std::vector<std::string>{"init-model", "--help"},
                             std::vector<std::string>{"--help", "init-model"}}) {
      const CliResult r = run_cli(args);
      INFO(args[0] << " " << args[1] << "\n" << r.err);
      CHECK(r.exit_code == 0);
      CHECK_THAT(r.out, Catch::Contains("usage: metareward init-model") &&
                            Catch::Contains("--config CONFIG.json") &&
                            Catch::Contains("--dtype TYPE"));
    }
    const CliResult t = run_cli({"tokenize", "--help"});
    CHECK(t.exit_code == 0);
    CHECK_THAT(t.out, Catch::Contains("--tokenizer DIR"));
  }
  SECTION("usage errors exit 2 with the message naming the flag, then the usage") {
    const CliResult dtype =
        run_cli({"init-model", "--config", "c.json", "--out", out, "--dtype=int8"});
    CHECK(dtype.exit_code == 2);
    CHECK_THAT(dtype.err,
               Catch::StartsWith("init-model: --dtype must be float32 or bfloat16, got 'int8'") &&
                   Catch::Contains("usage: metareward init-model"));
    const CliResult unknown = run_cli({"init-model", "--config", "c.json", "--frob", "1"});
    CHECK(unknown.exit_code == 2);
    CHECK_THAT(unknown.err, Catch::StartsWith("init-model: unrecognised option '--frob'"));
    const CliResult missing = run_cli({"tokenize"});
    CHECK(missing.exit_code == 2);
    CHECK_THAT(missing.err, Catch::StartsWith("tokenize: --tokenizer DIR is required"));
    CHECK_FALSE(fs::exists(out));
  }
}
#endif
