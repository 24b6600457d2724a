// End-to-end: `metareward serve` on the tiny init-model checkpoint, driven over HTTP with
// httplib::Client: the endpoints, byte-identical results against `metareward generate`, batching
// of concurrent requests, every error path, authentication, cancellation and the SIGTERM drain.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cctype>
#include <csignal>
#include <filesystem>
#include <limits>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "jsonl_rows.hpp"
#include "metareward/sdk/host.hpp"
#include "serve_client.hpp"
#include "serve_process.hpp"
#include "serve_soak.hpp"
#include "tiny_model.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using mr::tests::chat_body;
using mr::tests::CliResult;
using mr::tests::error_of;
using mr::tests::get;
using mr::tests::post;
using mr::tests::read_text;
using mr::tests::Reply;
using mr::tests::run_cli;
using mr::tests::ScratchDir;
using mr::tests::ServeProcess;
using mr::tests::sse_data;
using mr::tests::texts;
using mr::tests::tiny_model;

#ifdef MR_E2E_HAVE_TORCH_BACKEND

TEST_CASE("serve: endpoints, and chat n=3 equals `metareward generate` byte for byte",
          "[e2e][serve]") {
  ScratchDir dir("serve_basic");
  const fs::path model = tiny_model(dir);
  ServeProcess server(dir.path() / "serve.log", {"--model", model.string()});

  const Reply health = get(server, "/health");
  CHECK(health.status == 200);
  CHECK(health.body == json({{"status", "ok"}}));

  const Reply models = get(server, "/v1/models");
  REQUIRE(models.status == 200);
  CHECK(models.body["object"] == "list");
  REQUIRE(models.body["data"].size() == 1);
  const json& m = models.body["data"][0];
  CHECK(m["id"] == model.string());  // Default served name: the --model path as given.
  CHECK(m["object"] == "model");
  CHECK(m["owned_by"] == "metareward");
  CHECK(m["root"] == model.string());
  CHECK(m["created"].is_number_integer());
  CHECK(m["max_model_len"] == 256);

  for (const auto& [path, body] : {std::pair{"/tokenize", json{{"prompt", "Sort 3 1 2"}}},
                                   std::pair{"/v1/tokenize", json{{"content", "Sort 3 1 2"}}}}) {
    const Reply t = post(server, path, body);
    INFO(path << ": " << t.text);
    REQUIRE(t.status == 200);
    CHECK(t.body["count"].get<int>() > 0);
    CHECK(t.body["max_model_len"] == 256);
    REQUIRE(t.body["tokens"].is_array());
    CHECK(t.body["tokens"].size() == t.body["count"].get<std::size_t>());
  }

  // The same prompt and sampling through `metareward generate`: its row 0 uses seed
  // derive_seed(--seed, 0), so the HTTP request with that seed must give the same completions.
  const std::uint64_t cli_seed = 11;
  const std::uint64_t seed = mr::sdk::derive_seed(cli_seed, 0);
  const auto generate = [&](const std::vector<std::string>& extra) {
    const fs::path prompts = dir.write("p.jsonl", "{\"prompt\": \"Sort 3 1 2\"}\n");
    std::vector<std::string> args = {"generate",
                                     "--model",
                                     model.string(),
                                     "--input",
                                     prompts.string(),
                                     "--n",
                                     "3",
                                     "--seed",
                                     std::to_string(cli_seed),
                                     "--temperature",
                                     "0.9",
                                     "--top-p",
                                     "0.95",
                                     "--top-k",
                                     "40",
                                     "--max-new-tokens",
                                     "24"};
    args.insert(args.end(), extra.begin(), extra.end());
    const CliResult r = run_cli(args);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const auto rows = mr::tests::jsonl_rows(r.out);
    REQUIRE(rows.size() == 1);
    return rows[0]["completions"];
  };
  const json expected = generate({});
  const Reply chat = post(server, "/v1/chat/completions", chat_body("Sort 3 1 2", seed, 3, 24));
  INFO(chat.text);
  REQUIRE(chat.status == 200);
  CHECK(chat.body["object"] == "chat.completion");
  CHECK(chat.body["id"].get<std::string>().rfind("chatcmpl-", 0) == 0);
  CHECK(chat.body["model"] == model.string());
  CHECK(chat.body["system_fingerprint"].get<std::string>().rfind("metareward-", 0) == 0);
  REQUIRE(chat.body["choices"].size() == 3);
  std::int64_t completion_tokens = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    const json& c = chat.body["choices"][i];
    CHECK(c["index"] == i);
    CHECK(c["message"]["role"] == "assistant");
    CHECK(c["message"]["content"] == expected[i]["text"]);  // Byte-identical text.
    CHECK(c["completion_tokens"] == expected[i]["tokens"]);
    CHECK(c["finish_reason"] == expected[i]["finish_reason"]);
    completion_tokens += c["completion_tokens"].get<std::int64_t>();
  }
  const json& usage = chat.body["usage"];
  CHECK(usage["completion_tokens"] == completion_tokens);
  CHECK(usage["prompt_tokens"].get<int>() > 0);
  CHECK(usage["total_tokens"] == usage["prompt_tokens"].get<int>() + completion_tokens);
  // A large body is read whatever its Content-Type (curl -d sends a form type, whose bodies
  // httplib itself would cap at 8 KiB).
  json padded = chat_body("Sort 3 1 2", seed, 3, 24);
  padded["padding"] = std::string(100000, 'p');
  const Reply form =
      post(server, "/v1/chat/completions", padded.dump(), {}, "application/x-www-form-urlencoded");
  INFO(form.text.substr(0, 300));
  CHECK(form.status == 200);
  CHECK(texts(form.body) == texts(chat.body));
  // Same seed, same texts; the model's name may be given.
  json named = chat_body("Sort 3 1 2", seed, 3, 24);
  named["model"] = model.string();
  CHECK(texts(post(server, "/v1/chat/completions", named).body) == texts(chat.body));

  {  // stop strings end a completion as in `metareward generate --stop`
    // A character the completions contain (not at their start), so that the stop really cuts.
    std::string stop;
    for (const auto& c : expected) {
      const std::string text = c["text"];
      for (std::size_t k = 1; k < text.size() && stop.empty(); ++k)
        if (std::isalnum(static_cast<unsigned char>(text[k])) && text.find(text[k]) == k)
          stop = std::string(1, text[k]);
    }
    INFO("completions: " << expected.dump());
    REQUIRE(!stop.empty());
    const json with_stop = generate({"--stop", stop, "--stop", "\n\n\n"});
    json body = chat_body("Sort 3 1 2", seed, 3, 24);
    body["stop"] = {stop, "\n\n\n"};
    const Reply r = post(server, "/v1/chat/completions", body);
    REQUIRE(r.status == 200);
    bool cut = false;
    for (std::size_t i = 0; i < 3; ++i) {
      const std::string text = r.body["choices"][i]["message"]["content"];
      const std::string full = expected[i]["text"];
      CHECK(text == with_stop[i]["text"]);
      CHECK(text.find(stop) == std::string::npos);
      CHECK(full.rfind(text, 0) == 0);  // A prefix of the completion without stop strings.
      cut = cut || text.size() < full.size();
      CHECK(r.body["choices"][i]["finish_reason"] == with_stop[i]["finish_reason"]);
      CHECK(r.body["choices"][i]["completion_tokens"] == with_stop[i]["tokens"]);
    }
    CHECK(cut);
    body["stop"] = stop;  // A single string.
    const Reply single = post(server, "/v1/chat/completions", body);
    REQUIRE(single.status == 200);
    CHECK(texts(single.body) == texts(r.body));
  }

  {  // seeds take the whole uint64 range; a negative seed is its two's complement
    const Reply big = post(server, "/v1/chat/completions",
                           chat_body("hi", std::numeric_limits<std::uint64_t>::max()));
    REQUIRE(big.status == 200);
    json negative = chat_body("hi", 0);
    negative["seed"] = -1;
    const Reply neg = post(server, "/v1/chat/completions", negative);
    REQUIRE(neg.status == 200);
    CHECK(texts(neg.body) == texts(big.body));
  }

  {  // streaming assembles to the non-streamed response
    json body = chat_body("Sort 3 1 2", seed, 3, 24);
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
    const Reply r = post(server, "/v1/chat/completions", body);
    REQUIRE(r.status == 200);
    const auto events = sse_data(r.text);
    REQUIRE(!events.empty());
    CHECK(events.back() == "[DONE]");
    std::vector<std::string> assembled(3);
    std::vector<std::string> finish(3);
    json last_usage;
    for (std::size_t e = 0; e + 1 < events.size(); ++e) {
      const json chunk = json::parse(events[e]);
      CHECK(chunk["object"] == "chat.completion.chunk");
      CHECK(chunk["model"] == model.string());
      if (chunk["choices"].empty()) {
        last_usage = chunk["usage"];
        continue;
      }
      const json& c = chunk["choices"][0];
      const std::size_t i = c["index"];
      if (c["delta"].contains("content")) assembled[i] += c["delta"]["content"].get<std::string>();
      if (!c["finish_reason"].is_null()) finish[i] = c["finish_reason"];
    }
    CHECK(assembled == texts(chat.body));
    for (std::size_t i = 0; i < 3; ++i)
      CHECK(finish[i] == chat.body["choices"][i]["finish_reason"]);
    CHECK(last_usage == chat.body["usage"]);
  }

  {  // completions take the prompt verbatim, deterministic per seed
    const json body = {{"prompt", "Sort 3 1 2"}, {"seed", 5}, {"max_tokens", 12}, {"n", 2}};
    const Reply a = post(server, "/v1/completions", body);
    INFO(a.text);
    REQUIRE(a.status == 200);
    CHECK(a.body["object"] == "text_completion");
    REQUIRE(a.body["choices"].size() == 2);
    CHECK(a.body["choices"][0]["logprobs"].is_null());
    CHECK(a.body["choices"][0]["completion_tokens"].get<int>() <= 12);
    json as_array = body;
    as_array["prompt"] = {"Sort 3 1 2"};
    CHECK(texts(post(server, "/v1/completions", as_array).body) == texts(a.body));
    json streamed = body;
    streamed["stream"] = true;
    const Reply s = post(server, "/v1/completions", streamed);
    REQUIRE(s.status == 200);
    std::vector<std::string> assembled(2);
    for (const auto& e : sse_data(s.text)) {
      if (e == "[DONE]") continue;
      const json chunk = json::parse(e);
      CHECK(chunk["object"] == "text_completion");
      assembled[chunk["choices"][0]["index"].get<std::size_t>()] += chunk["choices"][0]["text"];
    }
    CHECK(assembled == texts(a.body));
  }
  CHECK(server.stop() == 0);
}

TEST_CASE("serve: concurrent requests are batched and each equals its solo result",
          "[e2e][serve]") {
  ScratchDir dir("serve_concurrent");
  const fs::path model = tiny_model(dir);
  // A wide window so that the concurrent requests surely share batches.
  ServeProcess server(dir.path() / "serve.log",
                      {"--model", model.string(), "--batch-window-ms", "300", "--max-batch", "6",
                       "--log-level", "debug"});
  constexpr int kThreads = 16;
  const auto body = [](int i) {
    return chat_body("prompt " + std::to_string(i % 5), 100 + static_cast<std::uint64_t>(i),
                     1 + i % 3, 8 + i % 7);
  };
  std::vector<std::vector<std::string>> solo(kThreads), together(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    const Reply r = post(server, "/v1/chat/completions", body(i));
    REQUIRE(r.status == 200);
    solo[i] = texts(r.body);
  }
  std::vector<int> status(kThreads, -1);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i)
    threads.emplace_back([&, i] {
      const Reply r = post(server, "/v1/chat/completions", body(i));
      status[i] = r.status;
      if (r.status == 200)
        together[i] = texts(r.body);
      else
        together[i] = {r.text};
    });
  for (auto& t : threads) t.join();
  const std::string log = server.log();
  INFO(log);
  for (int i = 0; i < kThreads; ++i) {
    INFO("request " << i);
    CHECK(status[i] == 200);
    CHECK(together[i] == solo[i]);
  }
  // One debug line per batch; at least one batch held several requests, none more than 6.
  const std::regex batch_line("batch [0-9]+: ([0-9]+) requests");
  int largest = 0;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), batch_line);
       it != std::sregex_iterator(); ++it)
    largest = std::max(largest, std::stoi((*it)[1]));
  INFO(log);
  CHECK(largest >= 2);
  CHECK(largest <= 6);
  CHECK(server.stop() == 0);
}

TEST_CASE("serve: bad requests get OpenAI error bodies (400, 404, 413) and never crash it",
          "[e2e][serve]") {
  ScratchDir dir("serve_errors");
  const fs::path model = tiny_model(dir);
  ServeProcess server(dir.path() / "serve.log",
                      {"--model", model.string(), "--served-model-name", "tiny", "--max-body-bytes",
                       "4096", "--max-tokens-limit", "64"});
  const std::string chat = "/v1/chat/completions";
  const auto with = [](const std::string& key, const json& value) {
    json body = chat_body("hi", 1, 1, 4);
    body[key] = value;
    return body;
  };
  // Body (or field) -> the param the error must name (null: none).
  const std::vector<std::pair<json, json>> bad_fields = {
      {with("messages", "hi"), "messages"},
      {with("messages", json::array()), "messages"},
      {with("messages", {{{"role", "robot"}, {"content", "x"}}}), "messages[0].role"},
      {with("messages", {{{"role", "user"}}}), "messages[0].content"},
      {with("messages", {{{"role", "user"}, {"content", 5}}}), "messages[0].content"},
      {with("messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}}}}}}),
       "messages[0].content[0].type"},
      {with("n", 0), "n"},
      {with("n", 129), "n"},
      {with("n", "2"), "n"},
      {with("n", 1.5), "n"},
      {with("temperature", -1), "temperature"},
      {with("temperature", 2.5), "temperature"},
      {with("temperature", "hot"), "temperature"},
      {with("top_p", 0), "top_p"},
      {with("top_p", 1.5), "top_p"},
      {with("top_k", -2), "top_k"},
      {with("max_tokens", 0), "max_tokens"},
      {with("max_tokens", 65), "max_tokens"},
      {with("max_completion_tokens", 65), "max_completion_tokens"},
      {with("stop", 5), "stop"},
      {with("stop", {"a", 1}), "stop[1]"},
      {with("seed", 1.5), "seed"},
      {with("seed", "7"), "seed"},
      {with("stream", "yes"), "stream"},
      {with("stream_options", {{"include_usage", 1}}), "stream_options.include_usage"},
      {with("logprobs", true), "logprobs"},
      {with("logprobs", 1), "logprobs"},
      {with("presence_penalty", 0.5), "presence_penalty"},
      {with("frequency_penalty", -1), "frequency_penalty"},
      {with("repetition_penalty", 1.2), "repetition_penalty"},
      {with("min_p", 0.1), "min_p"},
  };
  for (const auto& [body, param] : bad_fields) {
    const Reply r = post(server, chat, body);
    INFO(body.dump() << " -> " << r.text);
    CHECK(r.status == 400);
    const json e = error_of(r);
    CHECK(e["type"] == "invalid_request_error");
    CHECK(e["param"] == param);
  }
  for (const std::string& text : {std::string("{not json"), std::string("[1, 2]"), std::string(""),
                                  std::string("\"text\"")}) {
    const Reply r = post(server, chat, text);
    INFO(text << " -> " << r.text);
    CHECK(r.status == 400);
    CHECK(error_of(r)["type"] == "invalid_request_error");
  }
  // Neutral values of unsupported features, nulls and unknown fields are accepted.
  json neutral = chat_body("hi", 1, 1, 4);
  neutral.update({{"presence_penalty", 0},
                  {"frequency_penalty", 0.0},
                  {"repetition_penalty", 1},
                  {"min_p", 0},
                  {"logprobs", false},
                  {"stop", nullptr},
                  {"user", "u"},
                  {"some_extension", {1, 2}},
                  {"top_k", -1},
                  {"model", "tiny"}});
  CHECK(post(server, chat, neutral).status == 200);
  // A prompt longer than the context: the backend's per-request error, as a 400.
  const Reply too_long = post(server, chat, chat_body(std::string(600, 'x'), 1, 1, 4));
  CHECK(too_long.status == 400);
  INFO(too_long.text);
  CHECK(error_of(too_long)["type"] == "invalid_request_error");
  // Another model's name: 404 model_not_found.
  const Reply other = post(server, chat, with("model", "gpt-4"));
  CHECK(other.status == 404);
  CHECK(error_of(other)["code"] == "model_not_found");
  CHECK(error_of(other)["param"] == "model");
  // Completions: the prompt's shape and the unsupported echo/logprobs.
  const std::vector<std::pair<json, std::string>> bad_completions = {
      {{{"prompt", {"a", "b"}}}, "prompt"},
      {{{"prompt", {1, 2}}}, "prompt"},
      {{{"prompt", ""}}, "prompt"},
      {json::object(), "prompt"},
      {{{"prompt", "a"}, {"echo", true}}, "echo"},
      {{{"prompt", "a"}, {"logprobs", 2}}, "logprobs"}};
  for (const auto& [body, param] : bad_completions) {
    const Reply r = post(server, "/v1/completions", body);
    INFO(body.dump() << " -> " << r.text);
    CHECK(r.status == 400);
    CHECK(error_of(r)["param"] == param);
  }
  const Reply tok = post(server, "/tokenize", json{{"prompt", "a"}, {"add_special_tokens", true}});
  CHECK(tok.status == 400);
  CHECK(error_of(tok)["param"] == "add_special_tokens");
  CHECK(post(server, "/tokenize", json{{"text", "a"}}).status == 400);
  // Unknown paths and methods: 404 in the same shape.
  for (const Reply& r : std::vector<Reply>{get(server, "/v2/nothing"), get(server, chat),
                                           post(server, "/x", std::string("{}"))}) {
    CHECK(r.status == 404);
    CHECK(error_of(r)["type"] == "invalid_request_error");
  }
  // A body over --max-body-bytes: 413.
  const Reply big = post(server, chat, chat_body(std::string(5000, 'y'), 1));
  CHECK(big.status == 413);
  CHECK(error_of(big)["message"].get<std::string>().find("4096") != std::string::npos);
  // Still serving.
  CHECK(get(server, "/health").status == 200);
  CHECK(post(server, chat, chat_body("hi", 1, 1, 4)).status == 200);
  CHECK(server.stop() == 0);
}

TEST_CASE("serve: --api-key-env requires the bearer key and never logs it", "[e2e][serve]") {
  ScratchDir dir("serve_auth");
  const fs::path model = tiny_model(dir);
  const std::string key = "sk-test-5ecret-value";
  ServeProcess server(
      dir.path() / "serve.log",
      {"--model", model.string(), "--api-key-env", "MR_TEST_SERVE_KEY", "--log-level", "debug"},
      {"MR_TEST_SERVE_KEY=" + key});
  const json body = chat_body("hi", 3, 1, 4);
  for (const httplib::Headers& headers :
       {httplib::Headers{}, httplib::Headers{{"Authorization", "Bearer wrong"}},
        httplib::Headers{{"Authorization", key}}}) {
    const Reply r = post(server, "/v1/chat/completions", body.dump(), headers);
    CHECK(r.status == 401);
    const json e = error_of(r);
    CHECK(e["type"] == "authentication_error");
    CHECK(r.text.find(key) == std::string::npos);
  }
  CHECK(get(server, "/v1/models").status == 401);
  const httplib::Headers good = {{"Authorization", "Bearer " + key}};
  CHECK(post(server, "/v1/chat/completions", body.dump(), good).status == 200);
  CHECK(get(server, "/v1/models", good).status == 200);
  CHECK(get(server, "/health").status == 200);  // Health needs no key.
  CHECK(server.stop() == 0);
  CHECK(server.log().find(key) == std::string::npos);
}

TEST_CASE(
    "serve: a soak with 10 % malformed or oversized or cut-off or abandoned requests answers "
    "every valid one",
    "[e2e][serve]") {
  ScratchDir dir("serve_soak");
  const fs::path model = tiny_model(dir);
  ServeProcess server(dir.path() / "serve.log", {"--model", model.string(), "--served-model-name",
                                                 "tiny", "--max-body-bytes", "65536"});
  mr::tests::SoakOptions o;
  o.host = server.host();
  o.port = server.port();
  o.model = "tiny";
  o.requests = 400;  // bench/serve_soak.cpp runs the full 2,000 at concurrency 64
  o.concurrency = 32;
  const mr::tests::SoakResult r = mr::tests::run_soak(o);
  INFO("valid " << r.valid << ", ok " << r.valid_ok << ", 5xx " << r.valid_5xx << ", abuse "
                << r.abuse << "; first failures: " << Catch::Detail::stringify(r.failures) << "\n"
                << server.log().substr(0, 4000));
  CHECK(r.kinds.size() == 5);  // every kind of abuse was sent
  CHECK(r.abuse >= 20);
  CHECK(r.valid_5xx == 0);
  CHECK(r.valid_ok == r.valid);
  // The abuse that waits for an answer gets a 4xx, never a 5xx.
  for (const auto& [status, count] : r.abuse_status) {
    INFO("status " << status << " x" << count);
    CHECK((status == 0 || (status >= 400 && status < 500)));
  }
  CHECK(r.abuse_status.count(400) == 1);  // the malformed bodies
  CHECK(r.abuse_status.count(413) == 1);  // the oversized ones
  const Reply health = get(server, "/health");
  CHECK(health.status == 200);
  CHECK(server.stop() == 0);
}

TEST_CASE("serve: SIGTERM answers the request in flight, refuses new ones (503), exits 0",
          "[e2e][serve]") {
  ScratchDir dir("serve_sigterm");
  const fs::path model = tiny_model(dir);
  // The request waits 3 s in its batch window: SIGTERM lands while it is in flight.
  ServeProcess server(dir.path() / "serve.log", {"--model", model.string(), "--batch-window-ms",
                                                 "3000", "--log-level", "debug"});
  Reply in_flight;
  std::thread request(
      [&] { in_flight = post(server, "/v1/chat/completions", chat_body("hi", 9, 2, 8)); });
  const auto wait_for = [&](const std::string& text) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (server.log().find(text) == std::string::npos &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  };
  wait_for("chatcmpl-");  // The server has the request (its debug line).
  server.signal(SIGTERM);
  wait_for("SIGTERM received");
  // Draining: still listening, but new work is refused.
  const Reply refused = post(server, "/v1/chat/completions", chat_body("hi", 10, 1, 4));
  INFO(refused.text);
  CHECK(refused.status == 503);
  if (refused.status == 503) CHECK(error_of(refused)["type"] == "server_error");
  const int code = server.wait(std::chrono::seconds(60));
  request.join();
  INFO(server.log());
  CHECK(code == 0);
  CHECK(in_flight.status == 200);
  CHECK(in_flight.body["choices"].size() == 2);
  CHECK_THAT(server.log(), Catch::Contains("serve: stopped"));
}

TEST_CASE("serve: a streaming client that goes away while queued is taken out of the queue",
          "[e2e][serve]") {
  ScratchDir dir("serve_cancel");
  const fs::path model = tiny_model(dir);
  // A batch window far longer than the disconnect takes to notice (two keep-alive writes).
  ServeProcess server(dir.path() / "serve.log", {"--model", model.string(), "--batch-window-ms",
                                                 "9000", "--log-level", "debug"});
  {
    // A raw connection: send the request, read until the first bytes of the stream (a
    // keep-alive comment) arrive, then hang up.
    json body = chat_body("hi", 4, 1, 8);
    body["stream"] = true;
    const std::string payload = body.dump();
    const std::string request =
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
        "Content-Type: application/json\r\nContent-Length: " +
        std::to_string(payload.size()) + "\r\n\r\n" + payload;
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(server.port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size()));
    std::string received;
    char buffer[4096];
    while (received.find(": keep-alive") == std::string::npos) {
      const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      received.append(buffer, static_cast<std::size_t>(n));
    }
    INFO(received);
    CHECK_THAT(received, Catch::StartsWith("HTTP/1.1 200"));
    CHECK_THAT(received, Catch::Contains("text/event-stream"));
    CHECK_THAT(received, Catch::Contains(": keep-alive"));
    ::close(fd);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(8);
  while (server.log().find("cancelled while queued") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  INFO(server.log());
  CHECK_THAT(server.log(), Catch::Contains("cancelled while queued"));
  CHECK(server.log().find("batch 1:") == std::string::npos);  // It never reached generate().
  CHECK(server.stop() == 0);
}

TEST_CASE("serve: startup errors exit 1, usage errors 2", "[e2e][serve]") {
  ScratchDir dir("serve_startup");
  const fs::path model = tiny_model(dir);
  const CliResult missing = run_cli({"serve", "--model", (dir.path() / "nope").string()});
  CHECK(missing.exit_code == 1);
  CHECK_THAT(missing.err, Catch::Contains("nope"));
  {
    ServeProcess first(dir.path() / "first.log", {"--model", model.string()});
    const CliResult in_use =
        run_cli({"serve", "--model", model.string(), "--port", std::to_string(first.port())});
    CHECK(in_use.exit_code == 1);
    CHECK_THAT(in_use.err, Catch::Contains("cannot listen"));
    CHECK(first.stop(SIGINT) == 0);
  }
  CHECK(run_cli({"serve"}).exit_code == 2);
  CHECK(run_cli({"serve", "--model", model.string(), "--max-batch", "0"}).exit_code == 2);
  CHECK(run_cli({"serve", "--model", model.string(), "--port", "70000"}).exit_code == 2);
  const CliResult no_key =
      run_cli({"serve", "--model", model.string(), "--api-key-env", "MR_TEST_SERVE_UNSET_KEY"});
  CHECK(no_key.exit_code == 2);
  CHECK_THAT(no_key.err, Catch::Contains("MR_TEST_SERVE_UNSET_KEY"));
  CHECK(run_cli({"serve", "--model", model.string(), "--set", "models.policy.no_such_key=1"})
            .exit_code == 2);
}
#endif
