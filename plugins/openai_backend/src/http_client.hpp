// Internal: one keep-alive HTTP(S) connection to one endpoint (cpp-httplib), with the backend's
// timeouts and bearer key. Not thread-safe: each worker thread holds its own.
#pragma once

#include <memory>
#include <string>

#include "endpoint.hpp"

namespace httplib {
class Client;
}

namespace mr::plugins::openai_backend {

/// Transport settings shared by every connection of a backend.
struct HttpOptions {
  double connect_timeout_s = 10;
  double timeout_s = 600;  ///< Read and write timeout of one request.
  std::string api_key;     ///< Sent as "Authorization: Bearer"; never logged.
  std::string ca_bundle;   ///< CA file for https ("" = OpenSSL's default paths).
};

/// What came back: an HTTP status and body, or (status 0) why no response arrived.
struct HttpReply {
  int status = 0;
  std::string body;
  std::string transport_error;  ///< "connection refused", "read timeout", ... when status == 0
  double retry_after_s = -1;    ///< The Retry-After header in seconds, -1 when absent.
  bool ok() const { return status >= 200 && status < 300; }
};

class HttpClient {
 public:
  HttpClient(Endpoint endpoint, const HttpOptions& options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// POST `body` (JSON) to endpoint.origin + `path`.
  HttpReply post_json(const std::string& path, const std::string& body);
  /// GET endpoint.origin + `path`.
  HttpReply get(const std::string& path);

  const Endpoint& endpoint() const { return endpoint_; }

 private:
  Endpoint endpoint_;
  std::unique_ptr<httplib::Client> client_;
};

/// "connection refused (http://h:1/v1)"-style text of a reply that is not 2xx, for messages.
std::string describe_failure(const HttpReply& reply);

}  // namespace mr::plugins::openai_backend
