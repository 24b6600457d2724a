// `metareward serve`: an OpenAI-compatible HTTP server over one ModelBackend (docs/serve.md).
// Handler threads parse and check each request, submit it to the BatchQueue and answer from its
// result; one worker thread owns the backend.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "metareward/sdk/model_backend.hpp"

namespace mr::core::serve {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  ///< 0: any free port.
  std::string served_model_name;
  std::string model_path;  ///< As given on the command line ("root" in /v1/models).
  std::string backend_name;
  std::string api_key;  ///< Empty: no authentication.
  int max_batch = 64;
  std::chrono::milliseconds batch_window{5};
  std::size_t max_body_bytes = 8388608;
  int max_tokens_limit = 4096;
  int max_n = 128;
  /// Seeds of requests without one: derived from it in order; random when absent.
  std::optional<std::uint64_t> seed;
  std::chrono::seconds shutdown_timeout{30};
  std::chrono::milliseconds ping_interval{1000};  ///< SSE keep-alive comments while waiting.
};

/// Serves until SIGINT or SIGTERM, then stops accepting work (503), waits for the requests in
/// flight (at most shutdown_timeout) and returns 0. Throws (exit 1) when it cannot listen; exits
/// the process with status 1 when the drain times out.
int run_server(sdk::ModelBackend& backend, const ServeOptions& options);

}  // namespace mr::core::serve
