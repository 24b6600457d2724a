// One connection over cpp-httplib (http_client.hpp).
#include "http_client.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace mr::plugins::openai_backend {

namespace {

void set_timeout(double seconds, const std::function<void(time_t, time_t)>& set) {
  const double s = std::max(0.001, seconds);
  const auto whole = static_cast<time_t>(std::floor(s));
  set(whole, static_cast<time_t>((s - static_cast<double>(whole)) * 1e6));
}

/// Retry-After as delta-seconds (RFC 9110 also allows an HTTP date; then -1 and the caller
/// falls back to its own backoff).
double parse_retry_after(const std::string& value) {
  if (value.empty()) return -1;
  char* end = nullptr;
  errno = 0;
  const double s = std::strtod(value.c_str(), &end);
  if (errno != 0 || end == value.c_str() || *end != '\0' || !std::isfinite(s) || s < 0) return -1;
  return s;
}

std::string transport_text(httplib::Error e) {
  switch (e) {
    case httplib::Error::Connection:
      return "cannot connect";
    case httplib::Error::ConnectionTimeout:
      return "connect timed out";
    case httplib::Error::Read:
      return "no complete response (read failed or timed out)";
    case httplib::Error::Write:
      return "request could not be sent (write failed or timed out)";
    case httplib::Error::SSLConnection:
      return "TLS handshake failed";
    case httplib::Error::SSLServerVerification:
      return "TLS certificate verification failed";
    case httplib::Error::SSLLoadingCerts:
      return "cannot load the CA certificates";
    default:
      return httplib::to_string(e);
  }
}

HttpReply to_reply(httplib::Result& result) {
  HttpReply reply;
  if (!result) {
    reply.transport_error = transport_text(result.error());
    return reply;
  }
  reply.status = result->status;
  reply.body = std::move(result->body);
  reply.retry_after_s = parse_retry_after(result->get_header_value("Retry-After"));
  return reply;
}

}  // namespace

HttpClient::HttpClient(Endpoint endpoint, const HttpOptions& options)
    : endpoint_(std::move(endpoint)), client_(std::make_unique<httplib::Client>(endpoint_.origin)) {
  set_timeout(options.connect_timeout_s,
              [&](time_t s, time_t us) { client_->set_connection_timeout(s, us); });
  set_timeout(options.timeout_s, [&](time_t s, time_t us) { client_->set_read_timeout(s, us); });
  set_timeout(options.timeout_s, [&](time_t s, time_t us) { client_->set_write_timeout(s, us); });
  client_->set_keep_alive(true);
  if (!options.api_key.empty()) client_->set_bearer_token_auth(options.api_key.c_str());
  if (endpoint_.https && !options.ca_bundle.empty())
    client_->set_ca_cert_path(options.ca_bundle.c_str());
}

HttpClient::~HttpClient() = default;

HttpReply HttpClient::post_json(const std::string& path, const std::string& body) {
  auto result = client_->Post(path.c_str(), body, "application/json");
  return to_reply(result);
}

HttpReply HttpClient::get(const std::string& path) {
  auto result = client_->Get(path.c_str());
  return to_reply(result);
}

std::string describe_failure(const HttpReply& reply) {
  if (reply.status == 0) return reply.transport_error;
  std::string what = "HTTP " + std::to_string(reply.status);
  // OpenAI-style {"error": {"message": ...}}, llama.cpp's and vLLM's too; else the body's start.
  const auto parsed = nlohmann::json::parse(reply.body, nullptr, false);
  if (parsed.is_object() && parsed.contains("error")) {
    const auto& error = parsed["error"];
    if (error.is_object() && error.contains("message") && error["message"].is_string())
      return what + ": " + error["message"].get<std::string>();
    if (error.is_string()) return what + ": " + error.get<std::string>();
  }
  if (parsed.is_object() && parsed.contains("detail") && parsed["detail"].is_string())
    return what + ": " + parsed["detail"].get<std::string>();
  std::string start = reply.body.substr(0, 200);
  for (char& c : start)
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  return start.empty() ? what : what + ": " + start;
}

}  // namespace mr::plugins::openai_backend
