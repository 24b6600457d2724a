// Conformance of every registered model backend (the kind's contract in model_backend.hpp):
// one result per request in order with the ids echoed, n completions per request, determinism
// for a fixed seed whatever the batching, per-request errors, count_tokens and info(). Built as
// its own executable (mr_model_backend_conformance_tests) because backends need libtorch.
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "backend_test_util.hpp"
#include "metareward/sdk/plugin.hpp"
#include "test_host_context.hpp"

namespace sdk = mr::sdk;

namespace {

/// Collects descriptors like the host's registrar; commands are accepted and ignored.
class BackendCollector : public sdk::Registrar {
 public:
  void add(sdk::PluginDescriptor d) override {
    if (plugins.count(d.name)) throw std::logic_error("duplicate plugin name " + d.name);
    plugins.emplace(d.name, std::move(d));
  }
  void add_command(sdk::CommandDescriptor) override {}
  std::map<std::string, sdk::PluginDescriptor> plugins;
};

const BackendCollector& registered() {
  static const BackendCollector c = [] {
    BackendCollector col;
    mr::plugins::torch_backend::register_torch_backend_plugins(col);
    return col;
  }();
  return c;
}

std::vector<std::string> backend_names() {
  std::vector<std::string> out;
  for (const auto& [name, d] : registered().plugins)
    if (d.kind() == sdk::PluginKind::ModelBackend) out.push_back(name);
  return out;
}

/// Config overrides that make backend `name` loadable (e.g. a tiny model's path). A newly
/// registered backend needs an entry here, else its conformance tests fail.
sdk::Table fixture_config(const std::string& name) {
  if (name == "torch") {
    static mr::test::BackendTempDir dir;
    static const std::string path = [] {
      const auto p = dir.path() / "model";
      if (mr::test::write_tiny_model(p) != 0) throw std::runtime_error("init-model failed");
      return p.string();
    }();
    return {{"path", sdk::Value(path)}, {"max_context", sdk::Value(96)}};
  }
  FAIL("no conformance fixture for model backend '" << name << "'");
  return {};
}

struct Instance {
  std::unique_ptr<mr::test::TestHostContext> ctx;
  std::unique_ptr<sdk::ModelBackend> backend;
};

Instance make(const std::string& name, sdk::Table extra = {}) {
  const auto& d = registered().plugins.at(name);
  auto overrides = fixture_config(name);
  for (auto& [k, v] : extra) overrides[k] = v;
  Instance inst;
  inst.ctx = std::make_unique<mr::test::TestHostContext>(
      mr::test::config_from_schema(d.schema, overrides, 1, "models.conformance"));
  inst.backend = std::get<sdk::Factory<sdk::ModelBackend>>(d.factory)(*inst.ctx);
  return inst;
}

std::vector<sdk::GenerationRequest> requests() {
  std::vector<sdk::GenerationRequest> out;
  for (int i = 0; i < 5; ++i) {
    sdk::GenerationRequest r;
    r.id = "req-" + std::to_string(i);
    r.messages = {{"user", "Prompt number " + std::to_string(i) + std::string(3 * i, '!')}};
    r.sampling.temperature = i % 2 == 0 ? 0.8 : 0.0;
    r.sampling.max_new_tokens = 6 + i;
    r.n = 1 + i % 3;
    r.seed = 1000 + static_cast<std::uint64_t>(i);
    out.push_back(std::move(r));
  }
  return out;
}

void check_equal(const std::vector<sdk::GenerationResult>& a,
                 const std::vector<sdk::GenerationResult>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("request " << i);
    CHECK(a[i].request_id == b[i].request_id);
    CHECK(a[i].error == b[i].error);
    REQUIRE(a[i].completions.size() == b[i].completions.size());
    for (std::size_t k = 0; k < a[i].completions.size(); ++k) {
      CHECK(a[i].completions[k].text == b[i].completions[k].text);
      CHECK(a[i].completions[k].tokens == b[i].completions[k].tokens);
    }
  }
}

}  // namespace

TEST_CASE("model_backend conformance: backends are registered", "[conformance][model_backend]") {
  const auto names = backend_names();
  CHECK(std::find(names.begin(), names.end(), "torch") != names.end());
}

TEST_CASE("model_backend conformance: schema", "[conformance][model_backend]") {
  auto name = GENERATE(from_range(backend_names()));
  INFO("backend " << name);
  const auto& d = registered().plugins.at(name);
  CHECK_FALSE(d.description.empty());
  std::set<std::string> keys;
  for (const auto& spec : d.schema) {
    INFO("key " << spec.key);
    CHECK(keys.insert(spec.key).second);
    CHECK_FALSE(spec.help.empty());
    if (!spec.required) CHECK(mr::test::check_value(spec, spec.default_value).empty());
  }
}

TEST_CASE("model_backend conformance: generate", "[conformance][model_backend]") {
  auto name = GENERATE(from_range(backend_names()));
  INFO("backend " << name);
  auto inst = make(name);
  auto& backend = *inst.backend;
  const auto reqs = requests();
  const auto results = backend.generate(reqs);

  SECTION("one result per request, in order, with n completions within budget") {
    REQUIRE(results.size() == reqs.size());
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      CHECK(results[i].request_id == reqs[i].id);
      CHECK(results[i].error.empty());
      REQUIRE(results[i].completions.size() == static_cast<std::size_t>(reqs[i].n));
      for (const auto& c : results[i].completions) {
        CHECK(c.tokens >= 0);
        CHECK(c.tokens <= reqs[i].sampling.max_new_tokens);
        CHECK(c.finish_reason != sdk::FinishReason::Error);
      }
    }
  }
  SECTION("deterministic for a fixed seed, whatever the batching") {
    check_equal(results, backend.generate(reqs));
    std::vector<sdk::GenerationResult> one_by_one;
    for (const auto& r : reqs) one_by_one.push_back(backend.generate({r}).at(0));
    check_equal(results, one_by_one);
  }
  SECTION("an empty request list gives no results") {
    CHECK(backend.generate({}).empty());
  }
  SECTION("a prompt beyond the context fails alone") {
    auto bad = reqs[0];
    bad.id = "too-long";
    bad.messages = {{"user", std::string(100000, 'a')}};
    const auto out = backend.generate({reqs[1], bad});
    REQUIRE(out.size() == 2);
    CHECK(out[0].error.empty());
    CHECK(out[1].request_id == "too-long");
    CHECK_FALSE(out[1].error.empty());
  }
}

TEST_CASE("model_backend conformance: count_tokens and info", "[conformance][model_backend]") {
  auto name = GENERATE(from_range(backend_names()));
  INFO("backend " << name);
  auto inst = make(name);
  CHECK(inst.backend->count_tokens("Hello, world") > 0);
  CHECK(inst.backend->count_tokens("") == 0);
  CHECK(inst.backend->count_tokens("Hello, world, and more") > inst.backend->count_tokens("Hello"));
  const auto info = inst.backend->info();
  CHECK_FALSE(info.architecture.empty());
  CHECK(info.context_length > 0);
}
