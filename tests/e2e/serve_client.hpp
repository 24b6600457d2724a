// HTTP helpers of the `metareward serve` end-to-end tests (serve_tests.cpp): requests through
// httplib::Client with the reply parsed, OpenAI error bodies checked, SSE payloads split.
#pragma once

#include <httplib.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve_process.hpp"

namespace mr::tests {

using json = nlohmann::json;

struct Reply {
  int status = -1;  ///< -1: no response (connection failed).
  json body;
  std::string text;  ///< The body, or why there is no response.
};

inline httplib::Client client(const ServeProcess& server) {
  httplib::Client c(server.host(), server.port());
  c.set_read_timeout(120, 0);
  c.set_write_timeout(60, 0);
  return c;
}

inline Reply parse(const httplib::Result& r) {
  Reply out;
  if (!r) {
    out.text = "no response: " + httplib::to_string(r.error());
    return out;
  }
  out.status = r->status;
  out.text = r->body;
  out.body = json::parse(r->body, nullptr, false);
  return out;
}

inline Reply post(const ServeProcess& server,
                  const std::string& path,
                  const std::string& body,
                  const httplib::Headers& headers = {},
                  const std::string& content_type = "application/json") {
  httplib::Client c = client(server);
  return parse(c.Post(path.c_str(), headers, body, content_type.c_str()));
}

inline Reply post(const ServeProcess& server, const std::string& path, const json& body) {
  return post(server, path, body.dump());
}

inline Reply get(const ServeProcess& server,
                 const std::string& path,
                 const httplib::Headers& h = {}) {
  httplib::Client c = client(server);
  return parse(c.Get(path.c_str(), h));
}

inline json chat_body(const std::string& prompt,
                      std::uint64_t seed,
                      int n = 1,
                      int max_tokens = 16) {
  return {{"messages", {{{"role", "user"}, {"content", prompt}}}},
          {"n", n},
          {"seed", seed},
          {"max_tokens", max_tokens},
          {"temperature", 0.9},
          {"top_p", 0.95},
          {"top_k", 40}};
}

inline std::vector<std::string> texts(const json& response) {
  std::vector<std::string> out;
  for (const auto& c : response.at("choices"))
    out.push_back(c.contains("message") ? c["message"]["content"].get<std::string>()
                                        : c["text"].get<std::string>());
  return out;
}

/// The `data:` payloads of a server-sent-event body, in order.
inline std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const std::size_t end = body.find("\n\n", pos);
    out.push_back(body.substr(pos + 6, end - pos - 6));
    pos = end;
  }
  return out;
}

/// The error of an error reply, checked for OpenAI's shape.
inline json error_of(const Reply& r) {
  INFO(r.text);
  REQUIRE(r.body.is_object());
  REQUIRE(r.body.contains("error"));
  const json& e = r.body["error"];
  CHECK(e["message"].is_string());
  CHECK(!e["message"].get<std::string>().empty());
  CHECK(e["type"].is_string());
  CHECK(e.contains("param"));
  CHECK(e.contains("code"));
  return e;
}

}  // namespace mr::tests
