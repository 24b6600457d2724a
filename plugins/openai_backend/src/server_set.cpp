// Load spreading and retries over a backend's servers (server_set.hpp).
#include "server_set.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

namespace mr::plugins::openai_backend {

using Clock = std::chrono::steady_clock;

HttpClient& ConnectionCache::get(std::size_t server,
                                 const Endpoint& endpoint,
                                 const HttpOptions& options) {
  auto& slot = clients_[server];
  if (!slot) slot = std::make_unique<HttpClient>(endpoint, options);
  return *slot;
}

ServerSet::ServerSet(std::vector<Endpoint> endpoints,
                     std::vector<ManagedServer*> managed,
                     HttpOptions options,
                     RetryPolicy retry,
                     int per_server_limit,
                     mr::sdk::Logger& logger,
                     std::uint64_t seed)
    : options_(std::move(options)),
      retry_(retry),
      per_server_limit_(per_server_limit),
      logger_(logger),
      jitter_(seed) {
  for (std::size_t i = 0; i < endpoints.size(); ++i) {
    Server s;
    s.endpoint = std::move(endpoints[i]);
    if (i < managed.size()) s.managed = managed[i];
    servers_.push_back(std::move(s));
  }
}

std::size_t ServerSet::acquire() {
  std::unique_lock lock(mutex_);
  while (true) {
    const auto now = Clock::now();
    std::size_t best = servers_.size();
    for (std::size_t k = 0; k < servers_.size(); ++k) {
      const std::size_t i = (next_ + k) % servers_.size();
      const Server& s = servers_[i];
      if (per_server_limit_ > 0 && s.in_flight >= per_server_limit_) continue;
      if (best == servers_.size()) {
        best = i;
        continue;
      }
      const Server& b = servers_[best];
      const bool s_up = s.down_until <= now, b_up = b.down_until <= now;
      // A healthy server first, then the least loaded; among down ones, the soonest back.
      if (s_up != b_up ? s_up : (s_up ? s.in_flight < b.in_flight : s.down_until < b.down_until))
        best = i;
    }
    if (best != servers_.size()) {
      ++servers_[best].in_flight;
      next_ = (best + 1) % servers_.size();
      return best;
    }
    freed_.wait(lock);
  }
}

void ServerSet::release(std::size_t i, const std::string& failure, double down_for_s) {
  {
    std::lock_guard lock(mutex_);
    Server& s = servers_[i];
    --s.in_flight;
    if (!failure.empty()) {
      s.last_failure = failure;
      if (down_for_s > 0)
        s.down_until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(down_for_s));
    } else {
      s.down_until = {};
    }
  }
  freed_.notify_one();
}

double ServerSet::backoff_s(int attempt) {
  const double full = std::min(retry_.max_delay_s, retry_.base_delay_s * std::pow(2.0, attempt));
  std::lock_guard lock(mutex_);
  // "Equal jitter": half fixed, half random, so that retries of many requests spread out.
  return full * (0.5 + 0.5 * std::uniform_real_distribution<double>(0, 1)(jitter_));
}

void ServerSet::restart_if_dead(std::size_t i) {
  Server& s = servers_[i];
  if (s.managed == nullptr) return;
  std::lock_guard lock(*s.restart_mutex);
  if (s.managed->running()) return;
  if (s.restarts >= retry_.max_restarts) return;
  ++s.restarts;
  logger_.warn("managed server " + s.endpoint.base_url + " is gone; restarting it (restart " +
               std::to_string(s.restarts) + " of at most " + std::to_string(retry_.max_restarts) +
               "; log " + s.managed->log_file().string() + ")");
  const std::string how = s.managed->restart();
  logger_.info("managed server " + s.endpoint.base_url + " (" + how + ") is back");
}

HttpReply ServerSet::call(ConnectionCache& connections,
                          const std::string& path,
                          const std::string* body,
                          const ReplyCheck& check,
                          bool at_root) {
  for (int attempt = 0;; ++attempt) {
    const std::size_t i = acquire();
    const Endpoint& endpoint = servers_[i].endpoint;
    const std::string full_path = (at_root ? endpoint.root_prefix : endpoint.prefix) + path;
    HttpReply reply;
    try {
      HttpClient& client = connections.get(i, endpoint, options_);
      reply = body ? client.post_json(full_path, *body) : client.get(full_path);
    } catch (const std::exception& e) {
      reply = HttpReply{};
      reply.transport_error = e.what();
    }
    std::string failure;
    if (reply.ok()) {
      failure = check ? check(reply) : std::string();
      if (failure.empty()) {
        release(i, "", 0);
        return reply;
      }
      failure = "HTTP " + std::to_string(reply.status) + " with an unusable body: " + failure;
    } else if (reply.status >= 400 && reply.status < 500 && reply.status != 429 &&
               reply.status != 408) {
      release(i, "", 0);
      return reply;  // The request's own fault: recorded in its row, never retried.
    } else {
      failure = describe_failure(reply);
    }
    const double delay = reply.retry_after_s >= 0 ? reply.retry_after_s : backoff_s(attempt);
    release(i, failure, reply.status == 0 ? delay : 0);
    if (reply.status == 0) {
      connections.get(i, endpoint, options_);  // Keep the cache; httplib reconnects itself.
      restart_if_dead(i);
    }
    if (attempt >= retry_.max_retries) {
      std::string what;
      {
        std::lock_guard lock(mutex_);
        for (const Server& s : servers_)
          what += "\n  " + s.endpoint.base_url + ": " +
                  (s.last_failure.empty() ? std::string("no failure recorded") : s.last_failure);
      }
      throw ServersUnavailable(std::string(body ? "POST " : "GET ") + path + " failed " +
                               std::to_string(attempt + 1) +
                               " times (max_retries = " + std::to_string(retry_.max_retries) +
                               "); last failure per server:" + what);
    }
    if (logger_.enabled(mr::sdk::LogLevel::Debug))
      logger_.debug(endpoint.base_url + path + ": " + failure + "; retrying in " +
                    std::to_string(delay) + " s");
    std::this_thread::sleep_for(std::chrono::duration<double>(delay));
  }
}

}  // namespace mr::plugins::openai_backend
