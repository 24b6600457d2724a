// Base URL parsing (endpoint.hpp).
#include "endpoint.hpp"

#include "metareward/sdk/error.hpp"

namespace mr::plugins::openai_backend {

Endpoint parse_endpoint(const std::string& url, const std::string& key) {
  Endpoint e;
  std::string rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
    e.https = true;
  } else {
    throw mr::sdk::ConfigError(key + " = \"" + url +
                               "\" is not an http:// or https:// URL (e.g. "
                               "\"http://127.0.0.1:8000/v1\")");
  }
  const auto slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  if (authority.empty() || authority.find('@') != std::string::npos ||
      authority.find_first_of("?#") != std::string::npos)
    throw mr::sdk::ConfigError(key + " = \"" + url +
                               "\" has no host (or has credentials in it; use api_key_env)");
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  if (path.find_first_of("?#") != std::string::npos)
    throw mr::sdk::ConfigError(key + " = \"" + url + "\": a base URL takes no query or fragment");
  while (!path.empty() && path.back() == '/') path.pop_back();
  e.origin = (e.https ? "https://" : "http://") + authority;
  e.prefix = path;
  e.base_url = e.origin + path;
  e.root_prefix = path;
  if (e.root_prefix.size() >= 3 && e.root_prefix.compare(e.root_prefix.size() - 3, 3, "/v1") == 0)
    e.root_prefix.resize(e.root_prefix.size() - 3);
  return e;
}

}  // namespace mr::plugins::openai_backend
