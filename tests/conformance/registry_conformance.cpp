// The plugin set the conformance suites run over (conformance_support.hpp): every library of the
// build's plugin dir and every loader fixture except the ones broken on purpose, all loaded.
#include <algorithm>
#include <sstream>

#include "conformance_support.hpp"

using namespace mr::test::conformance;

namespace {
/// Splits a ':'-separated list.
std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ':');)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::vector<std::string> file_names(const std::vector<fs::path>& files) {
  std::vector<std::string> out;
  for (const auto& f : files) out.push_back(f.filename().string());
  return out;
}

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}
}  // namespace

TEST_CASE("conformance plugin set: every shipped library and working fixture loads",
          "[conformance][registry]") {
  const auto covered = file_names(covered_libraries());
  INFO("covered libraries: " << [&] {
    std::string all;
    for (const auto& c : covered) all += " " + c;
    return all;
  }());
  SECTION("every plugin library this build ships is covered") {
    const auto shipped = split(MR_CONFORMANCE_SHIPPED_LIBRARIES);
    for (const auto& lib : shipped) {
      INFO("shipped library " << lib);
      CHECK(contains(covered, lib));
    }
  }
  SECTION("the third-party fixtures are covered, the broken ones excluded by name") {
    CHECK(contains(covered, "libmr_fixture_ok.so"));
    CHECK(contains(covered, "libmr_fixture_evaluator.so"));
    const auto fixtures = file_names(libraries_in(MR_CONFORMANCE_FIXTURE_DIR));
    for (const auto& [lib, why] : excluded_fixtures()) {
      INFO("excluded fixture " << lib << " (" << why << ")");
      CHECK(contains(fixtures, lib));  // the list names real files
      CHECK_FALSE(contains(covered, lib));
    }
  }
  SECTION("all of them load, and every plugin comes from one of them") {
    REQUIRE_NOTHROW(registry());
    const auto plugins = registry().all();
    CHECK_FALSE(plugins.empty());
    for (const auto* p : plugins) {
      INFO("plugin " << p->descriptor.name);
      CHECK(contains(covered, p->library_path.filename().string()));
    }
  }
}
