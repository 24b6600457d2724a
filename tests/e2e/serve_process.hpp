// `metareward serve` as a child process for the end-to-end tests: started on --port 0, its port
// read from the "listening on http://HOST:PORT" line of its stderr (captured to a file).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "cli_runner.hpp"

namespace mr::tests {

class ServeProcess {
 public:
  /// Starts `metareward serve ARGS... --port 0` with `env` ("NAME=value") added and waits (at
  /// most `timeout`) until it listens. REQUIREs that it does.
  ServeProcess(const std::filesystem::path& log_file,
               std::vector<std::string> args,
               const std::vector<std::string>& env = {},
               std::chrono::seconds timeout = std::chrono::seconds(120))
      : log_(log_file) {
    args.insert(args.begin(), "serve");
    args.insert(args.begin(), MR_CLI_PATH);
    args.push_back("--port");
    args.push_back("0");
    start(args, env);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const std::regex listening("listening on http://([^:]+):([0-9]+)");
    while (std::chrono::steady_clock::now() < deadline) {
      std::smatch m;
      const std::string text = log();
      if (std::regex_search(text, m, listening)) {
        host_ = m[1];
        port_ = std::stoi(m[2]);
        return;
      }
      if (const auto code = poll_exit()) {
        INFO(log());
        FAIL("metareward serve exited with status " << *code << " before listening");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    INFO(log());
    FAIL("metareward serve did not listen within the timeout");
  }
  ~ServeProcess() {
    if (pid_ > 0 && !exit_code_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  int port() const { return port_; }
  int pid() const { return pid_; }
  const std::string& host() const { return host_; }
  std::string log() const { return read_text(log_); }

  /// Sends `sig`, waits (at most `timeout`) for the exit and returns its status (128 + signal
  /// when killed by one); -1 on timeout.
  int stop(int sig = SIGTERM, std::chrono::seconds timeout = std::chrono::seconds(60)) {
    signal(sig);
    return wait(timeout);
  }
  void signal(int sig) { ::kill(pid_, sig); }
  int wait(std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (const auto code = poll_exit()) return *code;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  /// The exit status once the process has ended.
  std::optional<int> poll_exit() {
    if (exit_code_) return exit_code_;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_)
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return exit_code_;
  }

 private:
  void start(const std::vector<std::string>& args, const std::vector<std::string>& env) {
    std::vector<std::string> environment;
    for (char** e = environ; *e != nullptr; ++e)
      if (std::string(*e).rfind("METAREWARD_PLUGIN_PATH=", 0) != 0) environment.push_back(*e);
    environment.insert(environment.end(), env.begin(), env.end());
    std::vector<char*> argv, envp;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (const auto& e : environment) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(fd, 2);
      const int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::execve(argv[0], argv.data(), envp.data());
      const std::string why = std::string("execve ") + argv[0] + ": " + std::strerror(errno) + "\n";
      [[maybe_unused]] const ssize_t n = ::write(2, why.data(), why.size());
      ::_exit(127);
    }
    ::close(fd);
  }

  std::filesystem::path log_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string host_;
  int port_ = 0;
};

}  // namespace mr::tests
