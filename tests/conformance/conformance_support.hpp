// Shared pieces of the per-kind conformance suites: the plugins they cover, schema checks and
// seeded random inputs.
//
// Every suite runs over every plugin of its kind that the registry below holds. The registry
// loads, the way the host does, every plugin library in the build's plugin directory (the shipped
// plugins: a newly added one is covered as soon as it is built) and every loader fixture library
// (third-party plugins: the fixture rubric and evaluator), except the fixtures that are broken on
// purpose, which excluded_fixtures() names one by one. A library that fails to load fails the
// suites; nothing is skipped by accident.
#pragma once

#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "metareward/core/plugin_registry.hpp"
#include "metareward/sdk/plugin.hpp"
#include "skip.hpp"
#include "test_host_context.hpp"

namespace mr::test::conformance {

namespace fs = std::filesystem;

/// The loader fixtures the suites leave out, by file name, with the reason. They are broken on
/// purpose so that tests/loader can check how the host reports them; every other fixture library
/// is covered.
inline const std::map<std::string, std::string>& excluded_fixtures() {
  static const std::map<std::string, std::string> excluded = {
      // Refused by the loader (each throws from PluginRegistry::load_library by design).
      {"libmr_fixture_bad_api_version.so", "reports a future plugin API version"},
      {"libmr_fixture_bad_fingerprint.so", "reports another compiler / libtorch build"},
      {"libmr_fixture_no_entry.so", "exports no mr_plugin_info"},
      {"libnot_a_library.so", "a text file named like a library"},
      {"libmr_fixture_register_throws.so", "its registration function throws"},
      {"libmr_fixture_duplicate_name.so", "registers fixture_ok again, the ok fixture's name"},
      // Loads, but its one plugin (rubric fixture_factory_throws) throws from its factory by
      // design: it cannot pass any behavioural check.
      {"libmr_fixture_factory_throws.so", "its rubric's factory always throws"},
  };
  return excluded;
}

/// The `*.so` files directly in `dir`, sorted by name (none for a missing directory).
inline std::vector<fs::path> libraries_in(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && e.path().extension() == ".so") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

/// The libraries the suites cover, in load order: the build's plugin dir, then the fixtures.
inline std::vector<fs::path> covered_libraries() {
  std::vector<fs::path> out = libraries_in(MR_BUILD_PLUGIN_DIR);
  for (const auto& lib : libraries_in(MR_CONFORMANCE_FIXTURE_DIR))
    if (excluded_fixtures().count(lib.filename().string()) == 0) out.push_back(lib);
  return out;
}

/// The registry of every covered library. Loaded once; never destroyed, so that no plugin library
/// (libtorch among their dependencies) is unloaded during static destruction. Throws the loader's
/// error when a covered library does not load.
inline const core::PluginRegistry& registry() {
  static const core::PluginRegistry* loaded = [] {
    auto registry = std::make_unique<core::PluginRegistry>();
    for (const auto& lib : covered_libraries()) registry->load_library(lib);
    return registry.release();
  }();
  return *loaded;
}

/// Sorted names of the registered plugins of `kind`.
inline std::vector<std::string> names_of(sdk::PluginKind kind) {
  return registry().names(kind);
}

/// The registered plugin `name` (a test failure when there is none).
inline const core::RegisteredPlugin& plugin(const std::string& name) {
  const core::RegisteredPlugin* p = registry().find(name);
  if (p == nullptr) throw std::logic_error("no registered plugin '" + name + "'");
  return *p;
}

/// The descriptor of registered plugin `name`.
inline const sdk::PluginDescriptor& descriptor(const std::string& name) {
  return plugin(name).descriptor;
}

/// "NAME from LIBRARY (FILE)", for INFO messages.
inline std::string origin(const std::string& name) {
  const auto& p = plugin(name);
  return name + " from " + p.library_name + " (" + p.library_path.filename().string() + ")";
}

/// Whether `name` is registered.
inline bool registered(const std::string& name) {
  return registry().find(name) != nullptr;
}

/// A plugin object with its context (the context must outlive the plugin).
template <class Interface>
struct Instance {
  std::unique_ptr<TestHostContext> ctx;
  std::unique_ptr<Interface> plugin;
};

/// Constructs plugin `name` with its schema defaults plus `values`.
template <class Interface>
Instance<Interface> make_instance(const std::string& name,
                                  sdk::Table values = {},
                                  int iterations = 1,
                                  const std::string& path = "") {
  const auto& d = descriptor(name);
  Instance<Interface> inst;
  inst.ctx = std::make_unique<TestHostContext>(
      config_from_schema(d.schema, std::move(values), iterations, path.empty() ? name : path));
  inst.plugin = std::get<sdk::Factory<Interface>>(d.factory)(*inst.ctx);
  if (!inst.plugin) throw std::logic_error("plugin '" + name + "' returned no object");
  return inst;
}

/// Constructs plugin `name` with its schema defaults.
template <class Interface>
Instance<Interface> make_default(const std::string& name, int iterations = 1) {
  return make_instance<Interface>(name, {}, iterations);
}

/// Checks the descriptor `d`: description, version, unique non-empty keys, help text, every
/// default satisfies its own type, range and choices.
inline void check_descriptor(const sdk::PluginDescriptor& d) {
  const std::string& name = d.name;
  CHECK_FALSE(d.description.empty());
  CHECK_FALSE(d.version.empty());
  std::set<std::string> keys;
  for (const auto& spec : d.schema) {
    INFO("plugin " << name << ", key '" << spec.key << "'");
    CHECK_FALSE(spec.key.empty());
    CHECK(spec.key.find('.') == std::string::npos);
    CHECK(keys.insert(spec.key).second);
    CHECK_FALSE(spec.help.empty());
    if (spec.required) {
      CHECK(spec.default_value.is_null());
    } else {
      CHECK(check_value(spec, spec.default_value) == "");
    }
    if (spec.min && spec.max) CHECK(*spec.min <= *spec.max);
  }
}

/// Checks the schema of registered plugin `name` (see check_descriptor).
inline void check_schema(const std::string& name) {
  check_descriptor(descriptor(name));
}

/// Whether plugin `name` has a required key (one without a default to construct it with).
inline bool has_required_keys(const std::string& name) {
  const auto& schema = descriptor(name).schema;
  return std::any_of(schema.begin(), schema.end(), [](const auto& p) { return p.required; });
}

/// A directory under the temp dir, removed on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    static int counter = 0;
    path_ =
        fs::temp_directory_path() / ("mr_conformance_" + tag + "_" + std::to_string(::getpid()) +
                                     "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

/// Seeded random prompt groups: 0..6 responses each (some duplicated text, some without a valid
/// score), 0..5 judgments per response (some unparsed), scores on a 0..5 half-point grid.
inline std::vector<sdk::PromptGroup> random_groups(std::uint64_t seed, int count = 30) {
  std::mt19937_64 rng(seed);
  auto below = [&](int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); };
  std::vector<sdk::PromptGroup> groups;
  for (int g = 0; g < count; ++g) {
    sdk::PromptGroup group;
    group.prompt_id = "p" + std::to_string(g);
    group.prompt = {{"user", "Question number " + std::to_string(g)}};
    const int n_resp = below(7);
    for (int r = 0; r < n_resp; ++r) {
      sdk::ResponseCandidate resp;
      resp.id = group.prompt_id + "/r" + std::to_string(r);
      resp.text = (r > 0 && below(6) == 0) ? group.responses.front().text
                                           : "Response " + resp.id + std::string(below(50), '~');
      resp.length_chars = static_cast<std::int64_t>(resp.text.size());
      resp.length_tokens = resp.length_chars / 4;
      const int n_judg = below(6);
      double sum = 0;
      int valid = 0;
      for (int j = 0; j < n_judg; ++j) {
        sdk::Judgment jd;
        jd.id = resp.id + "/j" + std::to_string(j);
        if (below(5) != 0) {
          jd.score = 0.5 * below(11);
          sum += *jd.score;
          ++valid;
        }
        jd.text = "Judgment " + jd.id + ". Score: " + (jd.score ? std::to_string(*jd.score) : "?");
        resp.judgments.push_back(jd);
      }
      if (valid > 0) resp.mean_score = sum / valid;
      group.responses.push_back(std::move(resp));
    }
    groups.push_back(std::move(group));
  }
  return groups;
}

}  // namespace mr::test::conformance
