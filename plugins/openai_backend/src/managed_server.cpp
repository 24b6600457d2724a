// Managed inference servers (managed_server.hpp).
#include "managed_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>

#include "http_client.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::plugins::openai_backend {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::vector<std::string> substitute_launch(const std::vector<std::string>& argv,
                                           const std::map<std::string, std::string>& values,
                                           const std::string& key) {
  if (argv.empty() || argv.front().empty())
    throw mr::sdk::ConfigError(key + " is empty: give the server's command line");
  std::vector<std::string> out;
  for (const std::string& arg : argv) {
    std::string s;
    for (std::size_t i = 0; i < arg.size();) {
      if (arg[i] != '{') {
        s += arg[i++];
        continue;
      }
      const auto close = arg.find('}', i);
      if (close == std::string::npos) {
        s += arg.substr(i);
        break;
      }
      const std::string name = arg.substr(i + 1, close - i - 1);
      auto it = values.find(name);
      if (it == values.end())
        throw mr::sdk::ConfigError(key + ": unknown placeholder {" + name + "} in \"" + arg +
                                   "\" (known: {model}, {port}, {host}, {index}, {threads}, "
                                   "{metareward})");
      s += it->second;
      i = close + 1;
    }
    out.push_back(std::move(s));
  }
  return out;
}

int free_port(const std::string& host) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw mr::sdk::BackendError(std::string("socket(): ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  if (::inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host.c_str(), &addr.sin_addr) != 1)
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int e = errno;
    ::close(fd);
    throw mr::sdk::BackendError("cannot find a free port on " + host + ": " + std::strerror(e));
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string tail_lines(const fs::path& file, int lines) {
  std::ifstream in(file);
  if (!in) return "";
  std::deque<std::string> last;
  std::string line;
  while (std::getline(in, line)) {
    last.push_back(line);
    if (static_cast<int>(last.size()) > lines) last.pop_front();
  }
  std::string out;
  for (const auto& l : last) out += "  | " + l + "\n";
  return out;
}

std::string self_executable() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("metareward") : p.string();
}

namespace {

/// Runs `fork_child` on one thread that lives as long as the process. PR_SET_PDEATHSIG fires
/// when the *thread* that forked the child ends, and servers are (re)started from worker
/// threads that end with their batch: forking from them would kill the server with them.
pid_t fork_on_spawner_thread(const std::function<pid_t()>& fork_child) {
  struct Task {
    const std::function<pid_t()>* fork_child;
    pid_t pid = -1;
    int error = 0;
    bool done = false;
  };
  struct Spawner {
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<Task*> queue;
  };
  // Never destroyed: the thread waits on it until the process ends (a static condition
  // variable's destructor would block exit() on that waiter).
  static Spawner* const spawner = [] {
    auto* s = new Spawner;
    std::thread([s] {
      while (true) {
        std::unique_lock lock(s->mutex);
        s->cv.wait(lock, [s] { return !s->queue.empty(); });
        Task* task = s->queue.front();
        s->queue.pop_front();
        lock.unlock();
        const pid_t pid = (*task->fork_child)();
        const int error = errno;
        lock.lock();
        task->pid = pid;
        task->error = error;
        task->done = true;
        s->cv.notify_all();
      }
    }).detach();
    return s;
  }();
  Task task{&fork_child};
  std::unique_lock lock(spawner->mutex);
  spawner->queue.push_back(&task);
  spawner->cv.notify_all();
  spawner->cv.wait(lock, [&] { return task.done; });
  errno = task.error;
  return task.pid;
}

}  // namespace

ManagedServer::ManagedServer(std::vector<std::string> argv_template,
                             std::string host,
                             int port,
                             int index,
                             int threads,
                             fs::path log_file,
                             double ready_timeout_s)
    : argv_template_(std::move(argv_template)),
      host_(std::move(host)),
      port_(port),
      index_(index),
      threads_(threads),
      log_file_(std::move(log_file)),
      ready_timeout_s_(ready_timeout_s) {
  endpoint_ = parse_endpoint("http://" + host_ + ":" + std::to_string(port_) + "/v1", "launch");
}

ManagedServer::~ManagedServer() {
  try {
    stop();
  } catch (...) {  // Destructors never throw; stop() already did what it could.
  }
}

std::string ManagedServer::command_line() const {
  std::string s;
  for (const auto& a : argv_) s += (s.empty() ? "" : " ") + a;
  return s;
}

void ManagedServer::start(const std::string& model) {
  stop();
  model_ = model;
  argv_ = substitute_launch(argv_template_,
                            {{"model", model},
                             {"port", std::to_string(port_)},
                             {"host", host_},
                             {"index", std::to_string(index_)},
                             {"threads", std::to_string(threads_)},
                             {"metareward", self_executable()}},
                            "launch");
  std::error_code ec;
  fs::create_directories(log_file_.parent_path(), ec);
  const int log_fd = ::open(log_file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0)
    throw mr::sdk::BackendError("cannot open the server log '" + log_file_.string() +
                                "': " + std::strerror(errno));
  const std::string header = "==== metareward: starting: " + command_line() + "\n";
  if (::write(log_fd, header.data(), header.size()) < 0) { /* the log is best effort */
  }
  std::vector<char*> cargv;
  for (auto& a : argv_) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = fork_on_spawner_thread([&]() -> pid_t {
    const pid_t child = ::fork();
    if (child != 0) return child;
    // Child: its own process group (a terminal's Ctrl-C reaches only metareward, which stops
    // the server in order), SIGTERM if metareward dies without stopping it.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::execvp(cargv[0], cargv.data());
    const char* why = std::strerror(errno);
    const char prefix[] = "==== metareward: exec failed: ";
    (void)!::write(2, prefix, sizeof prefix - 1);
    (void)!::write(2, why, std::strlen(why));
    (void)!::write(2, "\n", 1);
    ::_exit(127);
  });
  if (pid < 0) {
    const int e = errno;
    ::close(log_fd);
    throw mr::sdk::BackendError("cannot start '" + argv_.front() + "': fork: " + std::strerror(e));
  }
  ::setpgid(pid, pid);  // Also in the parent, so that stop() works even before the child runs.
  const std::string started = "==== metareward: pid " + std::to_string(pid) + "\n";
  if (::write(log_fd, started.data(), started.size()) < 0) { /* best effort */
  }
  ::close(log_fd);
  pid_ = pid;
  exit_description_.clear();
  wait_ready();
}

bool ManagedServer::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  if (r == pid_) {
    if (WIFEXITED(status))
      exit_description_ = "exited with status " + std::to_string(WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
      exit_description_ = std::string("was killed by signal ") + std::to_string(WTERMSIG(status)) +
                          " (" + ::strsignal(WTERMSIG(status)) + ")";
    ::kill(-pid_, SIGKILL);  // Whatever it started in its group goes with it.
    pid_ = -1;
    return false;
  }
  return false;
}

void ManagedServer::wait_ready() {
  const auto deadline = Clock::now() + std::chrono::duration<double>(ready_timeout_s_);
  HttpOptions options;
  options.connect_timeout_s = 1;
  options.timeout_s = 5;
  while (true) {
    if (!running()) {
      const std::string how = exit_description_;
      throw mr::sdk::BackendError("the server '" + command_line() + "' " + how +
                                  " before it answered " + endpoint_.base_url +
                                  "/models; last lines of " + log_file_.string() + ":\n" +
                                  tail_lines(log_file_, 20));
    }
    {
      HttpClient client(endpoint_, options);
      const HttpReply reply = client.get(endpoint_.prefix + "/models");
      if (reply.ok()) return;
    }
    if (Clock::now() > deadline) {
      stop();
      throw mr::sdk::BackendError(
          "the server '" + command_line() + "' did not answer " + endpoint_.base_url +
          "/models within ready_timeout_s = " + std::to_string(static_cast<int>(ready_timeout_s_)) +
          " s; last lines of " + log_file_.string() + ":\n" + tail_lines(log_file_, 20));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void ManagedServer::stop() {
  if (pid_ <= 0) return;
  ::kill(-pid_, SIGTERM);
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  int status = 0;
  while (Clock::now() < deadline) {
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) {
      ::kill(-pid_, SIGKILL);  // Stragglers of the group (engine workers).
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(-pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string ManagedServer::restart() {
  const std::string how = exit_description_.empty() ? "stopped" : exit_description_;
  start(model_);
  return how;
}

}  // namespace mr::plugins::openai_backend
