// End-to-end tests of `metareward launch`: its argument errors (usage, exit code 2, before any
// rank starts), the torchrun environment it gives each rank, "[rank K] " prefixes, and the exit
// code of a failing rank. The runs it launches are tested in distributed_tests.cpp.
#include <catch2/catch.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli_runner.hpp"

using Catch::Contains;
using mr::tests::CliResult;
using mr::tests::run_cli;
using mr::tests::ScratchDir;

TEST_CASE("launch: argument errors are usage errors naming the flag", "[e2e][launch]") {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"launch", "run", "x.toml"}, "--nproc-per-node N is required"},
      {{"launch", "--nproc-per-node", "0", "run", "x.toml"},
       "--nproc-per-node must be an integer in 1..4096, got '0'"},
      {{"launch", "--nproc-per-node", "two", "run", "x.toml"},
       "--nproc-per-node must be an integer in 1..4096, got 'two'"},
      {{"launch", "--nproc-per-node=2x", "run", "x.toml"},
       "--nproc-per-node must be an integer in 1..4096, got '2x'"},
      {{"launch", "--nproc-per-node"}, "--nproc-per-node needs a value"},
      {{"launch", "--nproc-per-node", "2"}, "missing the COMMAND to start"},
      {{"launch", "--nproc-per-node", "2", "--"}, "missing the COMMAND to start"},
      {{"launch", "--nproc-per-node", "2", "--nnodes", "2", "--node-rank", "2", "run", "x.toml"},
       "--node-rank 2 is not below --nnodes 2"},
      {{"launch", "--nproc-per-node", "2", "--nnodes", "2", "run", "x.toml"},
       "--nnodes > 1 needs --master-addr"},
      {{"launch", "--nproc-per-node", "2", "--master-port", "70000", "run", "x.toml"},
       "--master-port must be an integer in 1..65535, got '70000'"},
      {{"launch", "--nproc-per-node", "2", "--nporc", "3", "run", "x.toml"},
       "unknown option '--nporc'"},
      {{"launch", "--nproc-per-node", "2", "launch", "--nproc-per-node", "2", "run", "x.toml"},
       "cannot launch `launch` itself"},
  };
  for (const auto& c : cases) {
    std::string line;
    for (const auto& a : c.args) line += a + " ";
    INFO(line);
    const CliResult r = run_cli(c.args);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Contains("launch: " + c.message));
    CHECK_THAT(r.err, !Contains("[rank "));  // refused before starting any rank
  }
}

TEST_CASE("launch: --help prints the usage", "[e2e][launch]") {
  const CliResult r = run_cli({"launch", "--help"});
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Contains("--nproc-per-node"));
  CHECK_THAT(r.out, Contains("--master-addr"));
}

TEST_CASE("launch: every rank's lines are prefixed and a failing rank's code is the launcher's",
          "[e2e][launch]") {
  SECTION("a command that succeeds on every rank") {
    const CliResult r = run_cli({"launch", "--nproc-per-node", "3", "--", "--version"});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    std::set<std::string> prefixes;
    std::istringstream lines(r.out);
    for (std::string l; std::getline(lines, l);) {
      REQUIRE(l.rfind("[rank ", 0) == 0);
      CHECK_THAT(l, Contains("metareward "));
      prefixes.insert(l.substr(0, l.find(']') + 1));
    }
    CHECK(prefixes == std::set<std::string>{"[rank 0]", "[rank 1]", "[rank 2]"});
  }
  SECTION("a config that does not exist: every rank exits 2, and so does the launcher") {
    ScratchDir dir("launch_missing");
    const CliResult r =
        run_cli({"launch", "--nproc-per-node", "2", "--", "run", "missing.toml"}, dir.path());
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Contains("[rank 0] "));
    CHECK_THAT(r.err, Contains("missing.toml"));
    CHECK_THAT(r.err, Contains("exited with code 2; stopping the other ranks"));
  }
}
