// `metareward serve`: SIGINT / SIGTERM as an event a thread can wait for (a self-pipe), so the
// server drains in an ordinary thread instead of a signal handler. A second signal while the
// first is handled takes the default action at once (the process dies of it).
#pragma once

namespace mr::core::serve {

class StopSignals {
 public:
  /// Installs the handlers of SIGINT and SIGTERM (one instance at a time) and ignores SIGPIPE
  /// (a client that went away must not kill the server).
  StopSignals();
  ~StopSignals();  ///< Puts the previous handlers back.
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  /// Blocks until a stop signal arrives (returns its number) or wake() is called (returns 0).
  int wait();
  /// Makes wait() return 0.
  void wake();
};

}  // namespace mr::core::serve
