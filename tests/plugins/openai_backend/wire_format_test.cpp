// The OpenAI wire format of the `openai` backend: sampling pinned per dialect, seeds in each
// server's range, base URLs, launch placeholders, and responses that do not parse.
#include <catch2/catch.hpp>

#include "chat_protocol.hpp"
#include "endpoint.hpp"
#include "managed_server.hpp"
#include "metareward/sdk/error.hpp"

namespace oa = mr::plugins::openai_backend;
namespace sdk = mr::sdk;
using json = nlohmann::json;

namespace {

sdk::GenerationRequest request() {
  sdk::GenerationRequest r;
  r.id = "p1";
  r.messages = {{"system", "Be brief."}, {"user", "Hi"}};
  r.sampling.temperature = 0.7;
  r.sampling.top_p = 0.9;
  r.sampling.max_new_tokens = 33;
  r.sampling.stop = {"\n\n"};
  r.n = 3;
  r.seed = 0xFEDCBA9876543210ULL;
  return r;
}

}  // namespace

TEST_CASE("every dialect gets the sampling settings and neutral values for the rest") {
  const auto r = request();
  const oa::SampleCall call{&r, r.n, r.seed};
  for (auto d : {oa::Dialect::Metareward, oa::Dialect::Vllm, oa::Dialect::Sglang,
                 oa::Dialect::LlamaCpp, oa::Dialect::OpenAI}) {
    CAPTURE(oa::dialect_name(d));
    const json b = oa::request_body(call, d, "m");
    CHECK(b["model"] == "m");
    CHECK(b["messages"].size() == 2);
    CHECK(b["messages"][0]["role"] == "system");
    CHECK(b["n"] == 3);
    CHECK(b["temperature"] == 0.7);
    CHECK(b["top_p"] == 0.9);
    CHECK(b["max_tokens"] == 33);
    CHECK(b["stop"] == json::array({"\n\n"}));
    CHECK(b["stream"] == false);
    CHECK(b["presence_penalty"] == 0.0);
    CHECK(b["frequency_penalty"] == 0.0);
  }
  const json vllm = oa::request_body(call, oa::Dialect::Vllm, "m");
  CHECK(vllm["top_k"] == -1);
  CHECK(vllm["min_p"] == 0.0);
  CHECK(vllm["repetition_penalty"] == 1.0);
  CHECK(vllm["ignore_eos"] == false);
  const json llama = oa::request_body(call, oa::Dialect::LlamaCpp, "m");
  CHECK(llama["top_k"] == 0);
  CHECK(llama["min_p"] == 0.0);
  CHECK(llama["repeat_penalty"] == 1.0);
  CHECK(llama["typical_p"] == 1.0);
  CHECK(llama["mirostat"] == 0);
  CHECK(llama["cache_prompt"] == false);
  const json ours = oa::request_body(call, oa::Dialect::Metareward, "m");
  CHECK(ours["seed"].get<std::uint64_t>() == r.seed);  // all 64 bits
  CHECK(ours["top_k"] == 0);
  const json openai = oa::request_body(call, oa::Dialect::OpenAI, "m");
  CHECK_FALSE(openai.contains("top_k"));
  CHECK_FALSE(openai.contains("min_p"));
}

TEST_CASE("top_k reaches servers that have it and is refused by the OpenAI dialect") {
  auto r = request();
  r.sampling.top_k = 20;
  const oa::SampleCall call{&r, 1, r.seed};
  CHECK(oa::request_body(call, oa::Dialect::Vllm, "m")["top_k"] == 20);
  CHECK(oa::request_body(call, oa::Dialect::LlamaCpp, "m")["top_k"] == 20);
  CHECK_THROWS_WITH(oa::request_body(call, oa::Dialect::OpenAI, "m"),
                    Catch::Contains("top_k = 20"));
}

TEST_CASE("raw prompts go to /completions, conversations to /chat/completions") {
  auto r = request();
  CHECK(std::string(oa::request_path({&r, 1, 0})) == "/chat/completions");
  r.prompt_text = "Once upon";
  CHECK(std::string(oa::request_path({&r, 1, 0})) == "/completions");
  const json b = oa::request_body({&r, 1, 0}, oa::Dialect::Vllm, "m");
  CHECK(b["prompt"] == "Once upon");
  CHECK_FALSE(b.contains("messages"));
}

TEST_CASE("seeds are sent in each server's range") {
  const std::uint64_t s = 0xFFFFFFFFFFFFFFFFULL;
  CHECK(oa::wire_seed(s, oa::Dialect::Metareward) == s);
  CHECK(oa::wire_seed(s, oa::Dialect::Vllm) == 0x7FFFFFFFFFFFFFFFULL);
  CHECK(oa::wire_seed(s, oa::Dialect::OpenAI) == 0x7FFFFFFFFFFFFFFFULL);
  // 0xFFFFFFFF is llama.cpp's "random seed".
  CHECK(oa::wire_seed(s, oa::Dialect::LlamaCpp) == 0xFFFFFFFEULL);
  CHECK(oa::wire_seed(0x100000005ULL, oa::Dialect::LlamaCpp) == 5);
}

TEST_CASE("dialects are recognised from /v1/models owned_by") {
  CHECK(oa::dialect_from_owned_by("vllm") == oa::Dialect::Vllm);
  CHECK(oa::dialect_from_owned_by("llamacpp") == oa::Dialect::LlamaCpp);
  CHECK(oa::dialect_from_owned_by("sglang") == oa::Dialect::Sglang);
  CHECK(oa::dialect_from_owned_by("metareward") == oa::Dialect::Metareward);
  CHECK(oa::dialect_from_owned_by("openai") == oa::Dialect::OpenAI);
  CHECK(oa::dialect_from_owned_by("") == oa::Dialect::OpenAI);
  CHECK_THROWS_WITH(oa::parse_dialect("tgi"), Catch::Contains("tgi"));
}

TEST_CASE("choices are parsed in index order with finish reasons and token counts") {
  const std::string body = R"({"choices":[
      {"index":1,"message":{"role":"assistant","content":"b"},"finish_reason":"length",
       "completion_tokens":7},
      {"index":0,"message":{"role":"assistant","content":"a"},"finish_reason":"stop",
       "completion_tokens":2}],
    "usage":{"prompt_tokens":5,"completion_tokens":9}})";
  const auto c = oa::parse_choices(body, 2, true);
  REQUIRE(c.size() == 2);
  CHECK(c[0].text == "a");
  CHECK(c[0].finish_reason == sdk::FinishReason::Stop);
  CHECK(c[0].tokens == 2);
  CHECK(c[1].text == "b");
  CHECK(c[1].finish_reason == sdk::FinishReason::Length);
  CHECK(c[1].tokens == 7);
  // n == 1 without the extension: usage.completion_tokens.
  const auto one = oa::parse_choices(
      R"({"choices":[{"text":"x","finish_reason":"content_filter"}],"usage":{"completion_tokens":4}})",
      1, false);
  CHECK(one[0].tokens == 4);
  CHECK(one[0].finish_reason == sdk::FinishReason::Error);
  // n > 1 without the extension: unknown.
  const auto two = oa::parse_choices(
      R"({"choices":[{"index":0,"message":{"content":"x"},"finish_reason":null},
                     {"index":1,"message":{"content":null},"finish_reason":"stop"}],
          "usage":{"completion_tokens":4}})",
      2, true);
  CHECK(two[0].tokens == -1);
  CHECK(two[0].finish_reason == sdk::FinishReason::Stop);
  CHECK(two[1].text.empty());
}

TEST_CASE("answers that are not well-formed are refused, saying what is wrong") {
  CHECK_THROWS_WITH(oa::parse_choices("<html>", 1, true), Catch::Contains("not JSON"));
  CHECK_THROWS_WITH(oa::parse_choices(R"({"id":"x"})", 1, true), Catch::Contains("choices"));
  CHECK_THROWS_WITH(oa::parse_choices(R"({"choices":[]})", 1, true),
                    Catch::Contains("0 choices; 1 were asked for"));
  CHECK_THROWS_WITH(oa::parse_choices(R"({"choices":[{"index":0,"message":{"content":"a"}},
                                       {"index":0,"message":{"content":"b"}}]})",
                                      2, true),
                    Catch::Contains("two choices have index 0"));
  CHECK_THROWS_WITH(
      oa::parse_choices(R"({"choices":[{"index":5,"message":{"content":"a"}}]})", 1, true),
      Catch::Contains("bad index"));
  CHECK_THROWS_WITH(oa::parse_choices(R"({"choices":[{"message":{"content":3}}]})", 1, true),
                    Catch::Contains("message.content"));
}

TEST_CASE("base URLs are split for httplib and bad ones named") {
  const auto e = oa::parse_endpoint("http://127.0.0.1:8000/v1/", "base_url");
  CHECK(e.origin == "http://127.0.0.1:8000");
  CHECK(e.prefix == "/v1");
  CHECK(e.root_prefix.empty());
  CHECK(e.base_url == "http://127.0.0.1:8000/v1");
  const auto h = oa::parse_endpoint("https://api.example.com/openai/v1", "base_url");
  CHECK(h.https);
  CHECK(h.root_prefix == "/openai");
  CHECK_THROWS_WITH(oa::parse_endpoint("127.0.0.1:8000", "base_url[1]"),
                    Catch::Contains("base_url[1]") && Catch::Contains("not an http"));
  CHECK_THROWS_WITH(oa::parse_endpoint("http://user:pw@h/v1", "base_url"),
                    Catch::Contains("api_key_env"));
  CHECK_THROWS_WITH(oa::parse_endpoint("http://h/v1?x=1", "base_url"), Catch::Contains("query"));
}

TEST_CASE("launch placeholders are substituted and unknown ones refused") {
  const auto argv =
      oa::substitute_launch({"vllm", "serve", "{model}", "--port={port}", "{host}"},
                            {{"model", "/m"}, {"port", "81"}, {"host", "h"}}, "launch");
  CHECK(argv == std::vector<std::string>{"vllm", "serve", "/m", "--port=81", "h"});
  CHECK_THROWS_WITH(oa::substitute_launch({"x", "{gpu}"}, {}, "[models.p] launch"),
                    Catch::Contains("[models.p] launch") && Catch::Contains("{gpu}"));
  CHECK_THROWS_WITH(oa::substitute_launch({}, {}, "launch"), Catch::Contains("empty"));
}
