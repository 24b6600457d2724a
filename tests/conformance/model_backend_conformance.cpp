// Conformance of every registered model backend (the kind's contract in model_backend.hpp; the
// backends come from the registry of conformance_support.hpp): one result per request in order
// with the ids echoed, n completions per request, determinism for a fixed seed whatever the
// batching, per-request errors, count_tokens and info(). Each backend is built on a tiny model
// that fixture_config() makes for it with the backend library's own commands.
#include <algorithm>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "conformance_support.hpp"

namespace sdk = mr::sdk;
using namespace mr::test::conformance;

namespace {

std::vector<std::string> backend_names() {
  return names_of(sdk::PluginKind::ModelBackend);
}

/// Runs plugin command `name` (e.g. the torch backend's init-model) with `args`; returns its exit
/// status and, in `output`, what it printed.
int run_plugin_command(const std::string& name,
                       const std::vector<std::string>& args,
                       std::string& output) {
  const mr::core::RegisteredCommand* command = registry().find_command(name);
  if (command == nullptr) throw std::logic_error("no plugin command '" + name + "'");
  mr::test::TestHostContext ctx(sdk::Config("command", {}, 1));
  std::ostringstream out, err;
  auto* old_out = std::cout.rdbuf(out.rdbuf());
  auto* old_err = std::cerr.rdbuf(err.rdbuf());
  int status = 1;
  try {
    status = command->descriptor.run(args, ctx);
  } catch (...) {
    std::cout.rdbuf(old_out);
    std::cerr.rdbuf(old_err);
    throw;
  }
  std::cout.rdbuf(old_out);
  std::cerr.rdbuf(old_err);
  output = out.str() + err.str();
  return status;
}

/// A tiny Llama config.json for init-model: 2 layers, hidden 32 (4 heads over 2 kv heads), vocab
/// 300 (the byte-level tokenizer uses 259 of them, so sampling must skip the rest). A large
/// initializer_range makes the next-token distributions peaked enough for varied greedy text.
const char* kTinyLlamaConfig =
    R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 32, "intermediate_size": 64, )"
    R"("num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, )"
    R"("vocab_size": 300, "max_position_embeddings": 512, "rms_norm_eps": 1e-6, )"
    R"("rope_theta": 10000.0, "tie_word_embeddings": false, "initializer_range": 0.3, )"
    R"("bos_token_id": 1, "eos_token_id": 2})";

/// Config overrides that make backend `name` loadable (e.g. a tiny model's path). A newly
/// registered backend needs an entry here, else its conformance tests fail.
sdk::Table fixture_config(const std::string& name) {
  if (name == "torch") {
    static TempDir dir("torch_backend");
    static const std::string path = [] {
      const auto config = dir.path() / "tiny_llama.json";
      std::ofstream(config) << kTinyLlamaConfig;
      const auto model = dir.path() / "model";
      std::string output;
      const int status = run_plugin_command(
          "init-model", {"--config", config.string(), "--out", model.string(), "--seed", "7"},
          output);
      if (status != 0)
        throw std::runtime_error("init-model exited " + std::to_string(status) + ": " + output);
      return model.string();
    }();
    return {{"path", sdk::Value(path)}, {"max_context", sdk::Value(96)}};
  }
  if (name == "openai") {
    // The torch fixture behind a managed `metareward serve` (the build's binary).
    const std::string model = fixture_config("torch").at("path").as_string();
    sdk::Array launch;
    for (const char* arg : {MR_CLI_PATH, "serve", "--model", "{model}", "--port", "{port}",
                            "--threads", "1", "--set", "models.policy.max_context=96"})
      launch.emplace_back(arg);
    return {{"launch", sdk::Value(launch)}, {"path", sdk::Value(model)}};
  }
  if (name == "testbed_oracle") return {};  // no model: the oracle with its default settings
  FAIL("no conformance fixture for model backend '" << name << "': add one to fixture_config()");
  return {};
}

struct BackendInstance {
  std::unique_ptr<mr::test::TestHostContext> ctx;
  std::unique_ptr<sdk::ModelBackend> backend;
};

BackendInstance make(const std::string& name, sdk::Table extra = {}) {
  const auto& d = descriptor(name);
  auto overrides = fixture_config(name);
  for (auto& [k, v] : extra) overrides[k] = v;
  BackendInstance inst;
  inst.ctx = std::make_unique<mr::test::TestHostContext>(
      mr::test::config_from_schema(d.schema, overrides, 1, "models.conformance"));
  inst.backend = std::get<sdk::Factory<sdk::ModelBackend>>(d.factory)(*inst.ctx);
  return inst;
}

/// The i-th conformance prompt in backend `name`'s domain: free text for a language model; for
/// `testbed_oracle` (a controlled judge) the testbed's judge and meta-judge prompts, which are
/// all it answers.
std::string conformance_prompt(const std::string& name, int i) {
  if (name != "testbed_oracle")
    return "Prompt number " + std::to_string(i) + std::string(3 * i, '!');
  const std::string task =
      "Add the numbers: " + std::to_string(10 + i) + " + " + std::to_string(7 * i);
  const std::string answer = std::to_string(10 + 8 * i) + std::string(i % 2, '.');
  if (i % 2 == 0) return "Rate the answer 0-5.\nTask: " + task + "\nAnswer: " + answer + "\n";
  return "Which rating is right?\nTask: " + task + "\nAnswer: " + answer +
         "\nA: Correct. Score: 5\nB: Wrong. Score: 1\n";
}

std::vector<sdk::GenerationRequest> requests(const std::string& name) {
  std::vector<sdk::GenerationRequest> out;
  for (int i = 0; i < 5; ++i) {
    sdk::GenerationRequest r;
    r.id = "req-" + std::to_string(i);
    r.messages = {{"user", conformance_prompt(name, i)}};
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

/// Skips (returning) the calling test in a build that registers no model backend.
#define MR_SKIP_WITHOUT_BACKENDS()                                                          \
  do {                                                                                      \
    if (backend_names().empty())                                                            \
      MR_SKIP("no model backend is registered (the torch backend needs MR_WITH_TORCH=ON)"); \
  } while (false)

TEST_CASE("model_backend conformance: backends are registered", "[conformance][model_backend]") {
#ifndef MR_CONFORMANCE_HAVE_TORCH_BACKEND
  MR_SKIP("the torch backend plugin is not built (MR_WITH_TORCH=OFF)");
#endif
  const auto names = backend_names();
  CHECK(std::find(names.begin(), names.end(), "torch") != names.end());
  CHECK(std::find(names.begin(), names.end(), "openai") != names.end());
}

TEST_CASE("model_backend conformance: schema", "[conformance][model_backend]") {
  MR_SKIP_WITHOUT_BACKENDS();
  auto name = GENERATE(from_range(backend_names()));
  INFO("backend " << origin(name));
  check_schema(name);
}

TEST_CASE("model_backend conformance: generate", "[conformance][model_backend]") {
  MR_SKIP_WITHOUT_BACKENDS();
  auto name = GENERATE(from_range(backend_names()));
  INFO("backend " << origin(name));
  auto inst = make(name);
  auto& backend = *inst.backend;
  const auto reqs = requests(name);
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
  MR_SKIP_WITHOUT_BACKENDS();
  auto name = GENERATE(from_range(backend_names()));
  INFO("backend " << origin(name));
  auto inst = make(name);
  CHECK(inst.backend->count_tokens("Hello, world") > 0);
  CHECK(inst.backend->count_tokens("") == 0);
  CHECK(inst.backend->count_tokens("Hello, world, and more") > inst.backend->count_tokens("Hello"));
  const auto info = inst.backend->info();
  CHECK_FALSE(info.architecture.empty());
  CHECK(info.context_length > 0);
}
