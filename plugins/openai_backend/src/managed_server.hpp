// Internal: an inference server the backend starts itself (`launch = [...]`): a child process
// in its own process group with its output in a log file, ready once /v1/models answers, stopped
// (SIGTERM to the group, then SIGKILL) on stop(), destruction, or the parent's death.
#pragma once

#include <sys/types.h>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "endpoint.hpp"

namespace mr::plugins::openai_backend {

class ManagedServer {
 public:
  /// `argv_template` with {model}, {port}, {host}, {index}, {threads} and {metareward}
  /// placeholders.
  ManagedServer(std::vector<std::string> argv_template,
                std::string host,
                int port,
                int index,
                int threads,
                std::filesystem::path log_file,
                double ready_timeout_s);
  ~ManagedServer();
  ManagedServer(const ManagedServer&) = delete;
  ManagedServer& operator=(const ManagedServer&) = delete;

  /// Starts the server on `model` and waits until GET /v1/models answers 200. Throws
  /// sdk::BackendError with the last lines of the log when it exits or times out first.
  void start(const std::string& model);
  /// SIGTERM to the process group, SIGKILL after a grace period; no-op when not running.
  void stop();
  /// True while the child process has not exited.
  bool running();
  /// start() again on the same model after the process died; returns how it had ended.
  std::string restart();

  const Endpoint& endpoint() const { return endpoint_; }
  const std::filesystem::path& log_file() const { return log_file_; }
  const std::string& model() const { return model_; }
  /// The command line of the last start(), for messages.
  std::string command_line() const;

 private:
  void wait_ready();

  std::vector<std::string> argv_template_;
  std::vector<std::string> argv_;
  std::string host_;
  int port_ = 0;
  int index_ = 0;
  int threads_ = 1;
  std::filesystem::path log_file_;
  double ready_timeout_s_ = 600;
  Endpoint endpoint_;
  std::string model_;
  pid_t pid_ = -1;
  std::string exit_description_;
};

/// Replaces {model}, {port}, {host}, {index}, {threads} and {metareward} in `argv`; throws
/// sdk::ConfigError naming `key` on another {placeholder} or an empty command.
std::vector<std::string> substitute_launch(const std::vector<std::string>& argv,
                                           const std::map<std::string, std::string>& values,
                                           const std::string& key);

/// A TCP port on `host` that nothing listens on now (bind to port 0 and read it back).
int free_port(const std::string& host);

/// The last `lines` lines of `file` ("" when unreadable).
std::string tail_lines(const std::filesystem::path& file, int lines);

/// Path of the running executable (for {metareward}).
std::string self_executable();

}  // namespace mr::plugins::openai_backend
