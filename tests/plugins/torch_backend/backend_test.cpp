// The `torch` model backend: batched generation with a KV cache and prefix sharing, stop
// conditions, per-request errors, scoring against an independent forward pass, the training view
// and save/reload. Tiny random models written by init-model, so the suite runs in seconds.
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "backend_test_util.hpp"
#include "metareward/chat/chat_template.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/sdk/trainable_model.hpp"
#include "metareward/tokenizer/tokenizer.hpp"
#include "metareward/torch_model/causal_lm.hpp"

namespace sdk = mr::sdk;
namespace tb = mr::torch_backend;
using mr::test::BackendTempDir;
using mr::test::make_backend;
using mr::test::request;

namespace {

std::vector<sdk::GenerationRequest> mixed_requests(double temperature) {
  // Different prompt lengths (left padding), seeds, budgets and a stop string.
  std::vector<sdk::GenerationRequest> r;
  r.push_back(request("a", "Hello there", 11, temperature, 12));
  r.push_back(request("b", "A much longer prompt that needs left padding of the others", 22,
                      temperature, 30));
  r.push_back(request("c", "x", 33, temperature, 3));
  r.push_back(request("d", "Tell me a story about a cat.", 44, temperature, 20, 3));
  return r;
}

void check_same(const sdk::GenerationResult& a, const sdk::GenerationResult& b) {
  INFO("request " << a.request_id);
  CHECK(a.request_id == b.request_id);
  CHECK(a.error == b.error);
  REQUIRE(a.completions.size() == b.completions.size());
  for (std::size_t i = 0; i < a.completions.size(); ++i) {
    INFO("sample " << i);
    CHECK(a.completions[i].text == b.completions[i].text);
    CHECK(a.completions[i].tokens == b.completions[i].tokens);
    CHECK(a.completions[i].finish_reason == b.completions[i].finish_reason);
  }
}

}  // namespace

TEST_CASE("torch backend: schema keys and defaults", "[torch_backend]") {
  const auto schema = mr::plugins::torch_backend::torch_backend_schema();
  std::vector<std::string> keys;
  for (const auto& spec : schema) {
    keys.push_back(spec.key);
    if (!spec.required) CHECK(mr::test::check_value(spec, spec.default_value).empty());
  }
  CHECK(keys == std::vector<std::string>{"path", "dtype", "device", "chat_template", "chat_format",
                                         "max_batch_size", "prefix_cache_mib",
                                         "prefix_block_tokens", "continuous_batching",
                                         "max_context", "adapter"});
  CHECK(schema[0].required);
  CHECK(schema[1].default_value.as_string() == "float32");
  CHECK(schema[2].default_value.as_string() == "cpu");
  CHECK(schema[3].default_value.as_string() == "auto");
  CHECK(schema[5].default_value.as_int() == 32);
  CHECK(schema[6].default_value.as_int() == 1024);  // Prefix cache on by default.
  CHECK(schema[7].default_value.as_int() == 16);
  CHECK(schema[8].default_value.as_bool());  // Continuous batching on by default.
  CHECK(schema[9].default_value.as_int() == 0);
  CHECK(schema[10].default_value.as_string().empty());  // No adapter.
}

TEST_CASE("torch backend: construction", "[torch_backend]") {
  SECTION("info reports the loaded model") {
    auto b = make_backend(mr::test::shared_tiny_model());
    const auto info = b->info();
    CHECK(info.name == "policy");
    CHECK(info.architecture == "LlamaForCausalLM");
    CHECK(info.parameters > 0);
    CHECK(info.context_length == 512);
    CHECK(b->count_tokens("hello") == 5);  // Byte-level: one token per byte.
    CHECK(b->count_tokens("") == 0);
    CHECK(b->trainable() != nullptr);
  }
  SECTION("max_context overrides config.json") {
    auto b = make_backend(mr::test::shared_tiny_model(), {{"max_context", sdk::Value(64)}});
    CHECK(b->info().context_length == 64);
  }
  SECTION("an unavailable device, float16 on cpu or a missing path are config errors") {
    if (!torch::cuda::is_available()) {
      CHECK_THROWS_AS(
          make_backend(mr::test::shared_tiny_model(), {{"device", sdk::Value("cuda:0")}}),
          sdk::ConfigError);
    }
    CHECK_THROWS_AS(make_backend(mr::test::shared_tiny_model(), {{"device", sdk::Value("banana")}}),
                    sdk::ConfigError);
    CHECK_THROWS_AS(make_backend(mr::test::shared_tiny_model(), {{"dtype", sdk::Value("float16")}}),
                    sdk::ConfigError);
    CHECK_THROWS_AS(make_backend(mr::test::shared_tiny_model() / "nope"), sdk::ConfigError);
  }
  SECTION("a chat template the tokenizer cannot support is a config error") {
    CHECK_THROWS_AS(
        make_backend(mr::test::shared_tiny_model(), {{"chat_template", sdk::Value("llama3")}}),
        sdk::ConfigError);
  }
}

TEST_CASE("torch backend: batching does not change results", "[torch_backend][generate]") {
  auto big = make_backend(mr::test::shared_tiny_model());
  auto one = make_backend(mr::test::shared_tiny_model(), {{"max_batch_size", sdk::Value(1)}});
  auto three = make_backend(mr::test::shared_tiny_model(), {{"max_batch_size", sdk::Value(3)}});
  {
    const double temperature = GENERATE(0.0, 1.0);
    INFO("temperature " << temperature);
    const auto requests = mixed_requests(temperature);
    const auto together = big->generate(requests);
    REQUIRE(together.size() == requests.size());
    SECTION("one call == one call per request, == chunks of 1 and of 3 rows") {
      const auto by_one = one->generate(requests);
      const auto by_three = three->generate(requests);
      for (std::size_t i = 0; i < requests.size(); ++i) {
        const auto alone = big->generate({requests[i]});
        REQUIRE(alone.size() == 1);
        check_same(together[i], alone[0]);
        check_same(together[i], by_one[i]);
        check_same(together[i], by_three[i]);
      }
    }
    SECTION("request order does not matter") {
      auto reversed = requests;
      std::reverse(reversed.begin(), reversed.end());
      const auto back = big->generate(reversed);
      for (std::size_t i = 0; i < requests.size(); ++i)
        check_same(together[i], back[requests.size() - 1 - i]);
    }
    SECTION("results are in request order with the budgets honoured") {
      for (std::size_t i = 0; i < requests.size(); ++i) {
        CHECK(together[i].request_id == requests[i].id);
        CHECK(together[i].error.empty());
        REQUIRE(together[i].completions.size() == static_cast<std::size_t>(requests[i].n));
        for (const auto& c : together[i].completions) {
          CHECK(c.tokens <= requests[i].sampling.max_new_tokens);
          if (c.finish_reason == sdk::FinishReason::Length)
            CHECK(c.tokens == requests[i].sampling.max_new_tokens);
        }
      }
    }
  }
}

TEST_CASE("torch backend: seeds", "[torch_backend][generate]") {
  auto b = make_backend(mr::test::shared_tiny_model());
  auto r = request("s", "Once upon a time", 5, 1.0, 24);
  const auto first = b->generate({r});
  SECTION("same seed, same text") {
    check_same(first[0], b->generate({r})[0]);
  }
  SECTION("another seed, another text") {
    r.seed = 6;
    CHECK(b->generate({r})[0].completions[0].text != first[0].completions[0].text);
  }
  SECTION("the n samples of one request differ") {
    r.n = 4;
    const auto many = b->generate({r});
    REQUIRE(many[0].completions.size() == 4);
    CHECK(many[0].completions[0].text == first[0].completions[0].text);  // Sample 0 = n=1.
    for (int i = 1; i < 4; ++i)
      CHECK(many[0].completions[static_cast<std::size_t>(i)].text != many[0].completions[0].text);
  }
  SECTION("greedy ignores the seed") {
    r.sampling.temperature = 0.0;
    const auto a = b->generate({r});
    r.seed = 99;
    check_same(a[0], b->generate({r})[0]);
  }
}

TEST_CASE("torch backend: n samples share one prefill with unchanged results",
          "[torch_backend][generate]") {
  // Chunks of one row prefill every sample separately; the default shares one prefill.
  auto shared = make_backend(mr::test::shared_tiny_model());
  auto separate = make_backend(mr::test::shared_tiny_model(), {{"max_batch_size", sdk::Value(1)}});
  auto r = request("n", "Write a poem about the sea", 77, 0.9, 16, 6);
  r.sampling.top_k = 50;
  r.sampling.top_p = 0.9;
  const auto a = shared->generate({r});
  const auto b = separate->generate({r});
  check_same(a[0], b[0]);
  std::set<std::string> distinct;
  for (const auto& c : a[0].completions) distinct.insert(c.text);
  CHECK(distinct.size() > 1);
}

TEST_CASE("torch backend: stop strings and max_new_tokens", "[torch_backend][generate]") {
  auto b = make_backend(mr::test::shared_tiny_model());
  auto r = request("t", "Say something", 3, 1.0, 40);
  r.sampling.top_k = 20;
  const auto full = b->generate({r})[0].completions[0];
  REQUIRE(full.tokens >= 8);
  SECTION("max_new_tokens caps the generated tokens") {
    r.sampling.max_new_tokens = 5;
    const auto c = b->generate({r})[0].completions[0];
    CHECK(c.tokens == 5);
    CHECK(c.finish_reason == sdk::FinishReason::Length);
    CHECK(full.text.rfind(c.text, 0) == 0);  // A prefix of the longer run.
  }
  SECTION("a stop string ends the text before it, and is not included") {
    const std::string stop = full.text.substr(4, 2);
    r.sampling.stop = {stop};
    const auto c = b->generate({r})[0].completions[0];
    const auto at = full.text.find(stop);
    CHECK(c.text == full.text.substr(0, at));
    CHECK(c.finish_reason == sdk::FinishReason::Stop);
    CHECK(c.tokens <= static_cast<std::int64_t>(at) + 1);
    CHECK(c.tokens >= static_cast<std::int64_t>(at) / 4);
  }
  SECTION("max_new_tokens 0 yields an empty completion") {
    r.sampling.max_new_tokens = 0;
    const auto c = b->generate({r})[0].completions[0];
    CHECK(c.text.empty());
    CHECK(c.tokens == 0);
    CHECK(c.finish_reason == sdk::FinishReason::Length);
  }
}

TEST_CASE("torch backend: rows that finish early leave the batch without changing others",
          "[torch_backend][generate]") {
  auto b = make_backend(mr::test::shared_tiny_model());
  auto long_run = request("long", "Keep going", 8, 1.0, 30);
  auto short_run = request("short", "Stop soon", 9, 1.0, 2);
  auto stopped = request("stopped", "Stop on a string", 10, 1.0, 30);
  const auto probe = b->generate({stopped})[0].completions[0];
  REQUIRE(probe.text.size() >= 3);
  stopped.sampling.stop = {probe.text.substr(1, 2)};
  const auto together = b->generate({long_run, short_run, stopped});
  check_same(together[0], b->generate({long_run})[0]);
  check_same(together[1], b->generate({short_run})[0]);
  check_same(together[2], b->generate({stopped})[0]);
  CHECK(together[1].completions[0].tokens <= 2);
  CHECK(together[2].completions[0].finish_reason == sdk::FinishReason::Stop);
}

TEST_CASE("torch backend: bad requests fail alone", "[torch_backend][generate]") {
  auto b = make_backend(mr::test::shared_tiny_model(), {{"max_context", sdk::Value(48)}});
  auto ok = request("ok", "hi", 1, 0.0, 100);
  auto too_long = request("long", std::string(60, 'z'), 1, 0.0, 4);
  auto bad_role = request("role", "x", 1, 0.0, 4);
  bad_role.messages[0].role = "robot";
  auto bad_top_p = request("top_p", "x", 1, 0.5, 4);
  bad_top_p.sampling.top_p = 0.0;
  const auto results = b->generate({ok, too_long, bad_role, bad_top_p});
  REQUIRE(results.size() == 4);
  CHECK(results[0].error.empty());
  REQUIRE(results[0].completions.size() == 1);
  // Prompt "User: hi\nAssistant: " plus <|bos|> is 21 tokens: at most 27 more fit in 48.
  CHECK(results[0].completions[0].tokens <= 48 - 21);
  CHECK(results[1].error.find("max_context") != std::string::npos);
  CHECK(results[1].completions.empty());
  CHECK(results[2].error.find("robot") != std::string::npos);
  CHECK(results[3].error.find("top_p") != std::string::npos);
  for (const auto& r : results) CHECK_FALSE(r.request_id.empty());
}

TEST_CASE("torch backend: score equals an independent full forward pass",
          "[torch_backend][score]") {
  auto b = make_backend(mr::test::shared_tiny_model(), {{"max_batch_size", sdk::Value(2)}});
  std::vector<sdk::ScoreRequest> requests = {
      {"r1", {{"user", "What is 2+2?"}}, "4"},
      {"r2", {{"system", "Be brief."}, {"user", "Name a colour"}}, "A rather long answer: blue"},
      {"r3", {{"user", "Empty?"}}, ""},
  };
  const auto results = b->score(requests);
  REQUIRE(results.size() == 3);

  auto model = tb::load_causal_lm(mr::test::shared_tiny_model());
  model->eval();
  const auto tokenizer = mr::tokenizer::Tokenizer::from_directory(mr::test::shared_tiny_model());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    INFO("request " << requests[i].id);
    const auto& r = results[i];
    REQUIRE(r.error.empty());
    CHECK(r.request_id == requests[i].id);
    // The plain template, spelled out: prompt, then content + end of turn + newline.
    std::string prompt = "<|bos|>";
    for (const auto& m : requests[i].messages)
      prompt += (m.role == "system" ? "System: " : "User: ") + m.content + "\n";
    prompt += "Assistant: ";
    const auto p = tokenizer.encode(prompt);
    const auto c = tokenizer.encode(requests[i].completion + "<|eos|>\n");
    CHECK(r.token_ids == c);
    std::vector<std::int64_t> all(p);
    all.insert(all.end(), c.begin(), c.end());
    torch::NoGradGuard no_grad;
    auto ids = torch::tensor(all, torch::kLong).unsqueeze(0);
    auto mask = torch::ones_like(ids);
    auto logp = torch::log_softmax(model->forward(ids, mask, tb::position_ids_from_mask(mask)), -1);
    REQUIRE(r.token_logprobs.size() == c.size());
    double sum = 0.0;
    for (std::size_t k = 0; k < c.size(); ++k) {
      const double expected =
          logp[0][static_cast<std::int64_t>(p.size() + k) - 1][c[k]].item<double>();
      CHECK(r.token_logprobs[k] == Approx(expected).margin(1e-4));
      sum += expected;
    }
    CHECK(r.logprob_sum == Approx(sum).margin(1e-3));
  }
  SECTION("a too long request fails alone") {
    auto small = make_backend(mr::test::shared_tiny_model(), {{"max_context", sdk::Value(40)}});
    const auto res = small->score({requests[0], {"big", {{"user", "q"}}, std::string(50, 'a')}});
    CHECK(res[0].error.empty());
    CHECK(res[1].error.find("max_context") != std::string::npos);
  }
}

TEST_CASE("torch backend: the training view", "[torch_backend][train]") {
  auto b = make_backend(mr::test::shared_tiny_model());
  auto* model = b->trainable();
  REQUIRE(model != nullptr);
  const auto tokenizer = mr::tokenizer::Tokenizer::from_directory(mr::test::shared_tiny_model());
  const auto tmpl = mr::chat::ChatTemplate::from_tokenizer("plain", tokenizer);
  SECTION("tokenize(prompt, response) is the rendered conversation, split at the response") {
    const sdk::Conversation prompt = {{"system", "S"}, {"user", "Question?"}};
    const auto ex = model->tokenize(prompt, "Answer.", true);
    CHECK(ex.prompt_ids == tokenizer.encode(tmpl.render(prompt, true)));
    auto whole = prompt;
    whole.push_back({"assistant", "Answer."});
    std::vector<std::int64_t> joined = ex.prompt_ids;
    joined.insert(joined.end(), ex.response_ids.begin(), ex.response_ids.end());
    CHECK(joined == tokenizer.encode(tmpl.render(whole, false)));
    CHECK(ex.response_ids[7] == *tokenizer.eos_id());  // "Answer." then the end of turn.
    // A response cut at max_new_tokens did not end: no end-of-turn suffix.
    const auto cut = model->tokenize(prompt, "Answer.", false);
    CHECK(cut.prompt_ids == ex.prompt_ids);
    CHECK(cut.response_ids ==
          std::vector<std::int64_t>(ex.response_ids.begin(), ex.response_ids.begin() + 7));
  }
  SECTION("forward gives float32 logits and gradients reach the parameters") {
    auto ids = torch::tensor({{256, 72, 105, 0}, {256, 72, 0, 0}}, torch::kLong);
    auto mask = torch::tensor({{1, 1, 1, 1}, {1, 1, 0, 0}}, torch::kLong);
    auto logits = model->forward(ids, mask);
    CHECK(logits.sizes() == torch::IntArrayRef({2, 4, 300}));
    CHECK(logits.scalar_type() == torch::kFloat32);
    logits.sum().backward();
    const auto params = model->parameters();
    REQUIRE_FALSE(params.empty());
    CHECK(params.front().grad().defined());
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
  }
  SECTION("parameters come in a stable order") {
    const auto a = model->parameters();
    const auto b2 = model->parameters();
    REQUIRE(a.size() == b2.size());
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i].is_same(b2[i]));
  }
}

TEST_CASE("torch backend: generation between training steps changes no result",
          "[torch_backend][train][packed]") {
  // generate() packs the weights for inference where the CPU allows, the training view unpacks
  // them: training interleaved with generation must compute what training alone computes.
  auto ids = torch::tensor({{256, 72, 105, 33}, {256, 72, 0, 0}}, torch::kLong);
  auto mask = torch::tensor({{1, 1, 1, 1}, {1, 1, 0, 0}}, torch::kLong);
  const auto r = request("g", "Interleaved", 4, 0.0, 12);
  const auto run = [&](bool interleave) {
    auto b = make_backend(mr::test::shared_tiny_model());
    auto* model = b->trainable();
    // Fetched once, as an optimizer holds them.
    auto trained = model->parameters();
    std::vector<std::string> texts;
    std::vector<torch::Tensor> logits;
    for (int step = 0; step < 2; ++step) {
      if (interleave) texts.push_back(b->generate({r})[0].completions[0].text);
      auto out = model->forward(ids, mask);
      logits.push_back(out.detach().clone());
      out.pow(2).mean().backward();
      // A step in flight: generating now must not disturb the gradients' application.
      if (interleave) texts.push_back(b->generate({r})[0].completions[0].text);
      torch::NoGradGuard no_grad;
      for (auto& p : trained) {
        p.sub_(p.grad() * 0.5);
        p.mutable_grad() = torch::Tensor();
      }
    }
    if (interleave) texts.push_back(b->generate({r})[0].completions[0].text);
    std::vector<torch::Tensor> params;
    for (auto& p : model->parameters()) params.push_back(p.detach().clone());
    const auto final_text = b->generate({r})[0].completions[0].text;
    return std::make_tuple(texts, logits, params, final_text);
  };
  const auto [texts, logits, params, final_text] = run(true);
  const auto [no_texts, plain_logits, plain_params, plain_final] = run(false);
  REQUIRE(logits.size() == plain_logits.size());
  for (std::size_t i = 0; i < logits.size(); ++i) CHECK(torch::equal(logits[i], plain_logits[i]));
  REQUIRE(params.size() == plain_params.size());
  for (std::size_t i = 0; i < params.size(); ++i) CHECK(torch::equal(params[i], plain_params[i]));
  CHECK(final_text == plain_final);
  REQUIRE(texts.size() == 5);
  CHECK(texts[4] == final_text);
}

TEST_CASE("torch backend: save then reload round-trips the weights", "[torch_backend][train]") {
  BackendTempDir tmp;
  auto b = make_backend(mr::test::shared_tiny_model());
  const auto r = request("g", "Round trip", 4, 0.0, 16);
  const auto before = b->generate({r})[0].completions[0].text;
  {
    torch::NoGradGuard no_grad;
    for (auto& p : b->trainable()->parameters()) p.add_(torch::randn_like(p) * 0.2);
  }
  const auto changed = b->generate({r})[0].completions[0].text;
  REQUIRE(changed != before);
  const auto saved = tmp.path() / "trained";
  b->trainable()->save(saved);
  CHECK(std::filesystem::exists(saved / "model.safetensors"));
  CHECK(std::filesystem::exists(saved / "tokenizer.json"));
  CHECK(std::filesystem::exists(saved / "tokenizer_config.json"));

  SECTION("a backend loaded from the saved directory generates the same") {
    auto c = make_backend(saved);
    CHECK(c->generate({r})[0].completions[0].text == changed);
  }
  SECTION("reload() switches an existing backend to the saved weights") {
    auto c = make_backend(mr::test::shared_tiny_model());
    CHECK(c->generate({r})[0].completions[0].text == before);
    c->reload(saved);
    CHECK(c->generate({r})[0].completions[0].text == changed);
    CHECK(c->info().path == saved.string());
  }
  SECTION("reload() of a directory with other shapes fails") {
    const auto other = tmp.path() / "other";
    REQUIRE(mr::test::write_tiny_model(
                other, 1, mr::test::tiny_backend_config(512, "Qwen2ForCausalLM")) == 0);
    CHECK_THROWS_AS(b->reload(other), sdk::BackendError);
  }
}

TEST_CASE("torch backend: bfloat16 generates and scores", "[torch_backend]") {
  auto b = make_backend(mr::test::shared_tiny_model(), {{"dtype", sdk::Value("bfloat16")}});
  const auto g = b->generate({request("bf", "hi", 1, 0.7, 8, 2)});
  REQUIRE(g[0].error.empty());
  CHECK(g[0].completions.size() == 2);
  const auto s = b->score({{"s", {{"user", "hi"}}, "ok"}});
  REQUIRE(s[0].error.empty());
  CHECK(s[0].logprob_sum < 0.0);
}
