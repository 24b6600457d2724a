// The one Catch2 main shared by every test binary. It runs the session as Catch2's own main does
// and then maps the result to the exit status ctest reads:
//   failures            Catch2's status (the failed assertions), never kSkipExitCode
//   a skip, no failure  kSkipExitCode (ctest: SKIP_RETURN_CODE, reported as skipped)
//   otherwise           0
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "skip.hpp"

namespace {

/// (test case, reason) of every skip, in order, one entry per test case.
std::vector<std::pair<std::string, std::string>>& skipped() {
  static std::vector<std::pair<std::string, std::string>> list;
  return list;
}

}  // namespace

void mr::test::mark_skipped(const std::string& reason) {
  const std::string test = Catch::getResultCapture().getCurrentTestName();
  for (const auto& [name, why] : skipped())
    if (name == test) return;
  skipped().emplace_back(test, reason);
}

int main(int argc, char* argv[]) {
  Catch::Session session;
  const int status = session.run(argc, argv);
  if (status != 0) {
    // Catch2 returns the number of failed assertions (or of listed tests): never let that count
    // read as a skip.
    return status == mr::test::kSkipExitCode ? 1 : status;
  }
  if (skipped().empty()) return 0;
  std::cout << skipped().size() << " test case(s) skipped:\n";
  for (const auto& [name, why] : skipped()) std::cout << "  " << name << ": " << why << "\n";
  std::cout.flush();
  return mr::test::kSkipExitCode;
}
