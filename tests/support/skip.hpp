/// @file skip.hpp
/// Skipping a test that cannot run in this build or on this machine (a missing tool, fixture,
/// optional plugin or ../shared): the test case is reported to ctest as skipped, not passed.
///
///   if (chromium.empty()) MR_SKIP("chromium not on PATH (install it with scripts/setup.sh)");
///
/// MR_SKIP prints "SKIPPED: <reason>" (a Catch2 warning, so every reporter shows it), records the
/// running test case as skipped and returns from the enclosing function. MR_MARK_SKIPPED does the
/// same without returning, for helpers that report "unavailable" to their caller (which then
/// returns). The shared main (test_main.cpp) exits with kSkipExitCode when nothing failed and at
/// least one test case was skipped; every catch_discover_tests() registers that code as the
/// tests' SKIP_RETURN_CODE (mr_discover_tests in tests/CMakeLists.txt). A failure always wins: a
/// test case that failed before or after a skip exits non-zero and not with kSkipExitCode, so a
/// skip never hides a failure. Skip only for what the build or machine lacks, never for a
/// behaviour that is wrong.
#pragma once

#include <catch2/catch.hpp>

#include <sstream>
#include <string>

namespace mr::test {

/// Exit status of a test binary whose run skipped a test case and failed none (ctest:
/// SKIP_RETURN_CODE). Defined by tests/CMakeLists.txt.
inline constexpr int kSkipExitCode = MR_TEST_SKIP_RETURN_CODE;

/// Records the running test case as skipped (see MR_SKIP); `reason` is listed in the summary.
void mark_skipped(const std::string& reason);

}  // namespace mr::test

#define MR_MARK_SKIPPED(reason)                      \
  do {                                               \
    std::ostringstream mr_skip_reason_;              \
    mr_skip_reason_ << reason;                       \
    WARN("SKIPPED: " << mr_skip_reason_.str());      \
    ::mr::test::mark_skipped(mr_skip_reason_.str()); \
  } while (false)

#define MR_SKIP(reason)      \
  do {                       \
    MR_MARK_SKIPPED(reason); \
    return;                  \
  } while (false)
