// Shared pieces of the per-kind conformance suites: the registered plugins of every shipped
// library, schema checks and seeded random inputs.
#pragma once

#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "metareward/sdk/plugin.hpp"
#include "recipe_plugins.hpp"
#include "test_host_context.hpp"

namespace mr::test::conformance {

/// Collects descriptors the way the host's registrar does (duplicates are a test failure).
class Collector : public sdk::Registrar {
 public:
  void add(sdk::PluginDescriptor d) override {
    if (plugins.count(d.name)) throw std::logic_error("duplicate plugin name " + d.name);
    plugins.emplace(d.name, std::move(d));
  }
  std::map<std::string, sdk::PluginDescriptor> plugins;
};

/// Every plugin registered by the shipped plugin libraries linked into this test.
inline const Collector& registered() {
  static const Collector c = [] {
    Collector col;
    mr::plugins::recipe::register_recipe_plugins(col);
    return col;
  }();
  return c;
}

/// Sorted names of the registered plugins of `kind`.
inline std::vector<std::string> names_of(sdk::PluginKind kind) {
  std::vector<std::string> out;
  for (const auto& [name, d] : registered().plugins)
    if (d.kind() == kind) out.push_back(name);
  return out;
}

/// A plugin object with its context (the context must outlive the plugin).
template <class Interface>
struct Instance {
  std::unique_ptr<TestHostContext> ctx;
  std::unique_ptr<Interface> plugin;
};

/// Constructs plugin `name` with its schema defaults.
template <class Interface>
Instance<Interface> make_default(const std::string& name, int iterations = 1) {
  const auto& d = registered().plugins.at(name);
  Instance<Interface> inst;
  inst.ctx = std::make_unique<TestHostContext>(config_from_schema(d.schema, {}, iterations, name));
  inst.plugin = std::get<sdk::Factory<Interface>>(d.factory)(*inst.ctx);
  return inst;
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
  check_descriptor(registered().plugins.at(name));
}

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
