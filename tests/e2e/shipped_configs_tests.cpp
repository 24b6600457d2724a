// The shipped configs (meta_rewarding, self_rewarding, self_rewarding_lc) validate with the
// shipped plugins (found by the build tree's binary in the build's plugin dir), and resolve to
// the paper's recipe and its baselines (../shared/docs/method.md). They name the
// torch backend and dpo: in builds without libtorch (or without the recipe plugins) the tests
// report "skipped".
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "cli_runner.hpp"
#include "skip.hpp"

namespace fs = std::filesystem;
using mr::tests::CliResult;
using mr::tests::read_text;
using mr::tests::run_cli;

#if defined(MR_E2E_HAVE_RECIPE) && defined(MR_E2E_HAVE_TORCH_BACKEND)
#define MR_SKIP_WITHOUT_SHIPPED_PLUGINS()
#else
#define MR_SKIP_WITHOUT_SHIPPED_PLUGINS()                                   \
  MR_SKIP(                                                                  \
      "the shipped configs need the recipe, torch backend and dpo plugins " \
      "(MR_BUILD_PLUGINS=ON, MR_WITH_TORCH=ON)")
#endif

namespace {
std::string config(const char* name) {
  return (fs::path(MR_SOURCE_DIR) / "configs" / name).string();
}
}  // namespace

TEST_CASE("configs: meta_rewarding.toml is the paper's recipe and validates", "[e2e][configs]") {
  MR_SKIP_WITHOUT_SHIPPED_PLUGINS();
  const std::string file = config("meta_rewarding.toml");
  const CliResult check = run_cli({"config", "check", file});
  INFO(check.err);
  REQUIRE(check.exit_code == 0);
  CHECK_THAT(check.out, Catch::Contains("is valid (4 iterations; model_backend torch, judge_rubric "
                                        "additive5, meta_judge pairwise_elo, pair_selection "
                                        "length_control, optimizer dpo)"));

  const CliResult show = run_cli({"config", "show", file});
  REQUIRE(show.exit_code == 0);
  const std::string& t = show.out;
  // K = 7, N = 11, T 0.8, top-p 0.95; rho schedule; judge trained in iterations 1-2;
  // DPO beta 0.1, lr 5e-6, batch 32.
  CHECK_THAT(t,
             Catch::Contains("[generation.actor]\nsamples = 7\ntemperature = 0.8\ntop_p = 0.95"));
  CHECK_THAT(t,
             Catch::Contains("[generation.judge]\nsamples = 11\ntemperature = 0.8\ntop_p = 0.95"));
  CHECK_THAT(t, Catch::Contains("rho = [0.0, 0.32, 0.32, 0.4]"));
  CHECK_THAT(t, Catch::Contains("train_judge = [true, true, false, false]"));
  CHECK_THAT(t, Catch::Contains("max_chosen_length = [2500, 0, 0, 0]"));
  CHECK_THAT(t, Catch::Contains("max_chosen_judgment_chars = [1100, 1000, 0, 0]"));
  CHECK_THAT(t, Catch::Contains("beta = 0.1"));
  CHECK_THAT(t, Catch::Contains("learning_rate = 5e-6"));
  CHECK_THAT(t, Catch::Contains("batch_size = 32"));
  CHECK_THAT(t, Catch::Contains("response_selection = \"max_variance\""));
}

TEST_CASE("configs: self_rewarding.toml is the baseline and validates", "[e2e][configs]") {
  MR_SKIP_WITHOUT_SHIPPED_PLUGINS();
  const std::string file = config("self_rewarding.toml");
  const CliResult check = run_cli({"config", "check", file});
  INFO(check.err);
  REQUIRE(check.exit_code == 0);
  CHECK_THAT(check.out, Catch::Contains("meta_judge none, pair_selection best_worst"));
  const CliResult show = run_cli({"config", "show", file});
  REQUIRE(show.exit_code == 0);
  CHECK_THAT(show.out,
             Catch::Contains("[generation.actor]\nsamples = 4\ntemperature = 0.7\ntop_p = 0.9"));
  CHECK_THAT(show.out, Catch::Contains("[generation.judge]\nsamples = 3\ntemperature = 0.7"));
  CHECK_THAT(show.out, Catch::Contains("train_judge = false"));
  // Yuan et al.'s DPO: lr 1e-6 decaying to 1e-7, batch 16, dropout 0.1.
  CHECK_THAT(show.out, Catch::Contains("batch_size = 16\nbeta = 0.1\n"));
  CHECK_THAT(show.out, Catch::Contains("dropout = 0.1\n"));
  CHECK_THAT(show.out, Catch::Contains("learning_rate = 1e-6\n"));
  CHECK_THAT(show.out, Catch::Contains("lr_schedule = \"cosine\"\n"));
  CHECK_THAT(show.out, Catch::Contains("min_learning_rate = 1e-7\n"));

  SECTION("length control is one override away") {
    const CliResult lc =
        run_cli({"config", "show", file, "--set", "pair_selection.type=length_control", "--set",
                 "pair_selection.rho=0.1"});
    REQUIRE(lc.exit_code == 0);
    CHECK_THAT(lc.out, Catch::Contains("[pair_selection]\ntype = \"length_control\"\n"));
    CHECK_THAT(lc.out, Catch::Contains("remove_duplicates = true\nrho = 0.1\n"));
  }
  SECTION("an out-of-range rho is rejected naming the key") {
    const CliResult bad =
        run_cli({"config", "check", file, "--set", "pair_selection.type=length_control", "--set",
                 "pair_selection.rho=0.6"});
    CHECK(bad.exit_code == 2);
    CHECK_THAT(bad.err, Catch::Contains("[pair_selection.rho] 0.6 is out of range"));
  }
}

TEST_CASE("configs: self_rewarding_lc.toml is Meta-Rewarding without the meta-judge, rho 0.1",
          "[e2e][configs]") {
  MR_SKIP_WITHOUT_SHIPPED_PLUGINS();
  const std::string file = config("self_rewarding_lc.toml");
  const CliResult check = run_cli({"config", "check", file});
  INFO(check.err);
  REQUIRE(check.exit_code == 0);
  CHECK_THAT(check.out, Catch::Contains("meta_judge none, pair_selection length_control, "
                                        "optimizer dpo)"));
  const CliResult show = run_cli({"config", "show", file});
  REQUIRE(show.exit_code == 0);
  const CliResult paper = run_cli({"config", "show", config("meta_rewarding.toml")});
  REQUIRE(paper.exit_code == 0);
  // The same generation and DPO sections as the Meta-Rewarding config, table for table.
  const auto table = [](const std::string& text, const std::string& header) {
    const auto start = text.find("\n[" + header + "]\n");
    if (start == std::string::npos) return std::string("(no [" + header + "])");
    return text.substr(start, text.find("\n\n", start + 1) - start);
  };
  for (const char* header : {"generation.actor", "generation.judge", "judge_rubric", "optimizer"}) {
    INFO(header);
    CHECK(table(show.out, header) == table(paper.out, header));
  }
  CHECK_THAT(show.out, Catch::Contains("train_judge = false"));
  CHECK_THAT(show.out, Catch::Contains("[meta_judge]\ntype = \"none\"\n"));
  CHECK_THAT(show.out, Catch::Contains("[pair_selection]\ntype = \"length_control\"\n"));
  CHECK_THAT(table(show.out, "pair_selection"), Catch::Contains("\nrho = 0.1"));
  CHECK_THAT(show.out, Catch::Contains("samples = 7") && Catch::Contains("samples = 11"));
}

TEST_CASE("configs: the commented [seed_sft] of meta_rewarding.toml validates once uncommented",
          "[e2e][configs][seed]") {
  MR_SKIP_WITHOUT_SHIPPED_PLUGINS();
  // What a user gets by uncommenting the block (its data file is only read by `run` and `plan`).
  const CliResult r =
      run_cli({"config", "show", config("meta_rewarding.toml"), "--set", "seed_sft.type=\"sft\"",
               "--set", "seed_sft.data=\"data/eft.jsonl\"", "--set", "seed_sft.learning_rate=1e-5",
               "--set", "seed_sft.epochs=3", "--set", "seed_sft.batch_size=16"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("[seed_sft]\ntype = \"sft\"\ndata = \"data/eft.jsonl\"\n"));
  CHECK_THAT(read_text(config("meta_rewarding.toml")),
             Catch::Contains("# [seed_sft]\n# type = \"sft\"\n# data = \"data/eft.jsonl\""));
}
