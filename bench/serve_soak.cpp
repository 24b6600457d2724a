// Loopback soak of a running `metareward serve` (issue 18; results in docs/benchmarks.md,
// "Serving under load and abuse"): tests/e2e/serve_soak.hpp's soak with the sizes, the
// server's RSS before and after. bench/serve_soak.sh starts the server and runs this.
//
//   build/bin/mr_serve_soak --port P --pid PID --model NAME [--requests 2000]
//       [--concurrency 64] [--abuse 0.1] [--max-tokens 4]
#include <cstdlib>
#include <iostream>
#include <string>

#include "serve_soak.hpp"

int main(int argc, char** argv) {
  mr::tests::SoakOptions o;
  int pid = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--port")
      o.port = std::atoi(value.c_str());
    else if (flag == "--pid")
      pid = std::atoi(value.c_str());
    else if (flag == "--model")
      o.model = value;
    else if (flag == "--requests")
      o.requests = std::atoi(value.c_str());
    else if (flag == "--concurrency")
      o.concurrency = std::atoi(value.c_str());
    else if (flag == "--abuse")
      o.abuse = std::atof(value.c_str());
    else if (flag == "--max-tokens")
      o.max_tokens = std::atoi(value.c_str());
    else {
      std::cerr << "mr_serve_soak: unknown flag " << flag << "\n";
      return 2;
    }
  }
  if (o.port <= 0 || o.model.empty()) {
    std::cerr << "usage: mr_serve_soak --port P --model NAME [--pid PID] [--requests N] "
                 "[--concurrency C] [--abuse F] [--max-tokens T]\n";
    return 2;
  }
  const long rss_start = pid > 0 ? mr::tests::rss_kib(pid) : -1;
  const mr::tests::SoakResult r = mr::tests::run_soak(o);
  const long rss_end = pid > 0 ? mr::tests::rss_kib(pid) : -1;
  httplib::Client client(o.host, o.port);
  const auto health = client.Get("/health");
  std::cout << "requests " << o.requests << " at concurrency " << o.concurrency << " in "
            << r.seconds << " s\n"
            << "valid " << r.valid << ": ok " << r.valid_ok << ", 5xx " << r.valid_5xx
            << ", other failures " << r.valid_failed << "\n"
            << "abuse " << r.abuse << ":";
  for (const auto& [kind, n] : r.kinds) std::cout << " " << kind << " x" << n << ";";
  std::cout << "\nabuse answered with:";
  for (const auto& [status, n] : r.abuse_status)
    std::cout << " " << (status == 0 ? std::string("none") : std::to_string(status)) << " x" << n
              << ";";
  std::cout << "\nserver RSS: start " << rss_start / 1024.0 << " MiB, end " << rss_end / 1024.0
            << " MiB\nhealth after: " << (health ? std::to_string(health->status) : "no answer")
            << "\n";
  for (const auto& f : r.failures) std::cout << "failure: " << f << "\n";
  const bool ok = r.valid_ok == r.valid && r.valid_5xx == 0 && health && health->status == 200;
  return ok ? 0 : 1;
}
