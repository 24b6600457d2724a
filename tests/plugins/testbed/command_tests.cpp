// `metareward testbed data` (and its alias `testbed-data`) end to end: the built binary with the
// mr_testbed plugin writes the files (identical to the library's output, reproducible), and
// reports usage errors clearly; `metareward testbed` dispatches its subcommands.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_runner.hpp"
#include "metareward/testbed/dataset.hpp"

namespace fs = std::filesystem;
namespace tb = mr::plugins::testbed;
using mr::tests::CliResult;
using mr::tests::read_text;
using mr::tests::run_cli;
using mr::tests::ScratchDir;

namespace {

CliResult testbed_data(const std::vector<std::string>& args) {
  std::vector<std::string> all = {"--plugin-dir", MR_TESTBED_PLUGIN_DIR, "testbed-data"};
  all.insert(all.end(), args.begin(), args.end());
  return run_cli(all);
}

std::vector<std::string> lines_of(const fs::path& file) {
  std::vector<std::string> out;
  std::istringstream in(read_text(file));
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace

TEST_CASE("testbed-data: writes the dataset end to end", "[testbed][command]") {
  ScratchDir scratch("testbed_data");
  const fs::path out = scratch.path() / "data";
  const std::vector<std::string> args = {"--out",
                                         out.string(),
                                         "--seed",
                                         "7",
                                         "--sft-examples",
                                         "120",
                                         "--train-prompts=40",
                                         "--eval-prompts",
                                         "25",
                                         "--p-correct",
                                         "0.5",
                                         "--p-verbose",
                                         "0.4"};
  const CliResult r = testbed_data(args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("wrote 120 SFT rows") && Catch::Contains("40 train prompts") &&
                        Catch::Contains("25 eval prompts"));
  const auto sft = lines_of(out / "sft.jsonl");
  const auto train = lines_of(out / "train_prompts.jsonl");
  const auto eval = lines_of(out / "eval_prompts.jsonl");
  CHECK(sft.size() == 120);
  CHECK(train.size() == 40);
  CHECK(eval.size() == 25);
  for (const auto& line : eval) {
    const auto row = nlohmann::json::parse(line);
    CHECK(tb::instance_from_row(row["task"].get<std::string>(), row["prompt"].get<std::string>(),
                                row["answer"].get<std::string>())
              .answer == row["answer"]);
  }
  SECTION("the files are what the library builds from the same options") {
    tb::DatasetOptions o;
    o.seed = 7;
    o.sft_examples = 120;
    o.train_prompts = 40;
    o.eval_prompts = 25;
    o.teacher = {0.5, 0.4};
    const tb::Dataset d = tb::build_dataset(o);
    CHECK(sft == tb::sft_lines(d));
    CHECK(train == tb::train_prompt_lines(d));
    CHECK(eval == tb::eval_prompt_lines(d));
    CHECK(read_text(out / "manifest.json") == tb::manifest_text(d, o));
  }
  SECTION("`testbed data` (the subcommand) writes the same files as the alias") {
    std::vector<std::string> sub = {"--plugin-dir", MR_TESTBED_PLUGIN_DIR, "testbed", "data"};
    sub.insert(sub.end(), args.begin(), args.end());
    sub[5] = (scratch.path() / "sub").string();
    const CliResult s = run_cli(sub);
    INFO(s.err);
    REQUIRE(s.exit_code == 0);
    CHECK_THAT(s.out, Catch::Contains("testbed data: wrote 120 SFT rows"));
    for (const char* name :
         {"sft.jsonl", "train_prompts.jsonl", "eval_prompts.jsonl", "manifest.json"})
      CHECK(read_text(scratch.path() / "sub" / name) == read_text(out / name));
  }
  SECTION("a second run gives byte-identical files") {
    std::vector<std::string> again = args;
    again[1] = (scratch.path() / "again").string();
    REQUIRE(testbed_data(again).exit_code == 0);
    for (const char* name :
         {"sft.jsonl", "train_prompts.jsonl", "eval_prompts.jsonl", "manifest.json"})
      CHECK(read_text(scratch.path() / "again" / name) == read_text(out / name));
  }
}

TEST_CASE("testbed-data: usage errors exit 2 with a clear message", "[testbed][command]") {
  ScratchDir scratch("testbed_usage");
  const std::string out = (scratch.path() / "d").string();
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{}, "--out DIR is required"},
      {{"--seed", "3"}, "--out DIR is required"},
      {{"--out", out, "--p-correct", "1.5"}, "--p-correct must be in [0, 1], got 1.5"},
      {{"--out", out, "--p-verbose", "often"}, "--p-verbose expects a number in [0, 1]"},
      {{"--out", out, "--seed", "-1"}, "--seed expects a non-negative integer, got '-1'"},
      {{"--out", out, "--sft-examples", "12x"}, "--sft-examples expects a non-negative integer"},
      {{"--out", out, "--eval-prompts", "99999999"}, "--eval-prompts must be at most 10000000"},
      {{"--out", out, "--bogus", "1"}, "unknown option '--bogus'"},
      {{"--out", out, "extra"}, "unexpected argument 'extra'"},
      {{"--out"}, "--out needs a value"},
      {{"--out", out, "--seed", "1", "--seed", "2"}, "--seed is given more than once"},
      {{"--out", out, "--judge-share", "0.8", "--meta-share", "0.3"},
       "--judge-share + --meta-share must be at most 1"},
  };
  for (const auto& c : cases) {
    const CliResult r = testbed_data(c.args);
    std::string shown;
    for (const auto& a : c.args) shown += " " + a;
    INFO("args:" << shown);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(c.message) && Catch::Contains("usage: metareward "
                                                                    "testbed-data"));
  }
  CHECK_FALSE(fs::exists(out));  // nothing written on a usage error
  SECTION("--help prints the usage with the defaults and exits 0") {
    const CliResult r = testbed_data({"--help"});
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("--p-correct X") && Catch::Contains("[0.6]") &&
                          Catch::Contains("eval_prompts.jsonl"));
  }
  SECTION("the host lists the command") {
    const CliResult r = run_cli({"--plugin-dir", MR_TESTBED_PLUGIN_DIR, "--help"});
    CHECK_THAT(r.out, Catch::Contains("testbed-data"));
  }
}

TEST_CASE("testbed: the command dispatches its subcommands", "[testbed][command]") {
  auto testbed = [](const std::vector<std::string>& args) {
    std::vector<std::string> all = {"--plugin-dir", MR_TESTBED_PLUGIN_DIR, "testbed"};
    all.insert(all.end(), args.begin(), args.end());
    return run_cli(all);
  };
  SECTION("--help lists the subcommands") {
    const CliResult r = testbed({"--help"});
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("data") && Catch::Contains("bootstrap"));
  }
  SECTION("no subcommand, or an unknown one, is a usage error") {
    const CliResult none = testbed({});
    CHECK(none.exit_code == 2);
    CHECK_THAT(none.err, Catch::Contains("a subcommand is required"));
    const CliResult bogus = testbed({"bogus"});
    CHECK(bogus.exit_code == 2);
    CHECK_THAT(bogus.err, Catch::Contains("unknown subcommand 'bogus'"));
  }
  SECTION("subcommand usage errors name the subcommand") {
    const CliResult r = testbed({"data", "--seed", "x"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("metareward testbed data: --seed expects") &&
                          Catch::Contains("usage: metareward testbed data"));
    const CliResult b = testbed({"bootstrap", "--size", "tiny"});
    CHECK(b.exit_code == 2);
    CHECK_THAT(b.err, Catch::Contains("--out DIR is required") &&
                          Catch::Contains("usage: metareward testbed bootstrap"));
    const CliResult h = testbed({"bootstrap", "--help"});
    CHECK(h.exit_code == 0);
    CHECK_THAT(h.out, Catch::Contains("--epochs N"));
  }
}
