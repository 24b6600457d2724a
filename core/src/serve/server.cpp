// The HTTP side of `metareward serve` (server.hpp): routes, authentication, error bodies, the
// in-flight count and the graceful stop.
#include "server.hpp"

#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>

#include <spdlog/spdlog.h>

#include "api_error.hpp"
#include "batch_queue.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/sdk/host.hpp"
#include "metareward/sdk/version.hpp"
#include "openai_request.hpp"
#include "openai_response.hpp"
#include "sse_stream.hpp"
#include "stop_signals.hpp"

namespace mr::core::serve {

using json = nlohmann::json;

namespace {

/// Requests being answered; once draining, new ones are refused (503).
class InFlight {
 public:
  /// A token held while a request is answered, or nullptr when draining.
  std::shared_ptr<void> enter() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (draining_) return nullptr;
    ++count_;
    return std::shared_ptr<void>(static_cast<void*>(this), [this](void*) { leave(); });
  }
  void begin_draining() {
    std::lock_guard<std::mutex> lock(mutex_);
    draining_ = true;
  }
  bool draining() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return draining_;
  }
  int count() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return count_;
  }
  /// True when no request is in flight within `timeout`.
  bool wait_idle(std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return idle_.wait_for(lock, timeout, [&] { return count_ == 0; });
  }

 private:
  void leave() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (--count_ == 0) idle_.notify_all();
  }
  mutable std::mutex mutex_;
  std::condition_variable idle_;
  int count_ = 0;
  bool draining_ = false;
};

/// Request ids and the seeds of requests without one.
class Randomness {
 public:
  explicit Randomness(std::optional<std::uint64_t> seed)
      : fixed_(seed),
        rng_(std::random_device{}() ^ (std::uint64_t{std::random_device{}()} << 32)) {}
  std::uint64_t seed() {
    std::lock_guard<std::mutex> lock(mutex_);
    return fixed_ ? sdk::derive_seed(*fixed_, next_++) : rng_();
  }
  std::string id(const std::string& prefix) {
    static const char* digits = "0123456789abcdef";
    std::lock_guard<std::mutex> lock(mutex_);
    std::string out = prefix;
    for (int word = 0; word < 2; ++word) {
      std::uint64_t x = rng_();
      for (int i = 0; i < 12; ++i, x >>= 4) out += digits[x & 15];
    }
    return out;
  }

 private:
  std::mutex mutex_;
  std::optional<std::uint64_t> fixed_;
  std::uint64_t next_ = 0;
  std::mt19937_64 rng_;
};

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump_json(body), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) {
  if (e.status() == 401) res.set_header("WWW-Authenticate", "Bearer");
  send_json(res, e.status(), error_body(e));
}

/// Equal strings, in time independent of where they differ.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

/// httplib 0.11 listens with a backlog of 5: a burst of connections (a client opening 16 at once)
/// overflows the accept queue, and the kernel then drops or resets some of them. listen() again
/// on the bound socket raises the backlog (the kernel caps it at net.core.somaxconn).
class HttpServer : public httplib::Server {
 public:
  void raise_backlog(int backlog) {
    const socket_t sock = svr_sock_;
    if (sock != INVALID_SOCKET && ::listen(sock, backlog) != 0)
      spdlog::warn("serve: cannot raise the listen backlog to {}", backlog);
  }
};

class Server {
 public:
  Server(sdk::ModelBackend& backend, const ServeOptions& options)
      : backend_(backend),
        options_(options),
        queue_(backend, options.max_batch, options.batch_window),
        random_(options.seed) {
    // Read once, on this thread, before the worker owns the backend.
    info_ = backend_.info();
    supports_prompt_text_ = backend_.supports_prompt_text();
    limits_.served_model_name = options.served_model_name;
    limits_.max_tokens_limit = options.max_tokens_limit;
    limits_.max_n = options.max_n;
    created_ = static_cast<std::int64_t>(std::time(nullptr));
  }

  int run();

 private:
  using Handler = std::function<void(const httplib::Request&,
                                     httplib::Response&,
                                     const std::string& body,
                                     const std::shared_ptr<void>& hold)>;
  /// A route's handler wrapped: reads the body (POST), refuses the request while draining, checks
  /// the API key, maps exceptions to error responses.
  httplib::Server::Handler get_route(bool authenticated, Handler handler);
  httplib::Server::HandlerWithContentReader post_route(Handler handler);
  void answer(const httplib::Request& req,
              httplib::Response& res,
              const httplib::ContentReader* reader,
              bool authenticated,
              const Handler& handler);
  void routes(httplib::Server& http);
  void generation(const httplib::Request& req,
                  httplib::Response& res,
                  const std::string& body,
                  const std::shared_ptr<void>& hold,
                  Endpoint endpoint);
  void tokenize(httplib::Response& res, const std::string& body);

  sdk::ModelBackend& backend_;
  ServeOptions options_;
  BatchQueue queue_;
  Randomness random_;
  InFlight in_flight_;
  RequestLimits limits_;
  sdk::ModelInfo info_;
  bool supports_prompt_text_ = false;
  std::int64_t created_ = 0;
};

httplib::Server::Handler Server::get_route(bool authenticated, Handler handler) {
  return [this, authenticated, handler](const httplib::Request& req, httplib::Response& res) {
    answer(req, res, nullptr, authenticated, handler);
  };
}

httplib::Server::HandlerWithContentReader Server::post_route(Handler handler) {
  return [this, handler](const httplib::Request& req, httplib::Response& res,
                         const httplib::ContentReader& reader) {
    answer(req, res, &reader, true, handler);
  };
}

void Server::answer(const httplib::Request& req,
                    httplib::Response& res,
                    const httplib::ContentReader* reader,
                    bool authenticated,
                    const Handler& handler) {
  try {
    // The body is read first, whatever the answer: a connection closed with unread data is
    // reset, and the client might lose the answer. Reading it here (rather than letting httplib
    // do it) also avoids httplib's 8 KiB limit on form-encoded bodies (curl -d's default type).
    std::string body;
    if (reader != nullptr) {
      const bool read = (*reader)([&](const char* data, std::size_t n) {
        body.append(data, n);
        return true;
      });
      if (!read && res.status == 413)
        throw ApiError(413,
                       "the request body is larger than the server's limit of " +
                           std::to_string(options_.max_body_bytes) + " bytes",
                       "invalid_request_error", std::nullopt, "request_too_large");
      if (!read) throw ApiError(400, "the request body could not be read");
    }
    const std::shared_ptr<void> hold = in_flight_.enter();
    if (!hold) {
      res.set_header("Connection", "close");
      throw ApiError(503, "the server is shutting down", "server_error");
    }
    if (authenticated && !options_.api_key.empty()) {
      const std::string given = req.get_header_value("Authorization");
      const std::string prefix = "Bearer ";
      if (given.rfind(prefix, 0) != 0 ||
          !same_secret(given.substr(prefix.size()), options_.api_key))
        throw ApiError(
            401,
            given.empty() ? "missing API key: send 'Authorization: Bearer KEY'" : "invalid API key",
            "authentication_error", std::nullopt, "invalid_api_key");
    }
    handler(req, res, body, hold);
  } catch (const ApiError& e) {
    if (e.status() >= 500)
      spdlog::error("serve: {} {}: {}", req.method, req.path, e.what());
    else
      spdlog::debug("serve: {} {} -> {}: {}", req.method, req.path, e.status(), e.what());
    send_error(res, e);
  } catch (const std::exception& e) {
    spdlog::error("serve: {} {}: {}", req.method, req.path, e.what());
    send_error(res, ApiError(500, e.what(), "server_error"));
  } catch (...) {
    spdlog::error("serve: {} {}: unknown exception", req.method, req.path);
    send_error(res, ApiError(500, "unknown error", "server_error"));
  }
}

void Server::generation(const httplib::Request& req,
                        httplib::Response& res,
                        const std::string& text,
                        const std::shared_ptr<void>& hold,
                        Endpoint endpoint) {
  const json body = parse_body(text);
  const auto fresh_seed = [this] { return random_.seed(); };
  ParsedGeneration parsed = endpoint == Endpoint::Chat
                                ? parse_chat_request(body, limits_, fresh_seed)
                                : parse_completion_request(body, limits_, fresh_seed);
  if (endpoint == Endpoint::Completion && !supports_prompt_text_)
    throw ApiError(400,
                   "model backend '" + options_.backend_name +
                       "' cannot take a raw prompt; use /v1/chat/completions",
                   "invalid_request_error", "prompt");
  ResponseHeader header;
  header.endpoint = endpoint;
  header.id = random_.id(endpoint == Endpoint::Chat ? "chatcmpl-" : "cmpl-");
  header.created = static_cast<std::int64_t>(std::time(nullptr));
  header.model = options_.served_model_name;
  header.system_fingerprint = "metareward-" MR_SDK_VERSION;
  parsed.request.id = header.id;
  spdlog::debug("serve: {} {}: n={} seed={} max_tokens={}{}", req.path, header.id, parsed.request.n,
                parsed.request.seed, parsed.request.sampling.max_new_tokens,
                parsed.stream ? " (stream)" : "");
  auto pending = queue_.submit(std::move(parsed.request));
  if (!pending) throw ApiError(503, "the server is shutting down", "server_error");
  if (parsed.stream) {
    stream_response(res, queue_, std::move(pending), std::move(header), parsed.include_usage, hold,
                    options_.ping_interval);
    return;
  }
  const GenerationOutcome outcome = pending->outcome.get();
  send_json(res, 200, response_json(header, result_or_throw(outcome)));
}

void Server::tokenize(httplib::Response& res, const std::string& body) {
  const std::string text = parse_tokenize_request(parse_body(body), limits_);
  std::int64_t count = 0;
  std::optional<std::vector<std::int64_t>> tokens;
  queue_.run_exclusive([&](sdk::ModelBackend& backend) {
    count = backend.count_tokens(text);
    try {
      tokens = backend.tokenize(text);
    } catch (const sdk::BackendError& e) {
      if (std::string(e.what()).find("not supported") == std::string::npos) throw;
    }
  });
  json out = {{"count", count}, {"max_model_len", info_.context_length}};
  if (tokens) out["tokens"] = *tokens;
  send_json(res, 200, out);
}

void Server::routes(httplib::Server& http) {
  using Request = httplib::Request;
  using Response = httplib::Response;
  using Hold = std::shared_ptr<void>;
  http.Get("/health",
           get_route(false, [](const Request&, Response& res, const std::string&, const Hold&) {
             send_json(res, 200, {{"status", "ok"}});
           }));
  http.Get("/v1/models",
           get_route(true, [this](const Request&, Response& res, const std::string&, const Hold&) {
             const json model = {{"id", options_.served_model_name},
                                 {"object", "model"},
                                 {"created", created_},
                                 {"owned_by", "metareward"},
                                 {"root", options_.model_path},
                                 {"max_model_len", info_.context_length}};
             send_json(res, 200, {{"object", "list"}, {"data", json::array({model})}});
           }));
  http.Post("/v1/chat/completions", post_route([this](const Request& req, Response& res,
                                                      const std::string& body, const Hold& hold) {
              generation(req, res, body, hold, Endpoint::Chat);
            }));
  http.Post("/v1/completions", post_route([this](const Request& req, Response& res,
                                                 const std::string& body, const Hold& hold) {
              generation(req, res, body, hold, Endpoint::Completion);
            }));
  for (const char* path : {"/tokenize", "/v1/tokenize"})
    http.Post(path, post_route([this](const Request&, Response& res, const std::string& body,
                                      const Hold&) { tokenize(res, body); }));

  // Errors httplib answers itself (no route, body too large, unreadable request) get OpenAI's
  // shape too; responses that already have a body are left alone.
  const std::size_t max_body = options_.max_body_bytes;
  http.set_error_handler(httplib::Server::HandlerWithResponse(
      [max_body](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        const ApiError e =
            res.status == 404 ? ApiError(404, "no route for " + req.method + " " + req.path,
                                         "invalid_request_error", std::nullopt, "not_found")
            : res.status == 413
                ? ApiError(413,
                           "the request body is larger than the server's limit of " +
                               std::to_string(max_body) + " bytes",
                           "invalid_request_error", std::nullopt, "request_too_large")
                : ApiError(res.status,
                           "the request could not be processed (HTTP " +
                               std::to_string(res.status) + ")",
                           res.status >= 500 ? "server_error" : "invalid_request_error");
        res.set_content(dump_json(error_body(e)), "application/json");
        return httplib::Server::HandlerResponse::Handled;
      }));
  http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    spdlog::trace("serve: {} {} -> {}", req.method, req.path, res.status);
  });
}

int Server::run() {
  HttpServer http;
  // Every connection holds a pool thread (keep-alive included) while it is open; the pool must
  // take more connections than a batch holds requests.
  const std::size_t pool = static_cast<std::size_t>(std::max(64, 2 * options_.max_batch)) + 8;
  http.new_task_queue = [pool] { return new httplib::ThreadPool(pool); };
  http.set_payload_max_length(options_.max_body_bytes);
  // httplib's default sets SO_REUSEPORT, which lets a second server bind a port in use (and
  // share its connections); SO_REUSEADDR alone only allows rebinding past TIME_WAIT.
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  http.set_keep_alive_max_count(1000);
  routes(http);

  StopSignals signals;  // Before binding: a signal from now on drains.
  int port = options_.port;
  if (port == 0) {
    port = http.bind_to_any_port(options_.host);
    if (port < 0) port = -1;
  } else if (!http.bind_to_port(options_.host, port)) {
    port = -1;
  }
  if (port <= 0)
    throw sdk::Error("serve: cannot listen on " + options_.host + ":" +
                     std::to_string(options_.port) +
                     " (the port is in use, or the address is not one of this machine's)");
  http.raise_backlog(1024);
  queue_.start();
  const bool v6 = options_.host.find(':') != std::string::npos;
  spdlog::info("serve: '{}' ({} backend, context {}) listening on http://{}:{}",
               options_.served_model_name, options_.backend_name, info_.context_length,
               v6 ? "[" + options_.host + "]" : options_.host, port);

  std::atomic<bool> listening_done{false};
  std::atomic<int> stop_signal{0};
  std::thread watcher([&] {
    const int sig = signals.wait();
    if (sig == 0) return;
    stop_signal = sig;
    in_flight_.begin_draining();  // Before the log line: once it is out, new work gets 503.
    spdlog::info("serve: {} received: finishing {} requests in flight, refusing new ones",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT", in_flight_.count());
    if (!in_flight_.wait_idle(options_.shutdown_timeout)) {
      spdlog::error("serve: {} requests still in flight after {} s; exiting without them",
                    in_flight_.count(), options_.shutdown_timeout.count());
      spdlog::default_logger()->flush();
      std::_Exit(1);
    }
    // stop() is a no-op until listen_after_bind() runs: repeat until it has returned.
    while (!listening_done) {
      http.stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  const bool ok = http.listen_after_bind();
  listening_done = true;
  signals.wake();
  watcher.join();
  queue_.stop();
  if (stop_signal == 0 && !ok) throw sdk::Error("serve: the server stopped unexpectedly");
  spdlog::info("serve: stopped");
  return 0;
}

}  // namespace

int run_server(sdk::ModelBackend& backend, const ServeOptions& options) {
  Server server(backend, options);
  return server.run();
}

}  // namespace mr::core::serve
