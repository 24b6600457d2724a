// `metareward launch --nproc-per-node N [...] [--] COMMAND ARGS...`: starts this machine's ranks
// of a distributed run with torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT), prefixes their output lines with
// "[rank K] ", forwards SIGINT/SIGTERM, and stops every rank when one fails.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

#include "commands.hpp"

namespace mr::core::cli {

namespace {

std::atomic<int> g_launch_signal{0};

extern "C" void on_launch_signal(int sig) {
  g_launch_signal.store(sig);
}

const char* kUsage =
    "Usage: metareward launch --nproc-per-node N [--nnodes M --node-rank R --master-addr A\n"
    "                         --master-port P] [--grace-s S] [--] COMMAND ARGS...\n\n"
    "Starts N ranks of `metareward COMMAND ARGS...` on this machine (node R of M), each with\n"
    "torchrun's environment: RANK = R*N + i, WORLD_SIZE = M*N, LOCAL_RANK = i,\n"
    "LOCAL_WORLD_SIZE = N, GROUP_RANK = R, MASTER_ADDR, MASTER_PORT. torchrun, srun wrappers\n"
    "or Kubernetes operators that set the same variables can start `metareward run` directly.\n"
    "COMMAND is `run` (sharded generation, data-parallel training), `train-dpo` or `sft`\n"
    "(data-parallel); rank 0 writes. Everything after `--` goes to the ranks unchanged.\n\n"
    "Options:\n"
    "  --nproc-per-node N  Ranks on this machine (required).\n"
    "  --nnodes M          Machines in the run (default 1).\n"
    "  --node-rank R       This machine's index, 0..M-1 (default 0).\n"
    "  --master-addr A     Address of rank 0's machine (default 127.0.0.1; required with M > 1).\n"
    "  --master-port P     Port of the rendezvous store on rank 0 (default: a free port with\n"
    "                      M = 1, 29500 with M > 1).\n"
    "  --grace-s S         Seconds the other ranks get to stop after one failed, before\n"
    "                      SIGKILL (default 10).\n\n"
    "Every line a rank prints is printed here prefixed with \"[rank K] \". SIGINT/SIGTERM are\n"
    "forwarded to every rank (the launcher then exits with rank 0's code: 130 or 143). When a\n"
    "rank fails the others are stopped and the launcher exits with that rank's code; killing\n"
    "the launcher kills its ranks (resume with --resume). See docs/distributed.md.\n";

int parse_int(const std::string& flag, const std::string& text, int lo, int hi) {
  int v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi)
    throw UsageError("launch: " + flag + " must be an integer in " + std::to_string(lo) + ".." +
                     std::to_string(hi) + ", got '" + text + "'");
  return v;
}

int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("launch: cannot find a free loopback port; pass --master-port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// One rank's process and its two output pipes.
struct RankProcess {
  int rank = 0;
  pid_t pid = -1;
  int out_fd = -1, err_fd = -1;
  std::string out_buf, err_buf;
  std::optional<int> code;  ///< Exit code (128 + signal when killed).
};

void emit(const RankProcess& r, std::string& buf, bool to_err, bool flush_all) {
  std::FILE* stream = to_err ? stderr : stdout;
  std::size_t start = 0;
  for (std::size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1)
    std::fprintf(stream, "[rank %d] %.*s\n", r.rank, static_cast<int>(nl - start),
                 buf.data() + start);
  buf.erase(0, start);
  if (flush_all && !buf.empty()) {
    std::fprintf(stream, "[rank %d] %s\n", r.rank, buf.c_str());
    buf.clear();
  }
  std::fflush(stream);
}

/// Reads what is available on `fd`; closes it (and flushes the partial line) at EOF.
void drain(RankProcess& r, int& fd, std::string& buf, bool to_err) {
  char chunk[4096];
  const ssize_t n = ::read(fd, chunk, sizeof chunk);
  if (n > 0) {
    buf.append(chunk, static_cast<std::size_t>(n));
    emit(r, buf, to_err, false);
  } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    emit(r, buf, to_err, true);
    ::close(fd);
    fd = -1;
  }
}

}  // namespace

int launch_command(const GlobalOptions& globals, const std::vector<std::string>& args) {
  int nproc = 0, nnodes = 1, node_rank = 0, grace_s = 10;
  std::optional<int> port;
  std::optional<std::string> master_addr;
  std::vector<std::string> command;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (a == "--") {
      command.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
      break;
    }
    if (a.rfind("--", 0) != 0) {
      command.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
      break;
    }
    std::string flag = a, value;
    if (const auto eq = a.find('='); eq != std::string::npos) {
      flag = a.substr(0, eq);
      value = a.substr(eq + 1);
    } else {
      if (i + 1 >= args.size()) throw UsageError("launch: " + a + " needs a value");
      value = args[++i];
    }
    if (flag == "--nproc-per-node")
      nproc = parse_int(flag, value, 1, 4096);
    else if (flag == "--nnodes")
      nnodes = parse_int(flag, value, 1, 1 << 16);
    else if (flag == "--node-rank")
      node_rank = parse_int(flag, value, 0, 1 << 16);
    else if (flag == "--master-port")
      port = parse_int(flag, value, 1, 65535);
    else if (flag == "--master-addr")
      master_addr = value;
    else if (flag == "--grace-s")
      grace_s = parse_int(flag, value, 0, 3600);
    else
      throw UsageError("launch: unknown option '" + flag + "' (see metareward launch --help)");
  }
  if (nproc == 0) throw UsageError("launch: --nproc-per-node N is required");
  if (node_rank >= nnodes)
    throw UsageError("launch: --node-rank " + std::to_string(node_rank) +
                     " is not below --nnodes " + std::to_string(nnodes));
  if (nnodes > 1 && !master_addr)
    throw UsageError("launch: --nnodes > 1 needs --master-addr (rank 0's machine)");
  if (command.empty()) throw UsageError("launch: missing the COMMAND to start, e.g. `run CONFIG`");
  if (command.front() == "launch") throw UsageError("launch: cannot launch `launch` itself");
  const std::string addr = master_addr.value_or("127.0.0.1");
  const int master_port = port ? *port : (nnodes == 1 ? free_loopback_port() : 29500);
  const int world = nproc * nnodes;

  std::vector<std::string> words = {"--log-level", globals.log_level};
  for (const auto& dir : globals.plugin_dirs) {
    words.push_back("--plugin-dir");
    words.push_back(dir.string());
  }
  words.insert(words.end(), command.begin(), command.end());

  g_launch_signal = 0;
  std::signal(SIGINT, on_launch_signal);
  std::signal(SIGTERM, on_launch_signal);
  const pid_t launcher = ::getpid();
  std::vector<RankProcess> ranks(static_cast<std::size_t>(nproc));
  for (int i = 0; i < nproc; ++i) {
    RankProcess& r = ranks[static_cast<std::size_t>(i)];
    r.rank = node_rank * nproc + i;
    int out[2], err[2];
    if (::pipe(out) != 0 || ::pipe(err) != 0)
      throw std::runtime_error("launch: cannot create pipes for rank " + std::to_string(r.rank));
    spdlog::debug(
        "launch: starting rank {}: RANK={} WORLD_SIZE={} LOCAL_RANK={} LOCAL_WORLD_SIZE={} "
        "GROUP_RANK={} MASTER_ADDR={} MASTER_PORT={}",
        r.rank, r.rank, world, i, nproc, node_rank, addr, master_port);
    std::fflush(nullptr);
    r.pid = ::fork();
    if (r.pid < 0) throw std::runtime_error("launch: fork failed");
    if (r.pid == 0) {
      ::setpgid(0, 0);  // A terminal's Ctrl-C reaches the launcher only, which forwards it.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != launcher) ::_exit(137);
      std::signal(SIGINT, SIG_DFL);
      std::signal(SIGTERM, SIG_DFL);
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      ::close(out[0]);
      ::close(out[1]);
      ::close(err[0]);
      ::close(err[1]);
      ::setenv("RANK", std::to_string(r.rank).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(i).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("GROUP_RANK", std::to_string(node_rank).c_str(), 1);
      ::setenv("MASTER_ADDR", addr.c_str(), 1);
      ::setenv("MASTER_PORT", std::to_string(master_port).c_str(), 1);
      ::setenv("METAREWARD_LAUNCHER", "1", 1);
      std::vector<std::string> argv_words = {"metareward"};
      argv_words.insert(argv_words.end(), words.begin(), words.end());
      std::vector<char*> argv;
      for (auto& w : argv_words) argv.push_back(w.data());
      argv.push_back(nullptr);
      ::execv("/proc/self/exe", argv.data());
      std::perror("metareward launch: exec");
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    r.out_fd = out[0];
    r.err_fd = err[0];
  }

  std::optional<RankProcess*> first_failure;
  std::optional<std::chrono::steady_clock::time_point> kill_at;
  int interrupt_signal = 0;  // the last SIGINT/SIGTERM forwarded to the ranks
  auto signal_all = [&](int sig) {
    for (auto& r : ranks)
      if (!r.code) ::kill(r.pid, sig);
  };
  for (;;) {
    if (const int sig = g_launch_signal.exchange(0); sig != 0) {
      interrupt_signal = sig;
      signal_all(sig);
    }
    std::vector<pollfd> fds;
    std::vector<std::pair<RankProcess*, bool>> owners;
    for (auto& r : ranks) {
      if (r.out_fd >= 0) {
        fds.push_back({r.out_fd, POLLIN, 0});
        owners.emplace_back(&r, false);
      }
      if (r.err_fd >= 0) {
        fds.push_back({r.err_fd, POLLIN, 0});
        owners.emplace_back(&r, true);
      }
    }
    if (!fds.empty() && ::poll(fds.data(), fds.size(), 100) > 0) {
      for (std::size_t k = 0; k < fds.size(); ++k) {
        if ((fds[k].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        RankProcess& r = *owners[k].first;
        if (owners[k].second)
          drain(r, r.err_fd, r.err_buf, true);
        else
          drain(r, r.out_fd, r.out_buf, false);
      }
    } else if (fds.empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    bool all_done = true;
    for (auto& r : ranks) {
      if (!r.code) {
        int status = 0;
        if (::waitpid(r.pid, &status, WNOHANG) == r.pid) {
          r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          // After a forwarded signal the ranks stop on their own (rank 0 saves and prints how to
          // resume); their 130/143 is not a failure to fail-fast on.
          if (*r.code != 0 && !first_failure && interrupt_signal == 0) {
            first_failure = &r;
            if (WIFSIGNALED(status))
              spdlog::error(
                  "metareward launch: rank {} was killed by signal {}; stopping the "
                  "other ranks",
                  r.rank, WTERMSIG(status));
            else
              spdlog::error(
                  "metareward launch: rank {} exited with code {}; stopping the "
                  "other ranks",
                  r.rank, *r.code);
            signal_all(SIGTERM);
            kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(grace_s);
          }
        }
      }
      all_done = all_done && r.code && r.out_fd < 0 && r.err_fd < 0;
    }
    if (kill_at && std::chrono::steady_clock::now() >= *kill_at) {
      signal_all(SIGKILL);
      kill_at.reset();
    }
    if (all_done) break;
  }
  if (first_failure) return *(*first_failure)->code;
  // Interrupted: the code of this node's first rank (rank 0 of the run on the first node), which
  // is 0 only when it had already finished.
  if (interrupt_signal != 0) return *ranks.front().code;
  spdlog::info("metareward launch: all {} ranks finished", nproc);
  return 0;
}

}  // namespace mr::core::cli
