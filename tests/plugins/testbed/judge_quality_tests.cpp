// The testbed's promise to a researcher: `metareward testbed bootstrap` makes a seed model whose
// judge agrees with the oracle better than chance. Checked at a reduced size (a 0.2M-parameter
// model instead of 0.85M, one epoch of the mixed SFT instead of four, a judge-heavier mix; about
// five minutes on two cores) through the built binary: bootstrap,
// then `metareward eval` with the recipe's config, then the judge metrics against the oracle.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "skip.hpp"

namespace fs = std::filesystem;
using mr::tests::CliResult;
using mr::tests::read_text;
using mr::tests::run_cli;
using mr::tests::ScratchDir;

TEST_CASE("testbed bootstrap: a reduced seed's judge beats chance against the oracle",
          "[testbed][bootstrap][e2e]") {
#ifndef MR_TESTBED_HAVE_TORCH_BACKEND
  MR_SKIP("this build has no torch backend / optimizers (init-model, sft)");
#endif
  ScratchDir dir("tb_judge_quality");
  const fs::path seed = dir.path() / "seed";
  // The default schedule (judge warm-up on the judge rows, then the mixed SFT) with a narrower
  // model, which needs the higher warm-up rate to leave the plateau where it gives every bare
  // answer 5, and 75 % judge rows: one epoch of the default 45 % mix takes a small judge back
  // towards that plateau (0.47-0.55 over seeds and rates, plugins/testbed/README.md). The judge
  // targets are the oracle's (no judge noise, no length bias): with the default noise this
  // small judge ended at 0.51-0.65 over seeds 1-3 and OpenBLAS's AVX2 / AVX-512 kernels, so
  // rounding decided the check; noise-free it ended at 0.62-0.71 (README, "reduced-size test").
  const CliResult boot = run_cli(
      {"--plugin-dir", MR_TESTBED_PLUGIN_DIR, "testbed", "bootstrap", "--out", seed.string(),
       "--hidden-size", "96", "--intermediate-size", "288", "--layers", "2", "--judge-warmup-lr",
       "0.01", "--lr", "0.002", "--epochs", "1", "--judge-share", "0.75", "--judge-noise", "0",
       "--length-bias", "0", "--train-prompts", "50", "--eval-prompts", "100",
       // One thread: ctest runs two tests at once on CI's two cores,
       // and two OpenMP pools on two cores slow both down.
       "--threads", "1"});
  INFO("bootstrap stdout: " << boot.out << "\nstderr: " << boot.err);
  REQUIRE(boot.exit_code == 0);

  const fs::path eval = dir.path() / "eval";
  auto quoted = [](const fs::path& p) { return "\"" + p.string() + "\""; };
  const CliResult r =
      run_cli({"--plugin-dir", MR_TESTBED_PLUGIN_DIR, "eval",
               (fs::path(MR_SOURCE_DIR) / "configs" / "testbed" / "meta_rewarding.toml").string(),
               "--model", (seed / "seed_model").string(), "--out", eval.string(), "--set",
               "evaluation.prompts=" + quoted(seed / "data" / "eval_prompts.jsonl"), "--set",
               "evaluation.judge_pairs=0", "--set", "run.threads=1"});
  INFO("eval stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  const auto metrics = nlohmann::json::parse(read_text(eval / "metrics.json"))["evaluation"];
  INFO("evaluation: " << metrics.dump(2));
  // 100 prompts x 5 judged answers (the model's, bare and verbose correct, wrong, off-task):
  // a judge that only sees the form of an answer scores about 0.42 (docs/results.md), a random
  // one 0.5.
  REQUIRE(metrics.contains("judge/pairwise_accuracy"));
  CHECK(metrics["judge/pairwise_accuracy"].get<double>() > 0.55);
  CHECK(metrics["judge/spearman"].get<double>() > 0.15);
  CHECK(metrics["judge/parse_failure_rate"].get<double>() < 0.1);
}
