// HTTP serving benchmark (results in docs/benchmarks.md, "Serving over HTTP"): the same
// generation workload (a) in process through the torch backend's generate() in batches of C,
// (b) through `metareward serve` from C concurrent HTTP clients, and (c) through the `openai`
// backend against 1 vs 2 managed `metareward serve` processes. Same prompts and seeds
// everywhere, so every path generates the same tokens; the ratios are pure serving overhead.
//
//   cmake --build build --target mr_serve_bench
//   build/bin/metareward init-model --config bench/configs/smollm2_135m.config.json --out /tmp/m
//   build/bin/mr_serve_bench --model /tmp/m [--clients 1,8,32] [--new-tokens 32] [--threads 2]
//       [--requests-per-client 4] [--rounds 3]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "managed_server.hpp"
#include "metareward/openai_backend/openai_backend.hpp"
#include "metareward/sdk/host.hpp"
#include "metareward/torch_backend_plugin/torch_backend.hpp"

namespace sdk = mr::sdk;
namespace oa = mr::plugins::openai_backend;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

class QuietLogger : public sdk::Logger {
 public:
  void log(sdk::LogLevel level, std::string_view m) override {
    if (level >= sdk::LogLevel::Warn) std::cerr << "[bench] " << m << "\n";
  }
  bool enabled(sdk::LogLevel level) const override { return level >= sdk::LogLevel::Warn; }
};

class NullProgress : public sdk::Progress {
 public:
  void advance(std::uint64_t, std::uint64_t) override {}
};

class BenchContext : public sdk::HostContext {
 public:
  BenchContext(sdk::Config config, int threads) : config_(std::move(config)), threads_(threads) {}
  sdk::Logger& logger() override { return logger_; }
  std::unique_ptr<sdk::Progress> progress(std::string_view, std::uint64_t) override {
    return std::make_unique<NullProgress>();
  }
  std::uint64_t seed() const override { return 1; }
  const std::filesystem::path& run_dir() const override { return dir_; }
  int threads() const override { return threads_; }
  const sdk::Config& config() const override { return config_; }

 private:
  sdk::Config config_;
  int threads_;
  std::filesystem::path dir_;
  QuietLogger logger_;
};

sdk::GenerationRequest request(int i, int new_tokens) {
  sdk::GenerationRequest r;
  r.id = "r" + std::to_string(i);
  r.messages = {{"user", "Write a short note about topic number " + std::to_string(i) + "."}};
  r.sampling.temperature = 0.8;
  r.sampling.top_p = 0.95;
  r.sampling.max_new_tokens = new_tokens;
  r.n = 1;
  r.seed = 1000 + static_cast<std::uint64_t>(i);
  return r;
}

struct Rate {
  double seconds = 0;
  std::int64_t requests = 0, tokens = 0;
  double rps() const { return requests / seconds; }
  double tps() const { return tokens / seconds; }
};

Rate in_process(sdk::ModelBackend& backend, int requests, int batch, int new_tokens) {
  Rate rate;
  const auto t0 = Clock::now();
  for (int lo = 0; lo < requests; lo += batch) {
    std::vector<sdk::GenerationRequest> reqs;
    for (int i = lo; i < std::min(requests, lo + batch); ++i)
      reqs.push_back(request(i, new_tokens));
    for (const auto& r : backend.generate(reqs)) {
      if (!r.error.empty()) throw std::runtime_error("in-process request failed: " + r.error);
      rate.tokens += r.completions.at(0).tokens;
      ++rate.requests;
    }
  }
  rate.seconds = since(t0);
  return rate;
}

Rate over_http(int port, int requests, int clients, int new_tokens) {
  std::atomic<int> next{0};
  std::atomic<std::int64_t> tokens{0};
  std::atomic<bool> failed{false};
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int c = 0; c < clients; ++c)
    pool.emplace_back([&] {
      httplib::Client client("127.0.0.1", port);
      client.set_read_timeout(600, 0);
      client.set_keep_alive(true);
      for (int i = next++; i < requests; i = next++) {
        const auto r = request(i, new_tokens);
        const json body = {{"messages", {{{"role", "user"}, {"content", r.messages[0].content}}}},
                           {"temperature", r.sampling.temperature},
                           {"top_p", r.sampling.top_p},
                           {"max_tokens", new_tokens},
                           {"seed", r.seed}};
        auto res = client.Post("/v1/chat/completions", body.dump(), "application/json");
        if (!res || res->status != 200) {
          failed = true;
          return;
        }
        tokens += json::parse(res->body)["usage"]["completion_tokens"].get<std::int64_t>();
      }
    });
  for (auto& t : pool) t.join();
  if (failed) throw std::runtime_error("an HTTP request failed");
  return {since(t0), requests, tokens};
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stoi(item));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, clients_arg = "1,8,32", metareward = MR_BENCH_CLI_PATH;
  int new_tokens = 32, threads = 2, per_client = 4, rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model")
      model = v;
    else if (k == "--clients")
      clients_arg = v;
    else if (k == "--new-tokens")
      new_tokens = std::stoi(v);
    else if (k == "--threads")
      threads = std::stoi(v);
    else if (k == "--requests-per-client")
      per_client = std::stoi(v);
    else if (k == "--metareward")
      metareward = v;
    else if (k == "--rounds")
      rounds = std::stoi(v);
    else {
      std::cerr << "unknown option " << k << "\n";
      return 2;
    }
  }
  if (model.empty()) {
    std::cerr << "usage: mr_serve_bench --model DIR [--clients 1,8,32] [--new-tokens 32] "
                 "[--threads 2] [--requests-per-client 4]\n";
    return 2;
  }
  const std::vector<int> clients = parse_list(clients_arg);
  int max_clients = 1;
  for (int c : clients) max_clients = std::max(max_clients, c);

  sdk::Table table;
  table["path"] = sdk::Value(model);
  table["dtype"] = sdk::Value("float32");
  table["device"] = sdk::Value("cpu");
  table["chat_template"] = sdk::Value("auto");
  table["chat_format"] = sdk::Value(sdk::Array{});
  table["max_batch_size"] = sdk::Value(64);
  table["max_context"] = sdk::Value(0);
  table["adapter"] = sdk::Value("");
  BenchContext ctx(sdk::Config("models.bench", table, 1), threads);
  auto backend = mr::plugins::torch_backend::make_torch_backend(ctx);

  // Interleaved rounds, best of `rounds` per path: the machine's speed drifts (a shared VM's
  // steal time) more than the difference being measured. The idle path's threads sleep.
  const std::filesystem::path logs = std::filesystem::temp_directory_path() / "mr_serve_bench";
  const std::vector<std::string> serve = {metareward,    "serve",  "--model",   "{model}",
                                          "--port",      "{port}", "--threads", "{threads}",
                                          "--log-level", "warn"};
  oa::ManagedServer server(serve, "127.0.0.1", oa::free_port("127.0.0.1"), 0, threads,
                           logs / "serve.log", 600);
  server.start(model);
  const int port =
      std::stoi(server.endpoint().origin.substr(server.endpoint().origin.rfind(':') + 1));
  std::printf("model %s, %d new tokens per request, %d threads, best of %d interleaved rounds\n",
              model.c_str(), new_tokens, threads, rounds);
  std::printf(
      "| clients | requests | in-process (batch = clients) req/s, tok/s | serve req/s, "
      "tok/s | HTTP overhead |\n|---|---|---|---|---|\n");
  (void)in_process(*backend, 2, 2, 4);  // warm-up
  (void)over_http(port, 2, 2, 4);
  for (int c : clients) {
    const int requests = std::max(8, c * per_client);
    Rate a, b;
    for (int round = 0; round < rounds; ++round) {
      const Rate x = in_process(*backend, requests, c, new_tokens);
      const Rate y = over_http(port, requests, c, new_tokens);
      if (x.tokens != y.tokens)
        std::printf("(token counts differ: %lld in process vs %lld over HTTP)\n",
                    static_cast<long long>(x.tokens), static_cast<long long>(y.tokens));
      if (round == 0 || x.tps() > a.tps()) a = x;
      if (round == 0 || y.tps() > b.tps()) b = y;
    }
    std::printf("| %d | %d | %.2f, %.1f | %.2f, %.1f | %.1f %% |\n", c, requests, a.rps(), a.tps(),
                b.rps(), b.tps(), 100.0 * (1.0 - b.tps() / a.tps()));
    std::fflush(stdout);
  }
  backend.reset();
  server.stop();

  // The openai backend over 1 vs 2 managed servers (threads split between them).
  std::printf(
      "\n| openai backend | servers x threads | requests | req/s | tok/s |\n"
      "|---|---|---|---|---|\n");
  const int requests = std::max(8, max_clients * per_client);
  for (int servers : {1, 2}) {
    sdk::Table o;
    for (const auto& spec : oa::openai_backend_schema()) o[spec.key] = spec.default_value;
    sdk::Array launch;
    for (const auto& a : serve) launch.emplace_back(a);
    o["launch"] = sdk::Value(launch);
    o["path"] = sdk::Value(model);
    o["servers"] = sdk::Value(servers);
    o["concurrency"] = sdk::Value(max_clients);
    const int per_server_threads = std::max(1, threads / servers);
    BenchContext octx(sdk::Config("models.served", o, 1), per_server_threads);
    auto remote = oa::make_openai_backend(octx);
    (void)in_process(*remote, 2, 2, 4);
    Rate r;
    for (int round = 0; round < rounds; ++round) {
      const Rate x = in_process(*remote, requests, requests, new_tokens);
      if (round == 0 || x.tps() > r.tps()) r = x;
    }
    std::printf("| generate() of %d requests | %d x %d | %d | %.2f | %.1f |\n", requests, servers,
                per_server_threads, requests, r.rps(), r.tps());
    std::fflush(stdout);
  }
  return 0;
}
