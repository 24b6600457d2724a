// End-to-end tests of the `metareward` command line: exit codes, output and error messages of
// every Foundation command, run as a child process exactly as a user would.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <regex>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "metareward/core/plugin_registry.hpp"
#include "metareward/sdk/version.hpp"
#include "sample_configs.hpp"
#include "skip.hpp"

namespace fs = std::filesystem;
using mr::tests::CliResult;
using mr::tests::good_config;
using mr::tests::run_binary;
using mr::tests::run_cli;
using mr::tests::ScratchDir;

namespace {

/// Position of `needle` in `text`, failing the test when absent.
std::size_t position_of(const std::string& text, const std::string& needle) {
  const auto pos = text.find(needle);
  INFO("looking for: " << needle);
  REQUIRE(pos != std::string::npos);
  return pos;
}

}  // namespace

TEST_CASE("cli: --version prints version, plugin API and build fingerprint", "[e2e]") {
  const CliResult r = run_cli({"--version"});
  CHECK(r.exit_code == 0);
  CHECK(r.out == std::string("metareward " MR_SDK_VERSION " (plugin API ") +
                     std::to_string(MR_PLUGIN_API_VERSION) + "; " + mr::core::host_fingerprint() +
                     ")\n");
  CHECK(r.err.empty());
}

TEST_CASE("cli: usage errors exit 2 and say what is available", "[e2e]") {
  SECTION("an unknown command lists the commands") {
    const CliResult r = run_cli({"frobnicate"});
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Catch::StartsWith("error: unknown command 'frobnicate'; commands are:\n"));
    for (const char* c : {"plugins list", "plugins describe", "config check", "config show"})
      CHECK_THAT(r.err, Catch::Contains(c));
  }
  SECTION("an unknown subcommand of a group is named with its group") {
    const CliResult r = run_cli({"plugins", "lst"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::StartsWith("error: unknown command 'plugins lst'"));
  }
  SECTION("no command prints the help to stderr") {
    const CliResult r = run_cli({});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("Usage: metareward"));
  }
  SECTION("an unknown option of a command") {
    const CliResult r = run_cli({"plugins", "list", "--frob"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::StartsWith("error: plugins list: unrecognised option '--frob'"));
  }
  SECTION("an unknown log level") {
    const CliResult r = run_cli({"--log-level", "loud", "plugins", "list"});
    CHECK(r.exit_code == 2);
    CHECK(r.err ==
          "error: unknown log level 'loud' (expected one of: trace, debug, info, warn, error)\n");
  }
  SECTION("--help exits 0 and lists commands on stdout") {
    const CliResult r = run_cli({"--help"});
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("config check"));
    CHECK_THAT(r.out, Catch::Contains("--plugin-dir"));
  }
  SECTION("--help after a command shows that command's options") {
    const CliResult r = run_cli({"config", "check", "--help"});
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::StartsWith("Usage: metareward config check FILE"));
    CHECK_THAT(r.out, Catch::Contains("--set"));
  }
}

TEST_CASE("cli: plugins list shows the six kinds in order with their plugins", "[e2e]") {
  ScratchDir fixtures("list");
  ScratchDir more("list_more");
  fs::copy_file(MR_FIXTURE_OK, fixtures.path() / "libfixture_ok.so");
  fs::copy_file(MR_FIXTURE_EVALUATOR, fixtures.path() / "libfixture_evaluator.so");
  const CliResult r = run_cli({"plugins", "list", "--plugin-dir", fixtures.path().string(),
                               "--plugin-dir", more.path().string()});
  REQUIRE(r.exit_code == 0);
  const auto search = position_of(r.out, "Plugin search path:\n");
  const auto backend = position_of(r.out, "\nmodel_backend:\n");
  const auto rubric = position_of(r.out, "\njudge_rubric:\n");
  const auto meta = position_of(r.out, "\nmeta_judge:\n");
  const auto pairs = position_of(r.out, "\npair_selection:\n");
  const auto optimizer = position_of(r.out, "\noptimizer:\n");
  const auto evaluator = position_of(r.out, "\nevaluator:\n");
  CHECK(search < backend);
  CHECK(backend < rubric);
  CHECK(rubric < meta);
  CHECK(meta < pairs);
  CHECK(pairs < optimizer);
  CHECK(optimizer < evaluator);
  // Each plugin is listed under its kind.
  const auto fixture = position_of(r.out, "\n  fixture_ok  1.2.3  Loader fixture rubric\n");
  CHECK((rubric < fixture && fixture < meta));
  // Names are padded to the longest of their kind (the shipped evaluators' names are longer).
  const auto fixture_eval = position_of(r.out, "\n  fixture_eval ");
  CHECK(evaluator < fixture_eval);
  CHECK(std::regex_search(r.out.substr(fixture_eval),
                          std::regex("^\n  fixture_eval +0\\.1\\.0  Test evaluator: ")));
  CHECK_THAT(
      r.out,
      Catch::Contains("from mr-fixture-ok 0.0.1 (" +
                      fs::weakly_canonical(fixtures.path() / "libfixture_ok.so").string() + ")\n"));
  // The search path lists the --plugin-dir entries last, in order.
  CHECK(position_of(r.out, "\n  " + fixtures.path().string() + "\n") <
        position_of(r.out, "\n  " + more.path().string() + "\n"));
  CHECK(position_of(r.out, "\n  " + std::string(MR_BUILD_PLUGIN_DIR) + "\n") <
        position_of(r.out, "\n  " + fixtures.path().string() + "\n"));
}

TEST_CASE("cli: plugins list shows the shipped plugins of the build tree under their kinds",
          "[e2e]") {
#if !defined(MR_E2E_HAVE_RECIPE) || !defined(MR_E2E_HAVE_TORCH_BACKEND)
  MR_SKIP(
      "needs the recipe, torch backend and optimizer plugins (MR_BUILD_PLUGINS=ON, "
      "MR_WITH_TORCH=ON)");
#else
  const CliResult r = run_cli({"plugins", "list"});
  REQUIRE(r.exit_code == 0);
  const auto backend = position_of(r.out, "\nmodel_backend:\n");
  const auto rubric = position_of(r.out, "\njudge_rubric:\n");
  const auto meta = position_of(r.out, "\nmeta_judge:\n");
  const auto pairs = position_of(r.out, "\npair_selection:\n");
  const auto optimizer = position_of(r.out, "\noptimizer:\n");
  const auto evaluator = position_of(r.out, "\nevaluator:\n");
  const auto torch = position_of(r.out, "\n  torch ");
  CHECK((backend < torch && torch < rubric));
  const auto additive5 = position_of(r.out, "\n  additive5 ");
  CHECK((rubric < additive5 && additive5 < meta));
  const auto elo = position_of(r.out, "\n  pairwise_elo ");
  CHECK((meta < elo && elo < pairs));
  const auto lc = position_of(r.out, "\n  length_control ");
  CHECK((pairs < lc && lc < optimizer));
  const auto dpo = position_of(r.out, "\n  dpo ");
  CHECK((optimizer < dpo && dpo < evaluator));
  CHECK_THAT(
      r.out,
      Catch::Contains(
          "(" +
          fs::weakly_canonical(fs::path(MR_BUILD_PLUGIN_DIR) / "libmr_optimizers.so").string() +
          ")"));
#endif
}

TEST_CASE("cli: the build tree's plugin dir is searched only by the build tree's binary", "[e2e]") {
  // A copy of the binary elsewhere behaves like an installed one: it searches
  // <exe>/../lib/metareward/plugins and never the build tree.
  ScratchDir prefix("relocated");
  fs::create_directories(prefix.path() / "bin");
  fs::copy_file(MR_CLI_PATH, prefix.path() / "bin" / "metareward");
  const std::string binary = (prefix.path() / "bin" / "metareward").string();

  CliResult r = run_binary(binary, {"plugins", "list"});
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, !Catch::Contains(MR_BUILD_PLUGIN_DIR));
  CHECK_THAT(r.out, Catch::Contains("  " + (prefix.path() / MR_INSTALL_PLUGIN_DIR_REL).string() +
                                    " (missing)\n"));
  CHECK_THAT(r.out, Catch::Contains("model_backend:\n  (none found)\n"));
  CHECK_THAT(r.out, Catch::Contains("judge_rubric:\n  (none found)\n"));
  CHECK_THAT(r.out, Catch::Contains("optimizer:\n  (none found)\n"));

  SECTION("plugins in <prefix>/lib/metareward/plugins are found without --plugin-dir") {
    const fs::path installed = prefix.path() / MR_INSTALL_PLUGIN_DIR_REL;
    fs::create_directories(installed);
    fs::copy_file(MR_FIXTURE_OK, installed / "libfixture_ok.so");
    r = run_binary(binary, {"plugins", "list"});
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("judge_rubric:\n  fixture_ok "));
  }
  SECTION("$METAREWARD_PLUGIN_PATH directories are searched") {
    ScratchDir env_dir("env");
    fs::copy_file(MR_FIXTURE_OK, env_dir.path() / "libfixture_ok.so");
    r = run_binary(binary, {"plugins", "list"}, fs::temp_directory_path(),
                   {"METAREWARD_PLUGIN_PATH=/nonexistent/dir:" + env_dir.path().string()});
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("  /nonexistent/dir (missing)\n"));
    CHECK_THAT(r.out, Catch::Contains("judge_rubric:\n  fixture_ok "));
  }
}

TEST_CASE("cli: plugins describe prints a plugin's schema", "[e2e]") {
  ScratchDir fixtures("describe");
  fs::copy_file(MR_FIXTURE_OK, fixtures.path() / "libfixture_ok.so");
  const std::string dir = fixtures.path().string();
  SECTION("as a text table") {
    const CliResult r = run_cli({"--plugin-dir", dir, "plugins", "describe", "fixture_ok"});
    REQUIRE(r.exit_code == 0);
    CHECK(r.out ==
          "fixture_ok (judge_rubric plugin, version 1.2.3)\n"
          "  Loader fixture rubric\n"
          "  library: mr-fixture-ok 0.0.1 (" +
              fs::weakly_canonical(fixtures.path() / "libfixture_ok.so").string() +
              ")\n"
              "  select with: [judge_rubric] type = \"fixture_ok\"\n"
              "\n"
              "  KEY    TYPE  DEFAULT  CONSTRAINT\n"
              "  scale  int   5        x >= 1\n"
              "      Highest score.\n");
  }
  SECTION("as Markdown") {
    const CliResult r =
        run_cli({"plugins", "describe", "fixture_ok", "--markdown", "--plugin-dir", dir});
    REQUIRE(r.exit_code == 0);
    CHECK(
        r.out ==
        "## `fixture_ok`\n\nLoader fixture rubric\n\nKind `judge_rubric`, version 1.2.3. Select it "
        "with `type = \"fixture_ok\"` in `[judge_rubric]`.\n\n"
        "| Key | Type | Default | Constraint | Description |\n|---|---|---|---|---|\n"
        "| `scale` | int | `5` | x >= 1 | Highest score. |\n");
  }
  SECTION("a required key and a model backend's table") {
#ifndef MR_E2E_HAVE_TORCH_BACKEND
    MR_SKIP("needs the torch model backend plugin (MR_WITH_TORCH=ON)");
#endif
    const CliResult r = run_cli({"plugins", "describe", "torch", "--markdown"});
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("in `[models.<name>]`"));
    CHECK_THAT(r.out, Catch::Contains("| `path` | string | *required* |"));
  }
  SECTION("an unknown name suggests the closest one") {
    const CliResult r = run_cli({"--plugin-dir", dir, "plugins", "describe", "fixture_okk"});
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Catch::EndsWith("error: unknown plugin 'fixture_okk'; did you mean "
                                      "'fixture_ok'? (`metareward plugins list` shows the plugins "
                                      "found)\n"));
  }
  SECTION("NAME and --all exclude each other") {
    const CliResult r = run_cli({"plugins", "describe", "torch", "--all", "--markdown"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("give either a plugin NAME or --all"));
  }
}

TEST_CASE("cli: config check and show validate run configs", "[e2e]") {
#if !defined(MR_E2E_HAVE_RECIPE) || !defined(MR_E2E_HAVE_TORCH_BACKEND)
  MR_SKIP(
      "good_config() needs the recipe, torch backend and dpo plugins (MR_BUILD_PLUGINS=ON, "
      "MR_WITH_TORCH=ON)");
#endif
  ScratchDir dir("config");
  const fs::path good = dir.write("good.toml", good_config());
  const std::vector<std::string> check = {"config", "check"};
  auto with = [](std::vector<std::string> base, std::vector<std::string> more) {
    base.insert(base.end(), more.begin(), more.end());
    return base;
  };

  SECTION("a good file is OK and summarised") {
    const CliResult r = run_cli(with(check, {good.string()}));
    CHECK(r.exit_code == 0);
    CHECK(r.out == "OK: " + good.string() +
                       " is valid (2 iterations; model_backend torch, judge_rubric additive5, "
                       "meta_judge pairwise_elo, pair_selection length_control, optimizer dpo)\n");
  }
  SECTION("a bad file exits 2 naming file:line of each problem") {
    const fs::path bad =
        dir.write("bad.toml", good_config() + "\n[generation.actor]\ntemperature = \"hot\"\n");
    const CliResult r = run_cli(with(check, {bad.string()}));
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Catch::Contains("error: "));
    const std::string base = good_config();
    const auto line = std::count(base.begin(), base.end(), '\n') + 3;
    CHECK_THAT(r.err, Catch::Contains(bad.string() + ":" + std::to_string(line) +
                                      ":15: [generation.actor.temperature] expected float"));
  }
  SECTION("a TOML syntax error names file:line:column") {
    const fs::path broken = dir.write("broken.toml", "[run]\niterations = = 2\n");
    const CliResult r = run_cli(with(check, {broken.string()}));
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("error: " + broken.string() + ":2:"));
  }
  SECTION("a missing file") {
    const CliResult r = run_cli(with(check, {(dir.path() / "nope.toml").string()}));
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("nope.toml"));
  }
  SECTION("--set can fix a bad value") {
    const fs::path bad = dir.write("dtype.toml", good_config() + "\n");
    std::string text = mr::tests::read_text(bad);
    text.replace(text.find("bfloat16"), 8, "bf16");
    mr::tests::write_text(bad, text);
    CHECK(run_cli(with(check, {bad.string()})).exit_code == 2);
    const CliResult r =
        run_cli(with(check, {bad.string(), "--set", "models.policy.dtype=float16"}));
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::StartsWith("OK: "));
  }
  SECTION("--set can break a good file, and the message names the override") {
    const CliResult r = run_cli(with(check, {good.string(), "--set", "run.iterations=0"}));
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("--set"));
    CHECK_THAT(r.err, Catch::Contains("[run.iterations]"));
  }
  SECTION("later --set overrides win and change the summary") {
    const CliResult r = run_cli(with(check, {good.string(), "--set", "run.iterations=3", "--set",
                                             "judge_rubric.type=likert10"}));
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out,
               Catch::Contains("(3 iterations; model_backend torch, judge_rubric likert10,"));
  }
  SECTION("config show prints resolved TOML that validates again") {
    const CliResult shown =
        run_cli({"config", "show", good.string(), "--set", "optimizer.epochs=2"});
    REQUIRE(shown.exit_code == 0);
    CHECK_THAT(shown.out, Catch::Contains("epochs = 2"));
    CHECK_THAT(shown.out, Catch::Contains("beta = 0.2"));
    CHECK_THAT(shown.out, Catch::Contains("learning_rate = "));  // A default, filled in.
    const fs::path resolved = dir.write("resolved.toml", shown.out);
    const CliResult again = run_cli(with(check, {resolved.string()}));
    CHECK(again.exit_code == 0);
    const CliResult reshown = run_cli({"config", "show", resolved.string()});
    CHECK(reshown.out == shown.out);  // Resolving is idempotent.
  }
  SECTION("[plugins] libraries load relative to the config file") {
    fs::create_directories(dir.path() / "extra");
    fs::copy_file(MR_FIXTURE_OK, dir.path() / "extra" / "libfixture.so");
    std::string text = good_config();
    text.replace(text.find("type = \"additive5\""), 18, "type = \"fixture_ok\"\nscale = 9");
    const fs::path cfg =
        dir.write("lib.toml", "[plugins]\nlibraries = [\"extra/libfixture.so\"]\n\n" + text);
    const CliResult r = run_cli(with(check, {cfg.string()}), fs::temp_directory_path());
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("judge_rubric fixture_ok"));
  }
  SECTION("a key group as an inline table: lora = { r = 8 } is lora = true, lora_r = 8") {
    const fs::path cfg = dir.write("lora.toml", good_config() + "lora = { r = 8, alpha = 16.0 }\n");
    const CliResult shown = run_cli({"config", "show", cfg.string()});
    INFO(shown.err);
    REQUIRE(shown.exit_code == 0);
    CHECK_THAT(shown.out, Catch::Contains("\nlora = true\n"));
    CHECK_THAT(shown.out, Catch::Contains("\nlora_r = 8\n"));
    CHECK_THAT(shown.out, Catch::Contains("\nlora_alpha = 16.0\n"));
    // A misspelt member is an unknown key with a suggestion; one given both ways is an error.
    const fs::path typo = dir.write("typo.toml", good_config() + "lora = { rr = 8 }\n");
    const CliResult t = run_cli(with(check, {typo.string()}));
    CHECK(t.exit_code == 2);
    CHECK_THAT(t.err, Catch::Contains("lora_rr") && Catch::Contains("did you mean 'lora_r'"));
    const fs::path twice =
        dir.write("twice.toml", good_config() + "lora_r = 4\nlora = { r = 8 }\n");
    const CliResult w = run_cli(with(check, {twice.string()}));
    CHECK(w.exit_code == 2);
    CHECK_THAT(w.err, Catch::Contains("given twice"));
  }
  SECTION("an [evaluation] table selects an evaluator, validated like every plugin table") {
    const std::string lib = "[plugins]\nlibraries = [\"" + std::string(MR_FIXTURE_EVALUATOR) +
                            "\"]\n\n" + good_config();
    const fs::path cfg =
        dir.write("eval.toml", lib + "\n[evaluation]\ntype = \"fixture_eval\"\nprompts = 4\n");
    const CliResult r = run_cli(with(check, {cfg.string()}));
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::EndsWith("optimizer dpo, evaluator fixture_eval)\n"));
    const CliResult shown = run_cli({"config", "show", cfg.string()});
    CHECK(shown.exit_code == 0);
    CHECK_THAT(shown.out, Catch::EndsWith("\n[evaluation]\ntype = \"fixture_eval\"\nfail_at = -1\n"
                                          "max_new_tokens = 8\nnan_at = -1\nprompts = 4\n"));
    // Without the table there is no evaluation, and no default evaluator is asked for.
    const CliResult plain = run_cli({"config", "show", good.string()});
    CHECK(plain.exit_code == 0);
    CHECK_THAT(plain.out, !Catch::Contains("[evaluation]"));

    const fs::path bad = dir.write(
        "eval_bad.toml", lib + "\n[evaluation]\ntype = \"fixture_eval\"\nprompts = 0\nseeds = 2\n");
    const CliResult b = run_cli(with(check, {bad.string()}));
    CHECK(b.exit_code == 2);
    CHECK_THAT(b.err, Catch::Contains("[evaluation.prompts] 0 is out of range"));
    CHECK_THAT(b.err, Catch::Contains("[evaluation.seeds] unknown key 'seeds' for evaluator "
                                      "'fixture_eval'"));
    const fs::path untyped = dir.write("eval_untyped.toml", lib + "\n[evaluation]\nprompts = 2\n");
    const CliResult u = run_cli(with(check, {untyped.string()}));
    CHECK(u.exit_code == 2);
    CHECK_THAT(u.err, Catch::Contains("[evaluation.type] missing required key 'type' (the "
                                      "evaluator plugin to use; available: ") &&
                          Catch::Contains("fixture_eval"));
    const fs::path wrong_kind =
        dir.write("eval_kind.toml", lib + "\n[evaluation]\ntype = \"additive5\"\n");
    const CliResult w = run_cli(with(check, {wrong_kind.string()}));
    CHECK(w.exit_code == 2);
    CHECK_THAT(w.err, Catch::Contains("[evaluation.type] 'additive5' is a judge_rubric plugin, not "
                                      "an evaluator (available evaluator plugins: ") &&
                          Catch::Contains("fixture_eval"));
  }
  SECTION("`eval` needs an [evaluation] table") {
    const CliResult r = run_cli({"eval", good.string()}, dir.path());
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("error: " + good.string() +
                                      ": no [evaluation] table; `metareward eval` needs one whose "
                                      "'type' names an evaluator plugin (available: "));
    CHECK_FALSE(fs::exists(dir.path() / "eval"));
  }
  SECTION("[plugins] libraries naming a bad library is fatal with the loader's message") {
    const fs::path cfg = dir.write("badlib.toml", "[plugins]\nlibraries = [\"" +
                                                      std::string(MR_FIXTURE_BAD_API_VERSION) +
                                                      "\"]\n\n" + good_config());
    const CliResult r = run_cli(with(check, {cfg.string()}));
    CHECK(r.exit_code == 1);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Catch::EndsWith("error: plugin '" +
                                      fs::weakly_canonical(MR_FIXTURE_BAD_API_VERSION).string() +
                                      "': API version mismatch (plugin " +
                                      std::to_string(MR_PLUGIN_API_VERSION + 100) + ", host " +
                                      std::to_string(MR_PLUGIN_API_VERSION) +
                                      "); rebuild it against metareward SDK " MR_SDK_VERSION "\n"));
  }
  SECTION("[plugins] dirs with bad files only warn") {
    const fs::path cfg =
        dir.write("baddir.toml", "[plugins]\ndirs = [\"" +
                                     fs::path(MR_FIXTURE_BAD_API_VERSION).parent_path().string() +
                                     "\"]\n\n" + good_config());
    const CliResult r = run_cli(with(check, {cfg.string()}));
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.err, Catch::Contains("skipping plugin '"));
    CHECK_THAT(r.err, Catch::Contains("API version mismatch"));
  }
}

TEST_CASE("cli: docs/config_reference.md matches `plugins describe --all --markdown`",
          "[e2e][docs]") {
#ifndef MR_DOCS_CANONICAL
  MR_SKIP(
      "docs/config_reference.md is generated from the full build "
      "(MR_WITH_TORCH=ON, MR_BUILD_PLUGINS=ON); this build has a different plugin set");
#endif
  // Generated from the shipped plugins only (no test fixtures).
  const CliResult r = run_cli({"plugins", "describe", "--all", "--markdown"});
  REQUIRE(r.exit_code == 0);
  const fs::path docs = fs::path(MR_SOURCE_DIR) / "docs" / "config_reference.md";
  const std::string committed = fs::exists(docs) ? mr::tests::read_text(docs) : "";
  if (r.out != committed) FAIL("docs/config_reference.md is stale: run `make docs`");
}

TEST_CASE("cli: plugin libraries can contribute commands", "[e2e]") {
  ScratchDir fixtures("commands");
  fs::copy_file(MR_FIXTURE_COMMAND, fixtures.path() / "libfixture_command.so");
  const std::string dir = fixtures.path().string();
  SECTION("the command runs with its arguments") {
    const CliResult r = run_cli({"--plugin-dir", dir, "fixture-echo", "a", "b"});
    CHECK(r.exit_code == 0);
    CHECK(r.out == "echo: a b (threads>0: yes)\n");
  }
  SECTION("its exit status is the command's") {
    CHECK(run_cli({"--plugin-dir", dir, "fixture-echo", "fail"}).exit_code == 3);
  }
  SECTION("a ConfigError exits 2 and any other error exits 1, each with its message") {
    const CliResult config = run_cli({"--plugin-dir", dir, "fixture-echo", "bad-config"});
    CHECK(config.exit_code == 2);
    // Each names the command and its library (the plugin-call guard), then the message.
    const std::string where =
        "error: command 'fixture-echo' (library " + dir + "/libfixture_command.so), run(): ";
    CHECK_THAT(config.err, Catch::Contains(where + "fixture-echo: bad config value"));
    const CliResult boom = run_cli({"--plugin-dir", dir, "fixture-echo", "boom"});
    CHECK(boom.exit_code == 1);
    CHECK_THAT(boom.err, Catch::Contains(where + "std::runtime_error: fixture-echo exploded"));
  }
  SECTION("--help lists plugin commands with their library") {
    const CliResult r = run_cli({"--plugin-dir", dir, "--help"});
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("Commands from plugins:"));
    CHECK_THAT(r.out, Catch::Contains("fixture-echo"));
    CHECK_THAT(r.out, Catch::Contains("[mr-fixture-command]"));
  }
  SECTION("HostContext::run_command runs host and plugin commands in-process") {
    fs::copy_file(MR_FIXTURE_OK, fixtures.path() / "libfixture_ok.so");
    // The nested command sees the same --plugin-dir: the fixture rubric is listed.
    const CliResult list = run_cli({"--plugin-dir", dir, "fixture-run", "plugins", "list"});
    INFO(list.err);
    CHECK(list.exit_code == 0);
    CHECK_THAT(list.out,
               Catch::Contains("\n  fixture_ok ") && Catch::Contains("from mr-fixture-ok 0.0.1 ("));
    CHECK_THAT(list.out, Catch::EndsWith("fixture-run: 'plugins list' exited 0\n"));
    // A plugin command through another plugin command.
    const CliResult echo = run_cli({"--plugin-dir", dir, "fixture-run", "fixture-echo", "a", "b"});
    CHECK(echo.exit_code == 0);
    CHECK(echo.out == "echo: a b (threads>0: yes)\nfixture-run: 'fixture-echo a b' exited 0\n");
    // Errors are reported and mapped to exit codes as on the command line, not thrown.
    const CliResult unknown = run_cli({"--plugin-dir", dir, "fixture-run", "frobnicate"});
    CHECK(unknown.exit_code == 2);
    CHECK_THAT(unknown.err, Catch::StartsWith("error: unknown command 'frobnicate'"));
    CHECK(unknown.out == "fixture-run: 'frobnicate' exited 2\n");
    const CliResult boom = run_cli({"--plugin-dir", dir, "fixture-run", "fixture-echo", "boom"});
    CHECK(boom.exit_code == 1);
    CHECK_THAT(boom.err, Catch::Contains("error: fixture-echo exploded"));
    // The log level carries over: at debug, both the outer and the nested command log their
    // plugin directory scan.
    const CliResult debug =
        run_cli({"--log-level", "debug", "--plugin-dir", dir, "fixture-run", "plugins", "list"});
    CHECK(debug.exit_code == 0);
    const std::string scan = "plugin directory '" + dir + "': ";
    std::size_t count = 0;
    for (auto pos = debug.err.find(scan); pos != std::string::npos;
         pos = debug.err.find(scan, pos + 1))
      ++count;
    CHECK(count == 2);
  }
  SECTION("without the library the command is unknown") {
    const CliResult r = run_cli({"fixture-echo"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("unknown command 'fixture-echo'"));
  }
}
