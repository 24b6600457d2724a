// Internal: the servers one backend spreads its requests over, and the retry discipline: at
// most `per_server_limit` requests in flight per server, the least-loaded healthy server first,
// exponential backoff with jitter on connection errors, timeouts, 429, 5xx and malformed 2xx
// bodies (Retry-After honoured), managed servers restarted when their process died.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "http_client.hpp"
#include "managed_server.hpp"
#include "metareward/sdk/host.hpp"

namespace mr::plugins::openai_backend {

struct RetryPolicy {
  int max_retries = 6;
  double base_delay_s = 0.5;
  double max_delay_s = 30;
  int max_restarts = 3;  ///< Restarts of a managed server whose process died.
};

/// Every server failed past the retry budget: the stage stops (resumable).
class ServersUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A thread's own connections, one per server (httplib clients are not thread-safe).
class ConnectionCache {
 public:
  HttpClient& get(std::size_t server, const Endpoint& endpoint, const HttpOptions& options);

 private:
  std::map<std::size_t, std::unique_ptr<HttpClient>> clients_;
};

class ServerSet {
 public:
  /// `managed` is empty or one entry per endpoint (owned elsewhere, outlives this).
  ServerSet(std::vector<Endpoint> endpoints,
            std::vector<ManagedServer*> managed,
            HttpOptions options,
            RetryPolicy retry,
            int per_server_limit,
            mr::sdk::Logger& logger,
            std::uint64_t seed);

  /// Checks a 2xx reply; returns "" when usable, else what is wrong (retried like a 5xx).
  using ReplyCheck = std::function<std::string(const HttpReply&)>;

  /// POST (body non-null) or GET `path` (appended to the endpoint's prefix, or to its root
  /// prefix when `at_root`) with retries. Returns the first 2xx reply `check` accepts, or a
  /// 4xx reply other than 429 (the caller's error, not retried). Throws ServersUnavailable
  /// naming the URLs and their last failures when the budget is spent.
  HttpReply call(ConnectionCache& connections,
                 const std::string& path,
                 const std::string* body,
                 const ReplyCheck& check,
                 bool at_root = false);

  std::size_t size() const { return servers_.size(); }
  const Endpoint& endpoint(std::size_t i) const { return servers_[i].endpoint; }
  const HttpOptions& options() const { return options_; }

 private:
  struct Server {
    Endpoint endpoint;
    ManagedServer* managed = nullptr;
    int in_flight = 0;
    std::chrono::steady_clock::time_point down_until{};
    std::string last_failure;
    int restarts = 0;
    std::unique_ptr<std::mutex> restart_mutex = std::make_unique<std::mutex>();
  };

  std::size_t acquire();
  void release(std::size_t i, const std::string& failure, double down_for_s);
  double backoff_s(int attempt);
  void restart_if_dead(std::size_t i);

  std::vector<Server> servers_;
  HttpOptions options_;
  RetryPolicy retry_;
  int per_server_limit_;
  mr::sdk::Logger& logger_;
  std::mutex mutex_;
  std::condition_variable freed_;
  std::size_t next_ = 0;
  std::mt19937_64 jitter_;
};

}  // namespace mr::plugins::openai_backend
