// The stop signals of `metareward serve` (stop_signals.hpp).
#include "stop_signals.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <stdexcept>

namespace mr::core::serve {

namespace {

int g_pipe[2] = {-1, -1};
std::atomic<int> g_signal{0};
struct sigaction g_previous_int, g_previous_term, g_previous_pipe;

extern "C" void serve_on_stop_signal(int sig) {
  if (g_signal.exchange(sig) != 0) {
    // Second signal: the user does not want to wait for the drain.
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  const unsigned char byte = static_cast<unsigned char>(sig);
  const int saved = errno;
  [[maybe_unused]] const ssize_t n = ::write(g_pipe[1], &byte, 1);
  errno = saved;
}

}  // namespace

StopSignals::StopSignals() {
  if (::pipe(g_pipe) != 0) throw std::runtime_error("serve: cannot create the signal pipe");
  ::fcntl(g_pipe[0], F_SETFD, FD_CLOEXEC);
  ::fcntl(g_pipe[1], F_SETFD, FD_CLOEXEC);
  g_signal = 0;
  struct sigaction action {};
  action.sa_handler = serve_on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &action, &g_previous_int);
  ::sigaction(SIGTERM, &action, &g_previous_term);
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  ::sigaction(SIGPIPE, &ignore, &g_previous_pipe);
}

StopSignals::~StopSignals() {
  ::sigaction(SIGINT, &g_previous_int, nullptr);
  ::sigaction(SIGTERM, &g_previous_term, nullptr);
  ::sigaction(SIGPIPE, &g_previous_pipe, nullptr);
  ::close(g_pipe[0]);
  ::close(g_pipe[1]);
  g_pipe[0] = g_pipe[1] = -1;
}

int StopSignals::wait() {
  unsigned char byte = 0;
  while (true) {
    const ssize_t n = ::read(g_pipe[0], &byte, 1);
    if (n == 1) return byte;
    if (n < 0 && errno == EINTR) continue;
    return 0;
  }
}

void StopSignals::wake() {
  const unsigned char byte = 0;
  [[maybe_unused]] const ssize_t n = ::write(g_pipe[1], &byte, 1);
}

}  // namespace mr::core::serve
