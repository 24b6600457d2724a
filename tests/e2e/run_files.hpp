// Comparing two runs' artifacts: the files under their iteration directories (iter_*), by
// relative path. Shared by the e2e tests that run one config two ways (HTTP, several ranks).
#pragma once

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "cli_runner.hpp"

namespace mr::tests {

/// Every file under the run's iteration directories (iter_*), by relative path: what the method
/// produced. The manifest, resolved config and logs name the models and legitimately differ;
/// timings.json holds wall-clock times.
inline std::map<std::string, std::string> iteration_files(const std::filesystem::path& run) {
  std::map<std::string, std::string> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(run)) {
    if (!e.is_regular_file()) continue;
    const std::string rel = std::filesystem::relative(e.path(), run).string();
    if (rel.rfind("iter_", 0) != 0 || e.path().filename() == "timings.json") continue;
    files[rel] = read_text(e.path());
  }
  return files;
}

/// Every file of a run directory by relative path, except the two documented as
/// non-deterministic (run.log, timings.json): what a resumed run must reproduce byte for byte.
inline std::map<std::string, std::string> snapshot(const std::filesystem::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    if (name == "run.log" || name == "timings.json") continue;
    files[std::filesystem::relative(e.path(), dir).string()] = read_text(e.path());
  }
  return files;
}

/// The names whose bytes differ between two snapshots, "NAME (unexpected)" for extra ones.
inline std::vector<std::string> differing(const std::map<std::string, std::string>& expected,
                                          const std::map<std::string, std::string>& got) {
  std::vector<std::string> names;
  for (const auto& [name, bytes] : expected)
    if (!got.count(name) || got.at(name) != bytes) names.push_back(name);
  for (const auto& [name, bytes] : got)
    if (!expected.count(name)) names.push_back(name + " (unexpected)");
  return names;
}

/// The same file names, each with the same bytes.
inline void check_same_files(const std::map<std::string, std::string>& expected,
                             const std::map<std::string, std::string>& got) {
  std::vector<std::string> names_expected, names_got;
  for (const auto& [k, v] : expected) names_expected.push_back(k);
  for (const auto& [k, v] : got) names_got.push_back(k);
  REQUIRE(names_got == names_expected);
  for (const auto& [name, text] : expected) {
    INFO(name);
    CHECK(got.at(name) == text);
  }
}

}  // namespace mr::tests
