// `metareward serve`: an OpenAI-compatible HTTP server over a model backend (core/src/serve/,
// docs/serve.md). The backend is built like the model commands' (model_session.hpp).
#include <cstdlib>
#include <limits>

#include <spdlog/spdlog.h>

#include "../serve/server.hpp"
#include "commands.hpp"
#include "metareward/sdk/error.hpp"
#include "model_session.hpp"

namespace mr::core::cli {

namespace po = boost::program_options;

namespace {

int at_least(const po::variables_map& vm, const std::string& key, int lo) {
  const int v = vm[key].as<int>();
  if (v < lo)
    throw UsageError("serve: --" + key + " must be >= " + std::to_string(lo) + ", got " +
                     std::to_string(v));
  return v;
}

}  // namespace

int serve_command(const GlobalOptions& globals, const std::vector<std::string>& args) {
  po::options_description options("Options");
  add_model_options(options);
  options.add_options()("host", po::value<std::string>()->default_value("127.0.0.1"),
                        "Address to listen on (0.0.0.0: every interface).")(
      "port", po::value<int>()->default_value(8000), "Port to listen on (0: any free port).")(
      "served-model-name", po::value<std::string>()->value_name("NAME"),
      "The model's name in the API (default: the --model path as given).")(
      "api-key-env", po::value<std::string>()->value_name("VAR"),
      "Require 'Authorization: Bearer KEY' with KEY read from environment variable VAR.")(
      "max-batch", po::value<int>()->default_value(64), "Requests per generate() call at most.")(
      "batch-window-ms", po::value<int>()->default_value(5),
      "How long a batch waits for more requests after its first one.")(
      "max-body-bytes", po::value<std::int64_t>()->default_value(8388608),
      "Largest request body accepted (413 above).")(
      "max-tokens-limit", po::value<int>()->default_value(4096),
      "Largest max_tokens accepted, and the default of requests without one.")(
      "max-n", po::value<int>()->default_value(128), "Largest n (samples per request) accepted.")(
      "shutdown-timeout", po::value<int>()->default_value(30),
      "Seconds SIGINT/SIGTERM waits for the requests in flight before exiting with status 1.");
  po::variables_map vm;
  if (!parse_command_args("serve", "--model DIR [options]", options, {}, args, vm)) return 0;

  serve::ServeOptions o;
  o.model_path = required(vm, "serve", "model");
  o.host = vm["host"].as<std::string>();
  o.port = at_least(vm, "port", 0);
  if (o.port > 65535) throw UsageError("serve: --port must be <= 65535");
  o.served_model_name =
      vm.count("served-model-name") ? vm["served-model-name"].as<std::string>() : o.model_path;
  if (o.served_model_name.empty()) throw UsageError("serve: --served-model-name is empty");
  o.backend_name = vm["backend"].as<std::string>();
  o.max_batch = at_least(vm, "max-batch", 1);
  o.batch_window = std::chrono::milliseconds(at_least(vm, "batch-window-ms", 0));
  const std::int64_t body = vm["max-body-bytes"].as<std::int64_t>();
  if (body < 1) throw UsageError("serve: --max-body-bytes must be >= 1");
  o.max_body_bytes = static_cast<std::size_t>(body);
  o.max_tokens_limit = at_least(vm, "max-tokens-limit", 1);
  o.max_n = at_least(vm, "max-n", 1);
  o.shutdown_timeout = std::chrono::seconds(at_least(vm, "shutdown-timeout", 1));
  if (!vm["seed"].defaulted()) o.seed = static_cast<std::uint64_t>(vm["seed"].as<std::int64_t>());
  if (vm.count("api-key-env")) {
    const std::string var = vm["api-key-env"].as<std::string>();
    const char* key = std::getenv(var.c_str());
    if (key == nullptr || *key == '\0')
      throw UsageError("serve: --api-key-env " + var +
                       ": that environment variable is not set or empty");
    o.api_key = key;
  }

  ModelSession s;
  resolve_session(s, "serve", globals, vm, "");  // A bad option or --set key: exit 2.
  try {
    create_session_plugins(s);
  } catch (const sdk::ConfigError& e) {
    // The options were valid: what failed is loading this model (exit 1, not a usage error).
    throw sdk::Error(std::string("serve: cannot load the model: ") + e.what());
  }
  return serve::run_server(*s.backend, o);
}

}  // namespace mr::core::cli
