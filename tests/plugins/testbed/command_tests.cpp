// `metareward testbed data` (and its alias `testbed-data`) end to end: the built binary with the
// mr_testbed plugin writes the files (identical to the library's output, reproducible), and
// reports usage errors clearly; the host dispatches the subcommands of `metareward testbed`.
#include <catch2/catch.hpp>

#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_runner.hpp"
#include "metareward/testbed/commands.hpp"
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
  SECTION("--families restricts every file to those families and is recorded") {
    std::vector<std::string> some = args;
    some[1] = (scratch.path() / "some").string();
    some.insert(some.end(), {"--families", "count,add"});
    const CliResult s = testbed_data(some);
    INFO(s.err);
    REQUIRE(s.exit_code == 0);
    std::map<std::string, int> seen;
    auto family_of = [](const std::string& prompt) {
      const auto t = tb::parse_prompt(prompt);
      REQUIRE(t);
      return std::string(tb::family_name(t->family));
    };
    for (const auto& line : lines_of(scratch.path() / "some" / "train_prompts.jsonl"))
      ++seen[family_of(nlohmann::json::parse(line)["prompt"].get<std::string>())];
    for (const auto& line : lines_of(scratch.path() / "some" / "eval_prompts.jsonl"))
      ++seen[nlohmann::json::parse(line)["task"].get<std::string>()];
    for (const auto& line : lines_of(scratch.path() / "some" / "sft.jsonl")) {
      const auto row = nlohmann::json::parse(line);
      if (row["kind"] == "instruction")  // judge rows embed the task in a rubric
        ++seen[family_of(row["messages"][0]["content"].get<std::string>())];
    }
    CHECK(seen.size() == 2);
    CHECK(seen["count"] > 0);
    CHECK(seen["add"] > 0);
    const auto manifest =
        nlohmann::json::parse(read_text(scratch.path() / "some" / "manifest.json"));
    CHECK(manifest["options"]["families"] == nlohmann::json::array({"count", "add"}));
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
      {{"--out", out, "--bogus", "1"}, "unrecognised option '--bogus'"},
      {{"--out", out, "--p-cor", "0.5"}, "unrecognised option '--p-cor'"},  // no abbreviations
      {{"--out", out, "extra"}, "unexpected argument 'extra'"},
      {{"--out"}, "the required argument for option '--out' is missing"},
      {{"--out", out, "--seed", "1", "--seed", "2"},
       "option '--seed' cannot be specified more than once"},
      {{"--out", out, "--judge-share", "0.8", "--meta-share", "0.3"},
       "--judge-share + --meta-share must be at most 1"},
      {{"--out", out, "--families", "add,divide"}, "--families: unknown task family 'divide'"},
      {{"--out", out, "--families", ""}, "--families: unknown task family ''"},
      {{"--out", out, "--families", "add,"}, "--families: unknown task family ''"},
      {{"--out", out, "--families", "count,add,count"}, "--families names 'count' twice"},
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

TEST_CASE("testbed: the host dispatches the subcommands of the command table",
          "[testbed][command]") {
  auto testbed = [](const std::vector<std::string>& args) {
    std::vector<std::string> all = {"--plugin-dir", MR_TESTBED_PLUGIN_DIR, "testbed"};
    all.insert(all.end(), args.begin(), args.end());
    return run_cli(all);
  };
  // The host's usage of the group: both subcommands, one line each.
  auto check_lists_subcommands = [](const std::string& text) {
    CHECK_THAT(text, Catch::Contains("Usage: metareward testbed SUBCOMMAND") &&
                         Catch::Contains("\n  data ") && Catch::Contains("\n  bootstrap "));
  };
  SECTION("--help lists the subcommands with their summaries") {
    const CliResult r = testbed({"--help"});
    CHECK(r.exit_code == 0);
    check_lists_subcommands(r.out);
    CHECK_THAT(r.out, Catch::Contains("Write the bootstrap dataset") &&
                          Catch::Contains("Make the seed model from scratch"));
    CHECK(r.err.empty());
  }
  SECTION("no subcommand is a usage error listing data and bootstrap") {
    const CliResult none = testbed({});
    CHECK(none.exit_code == 2);
    CHECK_THAT(none.err, Catch::Contains("error: 'testbed' needs a subcommand"));
    check_lists_subcommands(none.err);
    CHECK(none.out.empty());
  }
  SECTION("an unknown subcommand is a usage error") {
    const CliResult nope = testbed({"nope"});
    CHECK(nope.exit_code == 2);
    CHECK_THAT(nope.err, Catch::Contains("error: unknown subcommand 'testbed nope'"));
    check_lists_subcommands(nope.err);
  }
  SECTION("a value out of range is a usage error naming the flag; nothing is written") {
    ScratchDir scratch("testbed_range");
    const fs::path out = scratch.path() / "x";
    const CliResult r = testbed({"data", "--p-correct", "1.5", "--out", out.string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err,
               Catch::Contains("metareward testbed data: --p-correct must be in [0, 1], got 1.5") &&
                   Catch::Contains("usage: metareward testbed data"));
    CHECK(r.out.empty());
    CHECK_FALSE(fs::exists(out));
    const CliResult eq = testbed({"data", "--out=" + out.string(), "--p-correct=1.5"});
    CHECK(eq.exit_code == 2);
    CHECK_THAT(eq.err, Catch::Contains("--p-correct must be in [0, 1], got 1.5"));
  }
  SECTION("`testbed data --help` prints its options with the defaults") {
    for (const auto& args :
         {std::vector<std::string>{"data", "--help"}, std::vector<std::string>{"--help", "data"},
          std::vector<std::string>{"data", "-h"}}) {
      const CliResult r = testbed(args);
      INFO(args[0] << " " << args[1]);
      CHECK(r.exit_code == 0);
      CHECK_THAT(r.out, Catch::Contains("usage: metareward testbed data --out DIR") &&
                            Catch::Contains("--out DIR") && Catch::Contains("--p-correct X") &&
                            Catch::Contains("[0.6]") && Catch::Contains("--meta-flip X"));
      CHECK(r.err.empty());
    }
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
    const CliResult u = testbed({"bootstrap", "--out", "d", "--frob"});
    CHECK(u.exit_code == 2);
    CHECK_THAT(u.err,
               Catch::Contains("metareward testbed bootstrap: unrecognised option '--frob'"));
    const CliResult h = testbed({"bootstrap", "--help"});
    CHECK(h.exit_code == 0);
    CHECK_THAT(h.out, Catch::Contains("--epochs N") && Catch::Contains("[tiny 1, small 4]"));
  }
}

TEST_CASE(
    "testbed: registration gives the evaluator, the controlled judge, the command group and the "
    "alias",
    "[testbed][command]") {
  class Collector : public mr::sdk::Registrar {
   public:
    void add(mr::sdk::PluginDescriptor d) override { plugins.push_back(std::move(d)); }
    void add_command(mr::sdk::CommandDescriptor c) override { commands.push_back(std::move(c)); }
    std::vector<mr::sdk::PluginDescriptor> plugins;
    std::vector<mr::sdk::CommandDescriptor> commands;
  } c;
  tb::register_testbed_plugins(c);
  REQUIRE(c.plugins.size() == 2);
  CHECK(c.plugins[0].name == "testbed");
  CHECK(c.plugins[0].kind() == mr::sdk::PluginKind::Evaluator);
  CHECK(c.plugins[1].name == "testbed_oracle");
  CHECK(c.plugins[1].kind() == mr::sdk::PluginKind::ModelBackend);
  REQUIRE(c.commands.size() == 2);
  const auto& group = c.commands[0];
  CHECK(group.name == "testbed");
  CHECK_FALSE(group.run);  // Only groups: the host dispatches.
  REQUIRE(group.subcommands.size() == 2);
  CHECK(group.subcommands[0].name == "data");
  CHECK(group.subcommands[1].name == "bootstrap");
  for (const auto& sub : group.subcommands) {
    CHECK(sub.run);
    CHECK_FALSE(sub.summary.empty());
    CHECK(sub.subcommands.empty());
  }
  CHECK(c.commands[1].name == "testbed-data");
  CHECK(c.commands[1].run);
  CHECK(c.commands[1].subcommands.empty());
}
