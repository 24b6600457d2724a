// End-to-end: the host side of LoRA adapters and the run directory's housekeeping. Pruning merged
// models (`[run] keep_merged_models = false`), stale temporaries and a killed start's leftover
// on fake directories; the model commands' --adapter / --adapter-out; and, when the optimizers
// train LoRA adapters, a run that keeps only the models an adapter cannot rebuild.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "jsonl_rows.hpp"
#include "metareward/core/run/run_directory.hpp"
#include "run_files.hpp"
#include "run_setup.hpp"
#include "skip.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using mr::core::RunDirectory;
using mr::tests::CliResult;
using mr::tests::read_text;
using mr::tests::run_cli;
using mr::tests::ScratchDir;
using mr::tests::differing;
using mr::tests::snapshot;

namespace {

/// The relative paths of every file and directory under `dir`.
std::set<std::string> tree(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    out.insert(fs::relative(e.path(), dir).string());
  return out;
}

}  // namespace

TEST_CASE("run directory: keep_merged_models = false removes only models an adapter rebuilds",
          "[e2e][adapter]") {
  ScratchDir dir("prune");
  // iter_0 (seed stage) and iter_1 trained adapters, iter_2 had no pairs (a copy, no adapter),
  // iter_3 is the latest.
  for (const char* f : {"iter_0/model/model.safetensors", "iter_0/adapter/adapter_config.json",
                        "iter_1/model/model.safetensors", "iter_1/adapter/adapter_config.json",
                        "iter_1/metrics.json", "iter_2/model/model.safetensors",
                        "iter_3/model/model.safetensors", "iter_3/adapter/adapter_config.json"})
    dir.write(f, "x");
  const RunDirectory run(dir.path());
  const auto removed = run.remove_rebuildable_models(3);
  CHECK(removed ==
        std::vector<fs::path>{dir.path() / "iter_0" / "model", dir.path() / "iter_1" / "model"});
  CHECK(tree(dir.path()) ==
        std::set<std::string>{"iter_0", "iter_0/adapter", "iter_0/adapter/adapter_config.json",
                              "iter_1", "iter_1/adapter", "iter_1/adapter/adapter_config.json",
                              "iter_1/metrics.json", "iter_2", "iter_2/model",
                              "iter_2/model/model.safetensors", "iter_3", "iter_3/adapter",
                              "iter_3/adapter/adapter_config.json", "iter_3/model",
                              "iter_3/model/model.safetensors"});
  CHECK(run.remove_rebuildable_models(3).empty());  // idempotent
  // An adapter *file* (not a finished adapter directory) rebuilds nothing.
  dir.write("iter_2/adapter", "x");
  CHECK(run.remove_rebuildable_models(3).empty());
  CHECK(fs::exists(dir.path() / "iter_2" / "model"));
}

TEST_CASE("run directory: stale temporaries of interrupted writes are removed, artifacts kept",
          "[e2e][adapter]") {
  ScratchDir dir("stale");
  const std::vector<std::string> stale = {
      "adapter.tmp",  "adapter.tmp.1234", "adapter.tmp-x1",       "model.tmp",
      "model.tmp.99", "metrics.json.tmp", "responses.jsonl.tmp.5"};
  const std::vector<std::string> kept = {"adapter/adapter_config.json", "model/config.json",
                                         "train_metrics.jsonl.partial", "responses.jsonl",
                                         "template.tmpl"};
  for (const auto& f : stale)
    dir.write("iter_1/" + f + (f.rfind("adapter", 0) == 0 ? "/a" : ""), "x");
  for (const auto& f : kept) dir.write("iter_1/" + f, "x");
  const auto removed = RunDirectory(dir.path()).remove_stale_temporaries(1);
  std::set<std::string> names;
  for (const auto& p : removed) names.insert(p.filename().string());
  CHECK(names == std::set<std::string>(stale.begin(), stale.end()));
  for (const auto& f : kept) CHECK(fs::exists(dir.path() / "iter_1" / f));
}

TEST_CASE(
    "run directory: a resume removes the temporaries a killed write of manifest.json left in the "
    "run directory itself",
    "[e2e][run]") {
  ScratchDir dir("stale_root");
  const RunDirectory run(dir.path() / "run");
  dir.write("run/manifest.json.tmp.4242", "{\"half\":");
  dir.write("run/config.resolved.toml.tmp", "# half");
  dir.write("run/notes.md", "kept");
  fs::create_directories(run.root() / "iter_1.tmp");  // a directory: not a writer's temporary
  std::set<std::string> names;
  for (const auto& p : run.remove_stale_root_temporaries()) names.insert(p.filename().string());
  CHECK(names == std::set<std::string>{"manifest.json.tmp.4242", "config.resolved.toml.tmp"});
  CHECK(fs::exists(run.root() / "notes.md"));
  CHECK(fs::exists(run.root() / "iter_1.tmp"));
#ifdef MR_E2E_HAVE_TORCH_BACKEND
  // Through the CLI: a run killed while it rewrote manifest.json resumes to the same files as
  // an uninterrupted run (the kill/resume test once found the temporary left over).
  mr::tests::RunSetup s;
  const CliResult reference = s.run({"--iterations", "1"});
  INFO(reference.err);
  REQUIRE(reference.exit_code == 0);
  const auto expected = snapshot(s.out);
  fs::remove_all(s.out / "iter_1");
  std::ofstream(s.out / "manifest.json.tmp.4242") << "{";
  const CliResult resumed = s.run({"--iterations", "1", "--resume"});
  INFO(resumed.err);
  CHECK(resumed.exit_code == 0);
  CHECK_THAT(resumed.err, Catch::Contains("manifest.json.tmp.4242") &&
                              Catch::Contains("left by an interrupted write"));
  CHECK(differing(expected, snapshot(s.out)).empty());
#endif
}

TEST_CASE("run directory: a start killed while writing its config record is started over",
          "[e2e][run]") {
  ScratchDir dir("killed_start");
  const RunDirectory run(dir.path() / "run");
  fs::create_directories(run.root());
  CHECK_FALSE(run.holds_only_interrupted_start());  // empty: nothing to start over
  dir.write("run/config.resolved.toml.tmp", "# half written");
  CHECK(run.holds_only_interrupted_start());
  CHECK_FALSE(run.holds_run());
  dir.write("run/notes.txt", "someone else's");
  CHECK_FALSE(run.holds_only_interrupted_start());  // a foreign file: never written into
#ifdef MR_E2E_HAVE_TORCH_BACKEND
  fs::remove(run.root() / "notes.txt");
  mr::tests::RunSetup s;
  const CliResult r = s.run({"--iterations", "1", "--out", run.root().string(), "--resume"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(run.complete(1));
  CHECK_FALSE(fs::exists(run.root() / "config.resolved.toml.tmp"));
#endif
}

TEST_CASE("model commands: --adapter and --adapter-out are documented in --help",
          "[e2e][adapter][model]") {
  for (const char* command : {"generate", "score", "train-dpo", "sft"}) {
    INFO(command);
    const CliResult r = run_cli({command, "--help"});
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("--adapter DIR") && Catch::Contains("models.policy.adapter"));
    const bool trains = std::string(command) == "train-dpo" || std::string(command) == "sft";
    CHECK((r.out.find("--adapter-out DIR") != std::string::npos) == trains);
  }
}

#ifdef MR_E2E_HAVE_TORCH_BACKEND
namespace {

/// Whether the shipped optimizers train LoRA adapters (their schema has `lora`).
bool optimizers_train_lora() {
  const CliResult r = run_cli({"plugins", "describe", "dpo"});
  return r.exit_code == 0 && r.out.find("lora_r") != std::string::npos;
}

/// Sum of logprob_sum over the rows `score` prints for `score_file` under `model` (+ extra).
double total_logprob(const fs::path& model,
                     const fs::path& score_file,
                     const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"score", "--model", model.string(), "--input",
                                   score_file.string()};
  args.insert(args.end(), extra.begin(), extra.end());
  const CliResult r = run_cli(args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  double total = 0;
  for (const auto& row : mr::tests::jsonl_rows(r.out)) total += row["logprob_sum"].get<double>();
  return total;
}

}  // namespace

TEST_CASE("model commands: --adapter reaches the backend's models.policy.adapter",
          "[e2e][adapter][model]") {
  ScratchDir dir("adapter_cli");
  const fs::path model = mr::tests::tiny_model(dir);
  const fs::path missing = dir.path() / "no_such_adapter";
  const CliResult r = run_cli({"generate", "--model", model.string(), "--adapter", missing.string(),
                               "--input", dir.write("p.jsonl", "{\"prompt\": \"hi\"}\n").string()});
  // Merged at load, so a missing adapter fails the command and is named (by the backend's
  // `adapter` key, or as an unknown key by a backend without one): never silently ignored.
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.err, Catch::Contains("adapter"));
}

TEST_CASE("model commands: train-dpo writes a LoRA adapter to --adapter-out that --adapter merges",
          "[e2e][adapter][model]") {
  if (!optimizers_train_lora()) MR_SKIP("the dpo optimizer of this build has no `lora` option");
  ScratchDir dir("adapter_train");
  const fs::path model = mr::tests::tiny_model(dir);
  std::string pairs, rows;
  for (int i = 0; i < 4; ++i) {
    const std::string q = "q" + std::to_string(i);
    pairs += "{\"prompt\": \"" + q + "\", \"chosen\": \"good " + q + "\", \"rejected\": \"bad\"}\n";
    rows += "{\"prompt\": \"" + q + "\", \"completion\": \"good " + q + "\"}\n";
  }
  const fs::path pairs_file = dir.write("pairs.jsonl", pairs);
  const fs::path score_file = dir.write("score.jsonl", rows);
  const std::vector<std::string> lora = {
      "--set", "optimizer.lora=true",          "--set", "optimizer.lora_r=4",
      "--set", "optimizer.learning_rate=0.05", "--set", "optimizer.batch_size=2"};
  auto train = [&](const fs::path& out, const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"train-dpo",         "--model", model.string(), "--pairs",
                                     pairs_file.string(), "--out",   out.string()};
    args.insert(args.end(), lora.begin(), lora.end());
    args.insert(args.end(), extra.begin(), extra.end());
    const CliResult r = run_cli(args);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
  };
  const fs::path merged = dir.path() / "dpo";
  train(merged, {});
  // Default: OUT.adapter beside the merged model.
  REQUIRE(fs::exists(dir.path() / "dpo.adapter" / "adapter_config.json"));
  CHECK(fs::exists(merged / "model.safetensors"));
  const fs::path custom = dir.path() / "elsewhere" / "adapter";
  train(dir.path() / "dpo2", {"--adapter-out", custom.string()});
  CHECK(fs::exists(custom / "adapter_config.json"));
  CHECK_FALSE(fs::exists(dir.path() / "dpo2.adapter"));

  // The base with the adapter merged at load scores like the merged checkpoint, not the base.
  const double base = total_logprob(model, score_file);
  const double with_adapter =
      total_logprob(model, score_file, {"--adapter", (dir.path() / "dpo.adapter").string()});
  CHECK(with_adapter == Approx(total_logprob(merged, score_file)).epsilon(1e-4));
  CHECK(with_adapter != Approx(base).epsilon(1e-4));
}

TEST_CASE("run: keep_merged_models = false keeps the latest model and the adapters",
          "[e2e][adapter][run]") {
  if (!optimizers_train_lora()) MR_SKIP("the dpo optimizer of this build has no `lora` option");
  mr::tests::RunSetup s;
  const CliResult r = s.run({"--set", "optimizer.lora=true", "--set", "optimizer.lora_r=4", "--set",
                             "run.keep_merged_models=false"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const fs::path iter1 = s.out / "iter_1", iter2 = s.out / "iter_2";
  // Iteration 1 trained on pairs, so it wrote an adapter and its merged model could go.
  REQUIRE(json::parse(read_text(iter1 / "metrics.json"))["training"]["pairs"] > 0);
  REQUIRE(fs::exists(iter1 / "adapter" / "adapter_config.json"));
  CHECK_FALSE(fs::exists(iter1 / "model"));
  CHECK_THAT(r.err, Catch::Contains("removed the merged model " + (iter1 / "model").string()));
  CHECK(fs::exists(iter2 / "model" / "model.safetensors"));  // the latest is always kept
  CHECK(fs::exists(s.model / "model.safetensors"));          // the config's model too

  // The documented rebuild: M_1 = merge-lora(seed, iter_1/adapter); M_2 = merge-lora(M_1, ...).
  const fs::path m1 = s.dir.path() / "m1";
  const CliResult rebuild = run_cli({"merge-lora", "--model", s.model.string(), "--adapter",
                                     (iter1 / "adapter").string(), "--out", m1.string()});
  INFO(rebuild.err);
  REQUIRE(rebuild.exit_code == 0);
  if (fs::exists(iter2 / "adapter")) {
    const fs::path m2 = s.dir.path() / "m2";
    REQUIRE(run_cli({"merge-lora", "--model", m1.string(), "--adapter",
                     (iter2 / "adapter").string(), "--out", m2.string()})
                .exit_code == 0);
    const fs::path rows =
        s.dir.write("score.jsonl", "{\"prompt\": \"Sort: 3 1 2\", \"completion\": \"1 2 3\"}\n");
    CHECK(total_logprob(m2, rows) == Approx(total_logprob(iter2 / "model", rows)).epsilon(1e-4));
  }
}
#endif
