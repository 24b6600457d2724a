// A loopback soak of `metareward serve` (issue 18, item 7), shared by the e2e test (a short
// soak) and bench/serve_soak.cpp (2,000 requests at concurrency 64): `concurrency` threads send
// `requests` requests in all; a fraction `abuse` of them is abuse over a raw socket — a
// malformed JSON body, an oversized body, a request cut off mid-headers, garbage bytes, or a
// valid request whose client hangs up before the answer — and the rest are valid completions,
// each of which must be answered 200 with its choices. The caller reads the server's RSS and
// checks it still answers afterwards.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace mr::tests {

struct SoakOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string model;     ///< The served model name.
  int requests = 2000;   ///< Requests in all, abuse included.
  int concurrency = 64;  ///< Client threads.
  double abuse = 0.1;    ///< Fraction of the requests that are abuse.
  int max_tokens = 4;    ///< Tokens per valid completion.
  unsigned seed = 1;     ///< Chooses which requests are abuse, and of which kind.
};

struct SoakResult {
  int valid = 0;                      ///< Valid requests sent.
  int valid_ok = 0;                   ///< ... answered 200 with one choice.
  int valid_5xx = 0;                  ///< ... answered with a 5xx status.
  int valid_failed = 0;               ///< ... answered otherwise, or not at all.
  int abuse = 0;                      ///< Abusive requests sent.
  std::map<std::string, int> kinds;   ///< Abuse sent, per kind.
  std::map<int, int> abuse_status;    ///< Status lines the abuse got (0 = none / closed).
  std::vector<std::string> failures;  ///< The first few valid failures, described.
  double seconds = 0;
};

/// Resident set size of process `pid` in KiB (VmRSS), -1 when unreadable.
inline long rss_kib(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

namespace soak_detail {

/// Sends `bytes` over a fresh connection, optionally reads the status line, and closes.
/// Returns the HTTP status read (0 when none came back or it was not asked for).
inline int raw_exchange(const SoakOptions& o, const std::string& bytes, bool read_answer) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(o.port));
  ::inet_pton(AF_INET, o.host.c_str(), &addr.sin_addr);
  int status = 0;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<std::size_t>(n);
    }
    if (read_answer) {
      char buf[64] = {};
      const ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
      if (n > 12 && std::string(buf, 5) == "HTTP/") status = std::atoi(buf + 9);
    }
  }
  ::close(fd);
  return status;
}

inline std::string post(const std::string& path,
                        const std::string& body,
                        std::size_t declared_length) {
  return "POST " + path + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" +
         "Content-Length: " + std::to_string(declared_length) + "\r\n\r\n" + body;
}

}  // namespace soak_detail

/// Runs the soak against the server at o.host:o.port.
inline SoakResult run_soak(const SoakOptions& o) {
  using nlohmann::json;
  namespace d = soak_detail;
  // Which request is what is fixed by the seed, not by thread timing.
  std::vector<int> kind(o.requests, -1);
  std::mt19937 rng(o.seed);
  std::uniform_real_distribution<double> u(0, 1);
  for (int& k : kind)
    if (u(rng) < o.abuse) k = static_cast<int>(rng() % 5);
  static const char* kNames[] = {"malformed JSON", "oversized body", "cut off mid-headers",
                                 "garbage bytes", "client gone before the answer"};
  SoakResult r;
  std::mutex mu;
  std::atomic<int> next{0};
  const auto start = std::chrono::steady_clock::now();
  auto worker = [&] {
    httplib::Client client(o.host, o.port);
    client.set_read_timeout(300, 0);
    client.set_keep_alive(true);
    for (int i = next++; i < o.requests; i = next++) {
      const json body = {{"model", o.model},
                         {"prompt", "soak request " + std::to_string(i)},
                         {"max_tokens", o.max_tokens},
                         {"seed", i}};
      if (kind[i] < 0) {
        auto res = client.Post("/v1/completions", body.dump(), "application/json");
        std::lock_guard<std::mutex> lock(mu);
        ++r.valid;
        std::string problem;
        if (!res) {
          problem = "no answer (" + httplib::to_string(res.error()) + ")";
        } else if (res->status >= 500) {
          ++r.valid_5xx;
          problem = "status " + std::to_string(res->status) + ": " + res->body;
        } else if (res->status != 200) {
          problem = "status " + std::to_string(res->status) + ": " + res->body;
        } else {
          const json answer = json::parse(res->body, nullptr, false);
          if (answer.is_discarded() || !answer.contains("choices") || answer["choices"].size() != 1)
            problem = "a 200 without one choice: " + res->body.substr(0, 200);
        }
        if (problem.empty()) {
          ++r.valid_ok;
        } else {
          if (res == nullptr || res->status < 500) ++r.valid_failed;
          if (r.failures.size() < 5)
            r.failures.push_back("request " + std::to_string(i) + ": " + problem);
        }
        continue;
      }
      int status = 0;
      switch (kind[i]) {
        case 0: {
          const std::string bad = "{\"model\": \"" + o.model + "\", \"prompt\": [1, 2, {";
          status = d::raw_exchange(o, d::post("/v1/completions", bad, bad.size()), true);
          break;
        }
        case 1:  // declares 64 MiB, sends 256 KiB of it, waits for the refusal
          status = d::raw_exchange(
              o, d::post("/v1/chat/completions", std::string(256 * 1024, 'x'), 64u << 20), true);
          break;
        case 2:
          status = d::raw_exchange(o, "POST /v1/completions HTTP/1.1\r\nHost: local", false);
          break;
        case 3: {
          std::mt19937 bytes(o.seed + static_cast<unsigned>(i));  // per request: no shared state
          std::string junk(512, '\0');
          for (auto& c : junk) c = static_cast<char>(bytes() & 0xff);
          status = d::raw_exchange(o, junk + "\r\n\r\n", true);
          break;
        }
        default:
          status = d::raw_exchange(o, d::post("/v1/completions", body.dump(), body.dump().size()),
                                   false);
          break;
      }
      std::lock_guard<std::mutex> lock(mu);
      ++r.abuse;
      ++r.kinds[kNames[kind[i]]];
      ++r.abuse_status[status];
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < o.concurrency; ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace mr::tests
