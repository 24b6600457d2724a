// The `openai` backend against fake OpenAI servers on loopback (cpp-httplib): order and
// spreading over servers, retries (5xx, 429 + Retry-After, garbage, hangs), 4xx recorded per
// row, the n > 1 fallback, keys from the environment, token counts, managed servers that fail.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "managed_server.hpp"
#include "metareward/openai_backend/openai_backend.hpp"
#include "metareward/sdk/error.hpp"
#include "test_host_context.hpp"

namespace oa = mr::plugins::openai_backend;
namespace sdk = mr::sdk;
using json = nlohmann::json;

namespace {

/// A scripted OpenAI server. By default it answers every chat request with `n` choices
/// "<last user message>|seed=<seed>|i=<i>" and lists one model owned by `owned_by`.
class FakeServer {
 public:
  using ChatHandler = std::function<void(const json& body, httplib::Response& res, int call)>;

  explicit FakeServer(std::string owned_by = "fake") : owned_by_(std::move(owned_by)) {
    server_.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
      record(req);
      res.set_content(json{{"object", "list"},
                           {"data",
                            {{{"id", "fake-model"},
                              {"object", "model"},
                              {"owned_by", owned_by_},
                              {"max_model_len", 321}}}}}
                          .dump(),
                      "application/json");
    });
    server_.Post("/v1/chat/completions",
                 [this](const httplib::Request& req, httplib::Response& res) {
                   record(req);
                   const int call = chat_calls_++;
                   const json body = json::parse(req.body);
                   {
                     std::lock_guard lock(mutex_);
                     bodies_.push_back(body);
                   }
                   if (handler_) return handler_(body, res, call);
                   answer(body, res);
                 });
    // Echo + logprobs as vLLM answers it: one "token" per byte of the prompt (log-prob
    // -0.01 x offset, null for the first), then the one generated token.
    server_.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      record(req);
      const json body = json::parse(req.body);
      if (!body.value("echo", false)) {
        res.status = 400;
        return;
      }
      const std::string prompt = body.at("prompt").get<std::string>();
      json tokens = json::array(), logprobs = json::array(), offsets = json::array();
      for (std::size_t i = 0; i <= prompt.size(); ++i) {
        tokens.push_back(i < prompt.size() ? prompt.substr(i, 1) : std::string("!"));
        logprobs.push_back(i == 0 ? json(nullptr) : json(-0.01 * static_cast<double>(i)));
        offsets.push_back(i);
      }
      res.set_content(
          json{{"choices",
                {{{"index", 0},
                  {"text", prompt + "!"},
                  {"finish_reason", "length"},
                  {"logprobs",
                   {{"tokens", tokens}, {"token_logprobs", logprobs}, {"text_offset", offsets}}}}}}}
              .dump(),
          "application/json");
    });
    server_.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
      record(req);
      if (!tokenize_) {
        res.status = 404;
        return;
      }
      const json body = json::parse(req.body);
      const std::string text = body.at("prompt").get<std::string>();
      json tokens = json::array();
      for (unsigned char c : text) tokens.push_back(static_cast<int>(c));
      res.set_content(json{{"count", tokens.size()}, {"tokens", tokens}}.dump(),
                      "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() before the accept loop runs would be lost (and join() would hang).
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeServer() {
    server_.stop();
    thread_.join();
  }

  static void answer(const json& body, httplib::Response& res) {
    const int n = body.value("n", 1);
    const std::string user = body["messages"].back()["content"].get<std::string>();
    json choices = json::array();
    for (int i = 0; i < n; ++i)
      choices.push_back(
          {{"index", i},
           {"message",
            {{"role", "assistant"},
             {"content", user + "|seed=" + std::to_string(body["seed"].get<std::uint64_t>()) +
                             "|i=" + std::to_string(i)}}},
           {"finish_reason", i == 1 ? "length" : "stop"}});
    res.set_content(json{{"choices", choices}, {"usage", {{"completion_tokens", 5}}}}.dump(),
                    "application/json");
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  void on_chat(ChatHandler h) { handler_ = std::move(h); }
  void enable_tokenize() { tokenize_ = true; }
  int chat_calls() const { return chat_calls_; }
  std::vector<json> bodies() const {
    std::lock_guard lock(mutex_);
    return bodies_;
  }
  std::vector<std::string> authorizations() const {
    std::lock_guard lock(mutex_);
    return authorizations_;
  }

 private:
  void record(const httplib::Request& req) {
    std::lock_guard lock(mutex_);
    authorizations_.push_back(req.get_header_value("Authorization"));
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::string owned_by_;
  ChatHandler handler_;
  bool tokenize_ = false;
  std::atomic<int> chat_calls_{0};
  mutable std::mutex mutex_;
  std::vector<json> bodies_;
  std::vector<std::string> authorizations_;
};

struct Backend {
  std::unique_ptr<mr::test::TestHostContext> ctx;
  std::unique_ptr<sdk::ModelBackend> model;
};

Backend make_backend(sdk::Table overrides) {
  overrides.emplace("retry_base_delay_s", sdk::Value(0.01));
  overrides.emplace("retry_max_delay_s", sdk::Value(0.05));
  Backend b;
  b.ctx = std::make_unique<mr::test::TestHostContext>(mr::test::config_from_schema(
      oa::openai_backend_schema(), std::move(overrides), 1, "models.served"));
  b.model = oa::make_openai_backend(*b.ctx);
  return b;
}

sdk::Value urls(std::initializer_list<std::string> list) {
  sdk::Array a;
  for (const auto& u : list) a.emplace_back(u);
  return sdk::Value(a);
}

std::vector<sdk::GenerationRequest> requests(int count, int n) {
  std::vector<sdk::GenerationRequest> out;
  for (int i = 0; i < count; ++i) {
    sdk::GenerationRequest r;
    r.id = "p" + std::to_string(i);
    r.messages = {{"user", "q" + std::to_string(i)}};
    r.n = n;
    r.seed = 1000 + static_cast<std::uint64_t>(i);
    out.push_back(r);
  }
  return out;
}

bool logged(const Backend& b, const std::string& part) {
  for (const auto& [level, m] : b.ctx->recorder().messages())
    if (m.find(part) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("results come back in request order, spread over every server") {
  FakeServer a, b;
  auto backend =
      make_backend({{"base_url", urls({a.url(), b.url()})}, {"concurrency", sdk::Value(4)}});
  const auto results = backend.model->generate(requests(20, 2));
  REQUIRE(results.size() == 20);
  for (int i = 0; i < 20; ++i) {
    CAPTURE(i);
    CHECK(results[i].request_id == "p" + std::to_string(i));
    CHECK(results[i].error.empty());
    REQUIRE(results[i].completions.size() == 2);
    CHECK(results[i].completions[0].text ==
          "q" + std::to_string(i) + "|seed=" + std::to_string(1000 + i) + "|i=0");
    CHECK(results[i].completions[1].finish_reason == sdk::FinishReason::Length);
  }
  CHECK(a.chat_calls() > 0);
  CHECK(b.chat_calls() > 0);
  CHECK(a.chat_calls() + b.chat_calls() == 20);
  // The model name came from /v1/models, and a plain server gets the OpenAI dialect.
  for (const json& body : a.bodies()) {
    CHECK(body["model"] == "fake-model");
    CHECK_FALSE(body.contains("top_k"));
  }
  CHECK(backend.model->info().context_length == 321);
}

TEST_CASE("the dialect comes from owned_by and pins that server's extra keys") {
  FakeServer vllm("vllm");
  auto backend = make_backend({{"base_url", urls({vllm.url()})}});
  backend.model->generate(requests(1, 1));
  REQUIRE(vllm.bodies().size() == 1);
  CHECK(vllm.bodies()[0]["repetition_penalty"] == 1.0);
  CHECK(vllm.bodies()[0]["top_k"] == -1);
  CHECK(backend.model->info().architecture.find("vllm") != std::string::npos);
}

TEST_CASE("5xx, 429 with Retry-After, garbage and hangs are retried until they succeed") {
  FakeServer s;
  s.on_chat([](const json& body, httplib::Response& res, int call) {
    switch (call) {
      case 0:
        res.status = 503;
        res.set_content(R"({"error":{"message":"warming up"}})", "application/json");
        return;
      case 1:
        res.status = 429;
        res.set_header("Retry-After", "0");
        return;
      case 2:
        res.set_content("<html>proxy error</html>", "text/html");
        return;
      case 3:
        std::this_thread::sleep_for(std::chrono::milliseconds(700));  // past timeout_s
        FakeServer::answer(body, res);
        return;
      default:
        FakeServer::answer(body, res);
    }
  });
  auto backend = make_backend({{"base_url", urls({s.url()})}, {"timeout_s", sdk::Value(0.3)}});
  const auto results = backend.model->generate(requests(1, 1));
  REQUIRE(results[0].error.empty());
  CHECK(results[0].completions[0].text == "q0|seed=1000|i=0");
  CHECK(s.chat_calls() == 5);
}

TEST_CASE("a 4xx other than 429 is the request's own error: recorded in its row, not retried") {
  FakeServer s;
  s.on_chat([](const json& body, httplib::Response& res, int) {
    if (body["messages"].back()["content"] == "q1") {
      res.status = 400;
      res.set_content(
          R"({"error":{"message":"prompt is too long","type":"invalid_request_error"}})",
          "application/json");
      return;
    }
    FakeServer::answer(body, res);
  });
  auto backend = make_backend({{"base_url", urls({s.url()})}});
  const auto results = backend.model->generate(requests(3, 1));
  CHECK(results[0].error.empty());
  CHECK(results[1].error == "HTTP 400: prompt is too long");
  CHECK(results[1].completions.empty());
  CHECK(results[2].error.empty());
  CHECK(s.chat_calls() == 3);
}

TEST_CASE("servers down past the retry budget stop the stage, naming every URL") {
  FakeServer up;  // answers /v1/models, then fails every chat request
  up.on_chat([](const json&, httplib::Response& res, int) { res.status = 500; });
  auto backend = make_backend({{"base_url", urls({up.url()})}, {"max_retries", sdk::Value(2)}});
  try {
    backend.model->generate(requests(2, 1));
    FAIL("generate() did not throw");
  } catch (const sdk::BackendError& e) {
    const std::string m = e.what();
    CHECK_THAT(m, Catch::Contains(up.url()));
    CHECK_THAT(m, Catch::Contains("HTTP 500"));
    CHECK_THAT(m, Catch::Contains("max_retries = 2"));
    CHECK_THAT(m, Catch::Contains("--resume"));
  }
  CHECK(up.chat_calls() >= 3);
  CHECK(up.chat_calls() <= 6);  // 3 attempts per request, and the second may not start

  // Nothing listening at all: the first call (the model list) already says so.
  const int port = oa::free_port("127.0.0.1");  // bound and closed: nothing listens there
  const std::string dead = "http://127.0.0.1:" + std::to_string(port) + "/v1";
  auto gone = make_backend({{"base_url", urls({dead})}, {"max_retries", sdk::Value(1)}});
  CHECK_THROWS_WITH(gone.model->generate(requests(1, 1)),
                    Catch::Contains(dead) && Catch::Contains("cannot connect"));
}

TEST_CASE("a server that rejects n > 1 gets one request per sample with derived seeds") {
  FakeServer s;
  s.on_chat([](const json& body, httplib::Response& res, int) {
    if (body.value("n", 1) > 1) {
      res.status = 400;
      res.set_content(R"({"error":{"message":"Only one completion choice is allowed"}})",
                      "application/json");
      return;
    }
    FakeServer::answer(body, res);
  });
  auto backend = make_backend({{"base_url", urls({s.url()})}, {"concurrency", sdk::Value(1)}});
  const auto results = backend.model->generate(requests(2, 3));
  for (int i = 0; i < 2; ++i) {
    REQUIRE(results[i].error.empty());
    REQUIRE(results[i].completions.size() == 3);
    for (int k = 0; k < 3; ++k)
      CHECK(results[i].completions[k].text ==
            "q" + std::to_string(i) + "|seed=" +
                std::to_string(sdk::derive_seed(1000 + i, static_cast<std::uint64_t>(k)) &
                               0x7FFFFFFFFFFFFFFFULL) +
                "|i=0");
  }
  // Request 0: rejected n = 3, then 3 single calls; request 1: 3 single calls directly.
  CHECK(s.chat_calls() == 7);
  int warnings = 0;
  for (const auto& [level, m] : backend.ctx->recorder().messages())
    if (m.find("does not take n = 3") != std::string::npos) ++warnings;
  CHECK(warnings == 1);
}

TEST_CASE("the API key comes from the environment variable, as a bearer token, and stays there") {
  FakeServer s;
  s.on_chat([](const json&, httplib::Response& res, int) {
    res.status = 401;
    res.set_content(R"({"error":{"message":"Incorrect API key provided"}})", "application/json");
  });
  ::setenv("MR_TEST_OPENAI_KEY", "sk-test-SECRET-123", 1);
  auto backend = make_backend(
      {{"base_url", urls({s.url()})}, {"api_key_env", sdk::Value("MR_TEST_OPENAI_KEY")}});
  const auto results = backend.model->generate(requests(1, 1));
  CHECK(results[0].error == "HTTP 401: Incorrect API key provided");
  for (const auto& a : s.authorizations()) CHECK(a == "Bearer sk-test-SECRET-123");
  CHECK_FALSE(logged(backend, "SECRET"));
  CHECK(backend.model->info().path.find("SECRET") == std::string::npos);
  ::unsetenv("MR_TEST_OPENAI_KEY");
  CHECK_THROWS_WITH(
      make_backend(
          {{"base_url", urls({s.url()})}, {"api_key_env", sdk::Value("MR_TEST_OPENAI_KEY")}}),
      Catch::Contains("api_key_env = \"MR_TEST_OPENAI_KEY\"") && Catch::Contains("not set"));
}

TEST_CASE("token counts come from the server's /tokenize, or are unavailable") {
  FakeServer with, without;
  with.enable_tokenize();
  auto a = make_backend({{"base_url", urls({with.url()})}});
  CHECK(a.model->count_tokens("abcd") == 4);
  CHECK(a.model->tokenize("ab") == std::vector<std::int64_t>{97, 98});
  auto b = make_backend({{"base_url", urls({without.url()})}});
  CHECK(b.model->count_tokens("abcd") == -1);
  CHECK(b.model->count_tokens("abcd") == -1);
  CHECK(logged(b, "no usable /tokenize"));
  CHECK_THROWS_WITH(b.model->tokenize("ab"), Catch::Contains("token ids are not available"));
}

TEST_CASE("unmanaged servers cannot reload and the message says how to get there") {
  FakeServer s;
  auto backend = make_backend({{"base_url", urls({s.url()})}});
  CHECK_THROWS_WITH(backend.model->reload("/ckpt/iter_1/model"),
                    Catch::Contains("launch = [...]") && Catch::Contains("/ckpt/iter_1/model"));
}

TEST_CASE("inconsistent keys are refused before anything starts") {
  CHECK_THROWS_WITH(make_backend({}),
                    Catch::Contains("needs base_url") && Catch::Contains("[models.served]"));
  CHECK_THROWS_WITH(
      make_backend({{"base_url", urls({"http://h/v1"})}, {"launch", urls({"vllm", "serve"})}}),
      Catch::Contains("both base_url and launch"));
  CHECK_THROWS_WITH(make_backend({{"base_url", urls({"ftp://h/v1"})}}),
                    Catch::Contains("base_url[1]"));
  CHECK_THROWS_WITH(make_backend({{"launch", urls({"vllm", "serve", "{model}"})}}),
                    Catch::Contains("path is not set"));
  CHECK_THROWS_WITH(make_backend({{"launch", urls({"vllm", "{gpu}"})}}), Catch::Contains("{gpu}"));
}

TEST_CASE("a managed server that exits or never answers is an error with its log's last lines") {
  auto exits = [] {
    make_backend({{"launch", urls({"sh", "-c", "echo cannot load the weights >&2; exit 3"})},
                  {"ready_timeout_s", sdk::Value(30.0)}});
  };
  CHECK_THROWS_WITH(exits(), Catch::Contains("exited with status 3") &&
                                 Catch::Contains("cannot load the weights"));
  auto hangs = [] {
    make_backend({{"launch", urls({"sh", "-c", "echo listening soon; exec sleep 60"})},
                  {"ready_timeout_s", sdk::Value(0.5)}});
  };
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH(hangs(),
                    Catch::Contains("did not answer") && Catch::Contains("listening soon"));
  // The hanging server was stopped (SIGTERM to its group), not waited for.
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(20));
  CHECK_THROWS_WITH(make_backend({{"launch", urls({"/nonexistent/server-binary"})}}),
                    Catch::Contains("exec failed") || Catch::Contains("exited with status 127"));
}

TEST_CASE("a server that ignores n (one choice back) also gets one request per sample") {
  FakeServer s;
  s.on_chat([](json body, httplib::Response& res, int) {
    body["n"] = 1;
    FakeServer::answer(body, res);
  });
  auto backend = make_backend({{"base_url", urls({s.url()})}, {"concurrency", sdk::Value(1)}});
  const auto results = backend.model->generate(requests(1, 2));
  REQUIRE(results[0].error.empty());
  REQUIRE(results[0].completions.size() == 2);
  CHECK(results[0].completions[1].text ==
        "q0|seed=" + std::to_string(sdk::derive_seed(1000, 1) & 0x7FFFFFFFFFFFFFFFULL) + "|i=0");
  CHECK(logged(backend, "does not take n = 2"));
}

TEST_CASE("score() renders the chat template locally and sums the completion's echoed log-probs") {
  FakeServer s;
  const std::string tokenizer = std::string(MR_SHARED_DIR) + "/fixtures/tokenizers/llama3";
  auto backend =
      make_backend({{"base_url", urls({s.url()})}, {"tokenizer", sdk::Value(tokenizer)}});
  sdk::ScoreRequest r;
  r.id = "s1";
  r.messages = {{"user", "Hi"}};
  r.completion = "Hello";
  const auto results = backend.model->score({r});
  REQUIRE(results.size() == 1);
  INFO(results[0].error);
  REQUIRE(results[0].error.empty());
  // Llama-3: the prompt ends with the assistant header; the completion is "Hello<|eot_id|>".
  const std::string prompt =
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
      "<|start_header_id|>assistant<|end_header_id|>\n\n";
  const std::string completion = "Hello<|eot_id|>";
  REQUIRE(results[0].token_logprobs.size() == completion.size());
  double sum = 0;
  for (std::size_t i = 0; i < completion.size(); ++i) sum += -0.01 * double(prompt.size() + i);
  CHECK(results[0].logprob_sum == Approx(sum));
  CHECK(results[0].token_logprobs.front() == Approx(-0.01 * double(prompt.size())));

  auto no_tokenizer = make_backend({{"base_url", urls({s.url()})}});
  CHECK_THROWS_WITH(no_tokenizer.model->score({r}), Catch::Contains("without `tokenizer`"));
}

TEST_CASE("max_in_flight_per_server bounds each server's concurrent requests") {
  struct Peak {
    std::atomic<int> now{0}, peak{0};
  };
  Peak pa, pb;
  auto slow = [](Peak& p) {
    return [&p](const json& body, httplib::Response& res, int) {
      const int n = ++p.now;
      for (int seen = p.peak; n > seen && !p.peak.compare_exchange_weak(seen, n);) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      --p.now;
      FakeServer::answer(body, res);
    };
  };
  FakeServer a, b;
  a.on_chat(slow(pa));
  b.on_chat(slow(pb));
  auto backend = make_backend({{"base_url", urls({a.url(), b.url()})},
                               {"concurrency", sdk::Value(8)},
                               {"max_in_flight_per_server", sdk::Value(2)}});
  const auto results = backend.model->generate(requests(24, 1));
  for (const auto& r : results) CHECK(r.error.empty());
  CHECK(pa.peak <= 2);
  CHECK(pb.peak <= 2);
  CHECK(pa.peak + pb.peak >= 3);  // both used, in parallel
  CHECK(a.chat_calls() + b.chat_calls() == 24);
}
