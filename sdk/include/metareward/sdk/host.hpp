/// @file host.hpp
/// What the host gives every plugin object: logging, progress reporting, seed, run directory and
/// the plugin's validated config. Implemented by core; plugins only call it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "metareward/sdk/config.hpp"

namespace mr::sdk {

enum class LogLevel { Trace, Debug, Info, Warn, Error };

/// A logger owned by the host and backed by its spdlog sink. Messages are prefixed with the plugin
/// name. Thread-safe. Plugins must log through this, never through their own spdlog registry.
class Logger {
 public:
  virtual ~Logger();
  virtual void log(LogLevel level, std::string_view message) = 0;
  /// True when `level` would be emitted; use it to skip building expensive messages.
  virtual bool enabled(LogLevel level) const = 0;
  void debug(std::string_view m) { log(LogLevel::Debug, m); }
  void info(std::string_view m) { log(LogLevel::Info, m); }
  void warn(std::string_view m) { log(LogLevel::Warn, m); }
  void error(std::string_view m) { log(LogLevel::Error, m); }
};

/// Progress of one long-running piece of work (a bar on a TTY, periodic log lines otherwise).
/// Not thread-safe: advance it from one thread. Finishes when destroyed.
class Progress {
 public:
  virtual ~Progress();
  /// Adds `items` completed items; `tokens` (optional) feeds the tokens/s display.
  virtual void advance(std::uint64_t items, std::uint64_t tokens = 0) = 0;
};

/// Per-object services from the host. The host guarantees the context outlives every object the
/// factory created with it. All methods are thread-safe except where noted.
class HostContext {
 public:
  virtual ~HostContext();
  /// Logger prefixed with this plugin's name.
  virtual Logger& logger() = 0;
  /// Starts a progress display for `stage` with `total` items (0 = unknown).
  virtual std::unique_ptr<Progress> progress(std::string_view stage, std::uint64_t total) = 0;
  /// The run's base seed (config `seed`). Derive per-use seeds from it; never use time or
  /// std::random_device, so that a run is reproducible.
  virtual std::uint64_t seed() const = 0;
  /// The run directory; may be empty for commands that have none (`plugins describe`).
  virtual const std::filesystem::path& run_dir() const = 0;
  /// Intra-op threads the plugin may use (config `threads`, resolved: never 0).
  virtual int threads() const = 0;
  /// This plugin object's validated config, defaults filled in.
  virtual const Config& config() const = 0;
  /// Runs another `metareward` command in this process, e.g. {"sft", "--model", dir, ...}, and
  /// returns its exit status; lets a plugin command compose host and plugin commands (the
  /// testbed's `bootstrap`). Only valid from a plugin command's run(), on the main thread.
  /// Default: throws PluginError (contexts that have no command table).
  virtual int run_command(const std::vector<std::string>& args);
};

/// Deterministic 64-bit mix of a seed with a stream index (SplitMix64 finaliser). Used to derive
/// per-(iteration, stage, prompt, sample) seeds so results do not depend on batching or resume.
std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t stream);

}  // namespace mr::sdk
