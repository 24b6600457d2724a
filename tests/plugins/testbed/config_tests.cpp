// The shipped testbed configs (configs/testbed/*.toml) validate with the built plugins and use
// the exact judge / meta-judge templates the seed model is trained on. They name the torch backend
// and dpo: without libtorch the test reports "skipped".
#include <catch2/catch.hpp>

#include <string>

#include <unistd.h>

#include "cli_runner.hpp"
#include "metareward/testbed/judge_data.hpp"
#include "skip.hpp"

namespace fs = std::filesystem;
using mr::tests::CliResult;
using mr::tests::run_cli;

namespace {

std::string config(const char* name) {
  return (fs::path(MR_SOURCE_DIR) / "configs" / "testbed" / name).string();
}

/// A working directory laid out as `make demo` leaves it: runs/testbed/seed is the committed seed
/// (the configs name its data by relative paths, and `config check` constructs the evaluator,
/// which reads them).
struct DemoDir {
  fs::path path = fs::temp_directory_path() / ("mr_testbed_configs_" + std::to_string(::getpid()));
  DemoDir() {
    fs::remove_all(path);
    fs::create_directories(path / "runs" / "testbed");
    fs::create_directory_symlink(fs::path(MR_SOURCE_DIR) / "configs" / "testbed" / "seed",
                                 path / "runs" / "testbed" / "seed");
  }
  ~DemoDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

CliResult config_command(const char* sub, const char* name, const fs::path& cwd) {
  return run_cli({"--plugin-dir", MR_TESTBED_PLUGIN_DIR, "config", sub, config(name)}, cwd);
}

CliResult config_command(const char* sub, const char* name) {
  static const DemoDir demo;
  return config_command(sub, name, demo.path);
}

/// How `config show` writes a multi-line template: a TOML multi-line literal string.
std::string shown_template(const std::string& text) {
  return "template = '''\n" + text + "'''";
}

}  // namespace

TEST_CASE("testbed configs: validate and use the testbed templates", "[testbed][configs]") {
#ifndef MR_TESTBED_HAVE_TORCH_BACKEND
  MR_SKIP("the testbed configs need the torch backend and dpo plugins (MR_WITH_TORCH=ON)");
#endif
  struct Case {
    const char* file;
    const char* summary;
  };
  const std::vector<Case> cases = {
      {"meta_rewarding.toml", "meta_judge pairwise_elo, pair_selection length_control"},
      {"self_rewarding.toml", "meta_judge none, pair_selection length_control"},
      {"no_length_control.toml", "meta_judge pairwise_elo, pair_selection length_control"},
      {"meta_rewarding_http.toml", "meta_judge pairwise_elo, pair_selection length_control"},
      {"controlled_judge.toml", "meta_judge pairwise_elo, pair_selection length_control"},
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
  SECTION("config check constructs the evaluator: its missing data is reported before a run") {
    const CliResult check =
        config_command("check", "meta_rewarding.toml", fs::temp_directory_path());
    CHECK(check.exit_code != 0);
    CHECK_THAT(check.err, Catch::Contains("plugin 'testbed'") &&
                              Catch::Contains("[evaluation.prompts] cannot read") &&
                              Catch::Contains("testbed bootstrap"));
  }
  SECTION("the variants differ from the recipe only where they should") {
    const std::string recipe = config_command("show", "meta_rewarding.toml").out;
    CHECK_THAT(recipe, Catch::Contains("rho = 0.3") &&
                           Catch::Contains("train_judge = [true, true, false]"));
    CHECK_THAT(config_command("show", "no_length_control.toml").out, Catch::Contains("rho = 0.0"));
    CHECK_THAT(config_command("show", "self_rewarding.toml").out,
               Catch::Contains("train_judge = false"));
    const std::string http = config_command("show", "meta_rewarding_http.toml").out;
    CHECK_THAT(http, Catch::Contains("actor = \"served\"") &&
                         Catch::Contains("train = \"policy\"") &&
                         Catch::Contains("type = \"openai\"") && Catch::Contains("rho = 0.3"));
    const std::string controlled = config_command("show", "controlled_judge.toml").out;
    CHECK_THAT(controlled, Catch::Contains("judge = \"judge\"") &&
                               Catch::Contains("meta_judge = \"judge\"") &&
                               Catch::Contains("type = \"testbed_oracle\"") &&
                               Catch::Contains("train_judge = false"));
  }
}
