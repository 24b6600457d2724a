// The shipped testbed configs (configs/testbed/*.toml) validate with the built plugins and use
// the exact judge / meta-judge templates the seed model is trained on.
#include <catch2/catch.hpp>

#include <string>

#include "cli_runner.hpp"
#include "metareward/testbed/judge_data.hpp"

namespace fs = std::filesystem;
using mr::tests::CliResult;
using mr::tests::run_cli;

namespace {

std::string config(const char* name) {
  return (fs::path(MR_SOURCE_DIR) / "configs" / "testbed" / name).string();
}

CliResult config_command(const char* sub, const char* name) {
  return run_cli({"--plugin-dir", MR_PLACEHOLDER_DIR, "--plugin-dir", MR_TESTBED_PLUGIN_DIR,
                  "config", sub, config(name)});
}

/// How `config show` writes a multi-line template: a TOML multi-line literal string.
std::string shown_template(const std::string& text) {
  return "template = '''\n" + text + "'''";
}

}  // namespace

TEST_CASE("testbed configs: validate and use the testbed templates", "[testbed][configs]") {
  struct Case {
    const char* file;
    const char* summary;
  };
  const std::vector<Case> cases = {
      {"meta_rewarding.toml", "meta_judge pairwise_elo, pair_selection length_control"},
      {"self_rewarding.toml", "meta_judge none, pair_selection length_control"},
      {"no_length_control.toml", "meta_judge pairwise_elo, pair_selection length_control"},
  };
  for (const auto& c : cases) {
    INFO(c.file);
    const CliResult check = config_command("check", c.file);
    INFO(check.err);
    REQUIRE(check.exit_code == 0);
    CHECK_THAT(check.out, Catch::Contains("is valid (3 iterations;") && Catch::Contains(c.summary));
    const CliResult show = config_command("show", c.file);
    REQUIRE(show.exit_code == 0);
    CHECK_THAT(show.out,
               Catch::Contains(shown_template(mr::plugins::testbed::kTestbedJudgeTemplate)));
    CHECK_THAT(show.out, Catch::Contains("[evaluation]\ntype = \"testbed\""));
    CHECK_THAT(show.out, Catch::Contains("runs/testbed/seed/data/eval_prompts.jsonl"));
    if (std::string(c.file) != "self_rewarding.toml")
      CHECK_THAT(show.out,
                 Catch::Contains(shown_template(mr::plugins::testbed::kTestbedMetaJudgeTemplate)));
  }
  SECTION("the variants differ from the recipe only where they should") {
    const std::string recipe = config_command("show", "meta_rewarding.toml").out;
    CHECK_THAT(recipe, Catch::Contains("rho = 0.3") &&
                           Catch::Contains("train_judge = [true, true, false]"));
    CHECK_THAT(config_command("show", "no_length_control.toml").out, Catch::Contains("rho = 0.0"));
    CHECK_THAT(config_command("show", "self_rewarding.toml").out,
               Catch::Contains("train_judge = false"));
  }
}
