// Internal: one OpenAI-compatible server address, split the way cpp-httplib wants it.
#pragma once

#include <string>

namespace mr::plugins::openai_backend {

/// `http(s)://host[:port][/prefix]`, e.g. "http://127.0.0.1:8000/v1".
struct Endpoint {
  std::string base_url;  ///< As configured, without a trailing slash.
  std::string origin;    ///< "http://127.0.0.1:8000": what httplib::Client takes.
  std::string prefix;    ///< "/v1": prepended to "/chat/completions", "/models", ...
  /// The prefix without a trailing "/v1": where vLLM and llama.cpp serve /tokenize and /health.
  std::string root_prefix;
  bool https = false;
};

/// Parses `url`; throws sdk::ConfigError naming `key` when it is not an http(s) URL with a host.
Endpoint parse_endpoint(const std::string& url, const std::string& key);

}  // namespace mr::plugins::openai_backend
