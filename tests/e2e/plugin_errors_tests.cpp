// End-to-end: every call into a plugin is guarded. An exception of any type thrown by a
// third-party rubric (tests/loader/fixtures/throwing_rubric.cpp) stops `metareward run` with an
// error that names the plugin, its library, the call, the stage and the item — on stderr and in
// RUN/run.log — also when an evaluator is configured (which calls the rubric itself).
#include <catch2/catch.hpp>

#include <regex>
#include <string>

#include "cli_runner.hpp"
#include "run_setup.hpp"

namespace fs = std::filesystem;
using mr::tests::CliResult;
using mr::tests::read_text;
using mr::tests::RunSetup;

#ifdef MR_E2E_HAVE_TORCH_BACKEND
namespace {

/// RunSetup's config with the throwing fixture rubric in place of additive5 (and, with
/// `evaluator`, the fixture evaluator, which parses judgments with the run's rubric).
std::string throwing_config(const std::string& base,
                            const std::string& throw_in,
                            const std::string& exception,
                            bool evaluator = false) {
  const auto start = base.find("[judge_rubric]");
  const auto end = base.find("[meta_judge]");
  REQUIRE(start != std::string::npos);
  REQUIRE(end != std::string::npos);
  std::string libraries = "\"" + std::string(MR_FIXTURE_THROWING_RUBRIC) + "\"";
  if (evaluator) libraries += ", \"" + std::string(MR_FIXTURE_EVALUATOR) + "\"";
  std::string config = "[plugins]\nlibraries = [" + libraries + "]\n" + base.substr(0, start) +
                       "[judge_rubric]\ntype = \"fixture_throwing\"\nthrow_in = \"" + throw_in +
                       "\"\nexception = \"" + exception + "\"\n\n" + base.substr(end);
  if (evaluator) config += "\n[evaluation]\ntype = \"fixture_eval\"\nprompts = 2\n";
  return config;
}

bool has_match(const std::string& text, const std::string& pattern) {
  return std::regex_search(text, std::regex(pattern));
}

}  // namespace

TEST_CASE("run: a plugin's exception of any type names the plugin, library, call, stage and item",
          "[e2e][run][guard]") {
  struct Case {
    const char* exception;
    const char* message;  ///< What the error says after the item.
  };
  const Case cases[] = {
      {"stod", "std::invalid_argument: stod"},
      {"data_error", "fixture data failure"},
      {"int", "threw a non-standard exception of type 'int'"},
      {"custom", "\\(anonymous namespace\\)::FixtureError: fixture custom failure"},
  };
  const std::string library = std::regex_replace(std::string(MR_FIXTURE_THROWING_RUBRIC),
                                                 std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)");
  for (const Case& c : cases) {
    DYNAMIC_SECTION("parse() throws " << c.exception) {
      RunSetup s;
      mr::tests::write_text(s.config, throwing_config(read_text(s.config), "parse", c.exception));
      const CliResult r = s.run();
      INFO(r.err);
      CHECK(r.exit_code == 1);
      const std::string expected = "judge rubric 'fixture_throwing' \\(library " + library +
                                   "\\), parse\\(\\) at stage judge, iteration 1, on judgment "
                                   "'p[0-9]+/r[0-9]+/j[0-9]+': " +
                                   c.message;
      CHECK(has_match(r.err, "error: " + expected));
      CHECK(has_match(read_text(s.out / "run.log"), "error: " + expected));
      // The run stopped in the judge stage: nothing after it was written.
      CHECK(fs::exists(s.out / "iter_1" / "responses.jsonl"));
      CHECK_FALSE(fs::exists(s.out / "iter_1" / "actor_pairs.jsonl"));
    }
  }
  SECTION("build_prompt() throws: the item is the response") {
    RunSetup s;
    mr::tests::write_text(s.config, throwing_config(read_text(s.config), "build_prompt", "stod"));
    const CliResult r = s.run();
    INFO(r.err);
    CHECK(r.exit_code == 1);
    CHECK(has_match(r.err, "judge rubric 'fixture_throwing' \\(library " + library +
                               "\\), build_prompt\\(\\) at stage judge, iteration 1, on response "
                               "'p[0-9]+/r[0-9]+': std::invalid_argument: stod"));
  }
  SECTION("with an evaluator configured, the rubric it calls is named, not only the evaluator") {
    RunSetup s;
    mr::tests::write_text(
        s.config, throwing_config(read_text(s.config), "parse", "stod", /*evaluator=*/true));
    const CliResult r = s.run();
    INFO(r.err);
    CHECK(r.exit_code == 1);
    // The seed evaluation runs first; the error shows both calls, innermost last.
    CHECK(has_match(r.err,
                    "evaluator 'fixture_eval' \\(library [^)]+\\), evaluate\\(\\) at stage "
                    "evaluation, iteration 0: judge rubric 'fixture_throwing' \\(library " +
                        library +
                        "\\), parse\\(\\) at stage evaluation, iteration 0: "
                        "std::invalid_argument: stod"));
  }
  SECTION("a rubric option its constructor rejects leaves no run directory behind") {
    RunSetup s;
    const std::string base = read_text(s.config);
    mr::tests::write_text(s.config, throwing_config(base, "constructor", "stod"));
    const CliResult rejected = s.run();
    CHECK(rejected.exit_code == 1);
    CHECK_THAT(rejected.err, Catch::Contains("plugin 'fixture_throwing'") &&
                                 Catch::Contains("'constructor' is rejected here"));
    CHECK_FALSE(fs::exists(s.out));
    // `config check` finds it too, without loading a model.
    const CliResult check =
        mr::tests::run_cli({"config", "check", s.config.string()}, s.dir.path());
    CHECK(check.exit_code == 1);
    CHECK_THAT(check.err, Catch::Contains("'constructor' is rejected here"));
    // The corrected retry is not blocked by anything the failed attempt left.
    mr::tests::write_text(s.config, throwing_config(base, "", "stod"));
    const CliResult retry = s.run({"--iterations", "1"});
    INFO(retry.err);
    CHECK(retry.exit_code == 0);
    CHECK(fs::exists(s.out / "iter_1" / "metrics.json"));
  }
}
#endif
