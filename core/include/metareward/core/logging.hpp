/// @file logging.hpp
/// Host logging (spdlog lives in core only) and the HostContext implementation handed to plugins.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "metareward/sdk/host.hpp"

// spdlog's level enum, declared opaquely (its underlying type is fixed to int) so that this
// header does not pull spdlog into every file that includes it.
namespace spdlog::level {
enum level_enum : int;
}  // namespace spdlog::level

namespace mr::core {

/// Sets up the process-wide logger writing to stderr. `level`: trace, debug, info, warn, error.
/// Throws sdk::ConfigError for an unknown level.
void init_logging(const std::string& level);

/// Also writes the log (every level the logger emits, without colours) to `file`, appending.
/// Throws sdk::DataError naming the file when it cannot be opened.
void add_log_file(const std::filesystem::path& file);

/// Writes one record (`message` at `level`, formatted like the other log-file lines) to every
/// file sink added with add_log_file() (e.g. RUN/run.log) and to nothing else: not to the
/// console. The CLI uses it to put the final error of a failed run into run.log after printing
/// it to stderr itself. Does nothing when the logger's level drops `level` or no log file was
/// added; the files are flushed.
void log_to_files(spdlog::level::level_enum level, const std::string& message);

/// Logs through core's spdlog logger with a "[component] " prefix.
std::unique_ptr<sdk::Logger> make_logger(const std::string& component);

/// A progress display for host code: a bar on a TTY (items, rate, ETA), periodic log lines
/// otherwise. A line that init_logging()'s console sink writes while the bar is on the terminal
/// first erases the bar's line; the bar is redrawn below it. Plugins reach the same display
/// through HostContext::progress.
std::unique_ptr<sdk::Progress> make_progress(const std::string& label, std::uint64_t total);

/// Runs one `metareward` command line (the words after the program name, e.g. {"plugins",
/// "list"}) in this process and returns its exit status; errors are reported and mapped to exit
/// codes as on the command line, never thrown.
using CommandRunner = std::function<int(const std::vector<std::string>& args)>;

/// Installs the process-wide command runner behind HostContext::run_command (the CLI installs
/// one that dispatches through its command table and the plugin commands, with the invocation's
/// global options) and returns the previous one; an empty runner uninstalls it. Main thread only.
CommandRunner set_command_runner(CommandRunner runner);

/// The concrete HostContext core gives each plugin object.
class PluginHostContext : public sdk::HostContext {
 public:
  PluginHostContext(std::string plugin_name,
                    sdk::Config config,
                    std::uint64_t seed,
                    std::filesystem::path run_dir,
                    int threads);
  sdk::Logger& logger() override;
  std::unique_ptr<sdk::Progress> progress(std::string_view stage, std::uint64_t total) override;
  std::uint64_t seed() const override { return seed_; }
  const std::filesystem::path& run_dir() const override { return run_dir_; }
  int threads() const override { return threads_; }
  const sdk::Config& config() const override { return config_; }
  /// Runs the command through the runner installed with set_command_runner(); throws
  /// sdk::PluginError when none is installed (core used as a library, without the CLI).
  int run_command(const std::vector<std::string>& args) override;

 private:
  std::unique_ptr<sdk::Logger> logger_;
  sdk::Config config_;
  std::uint64_t seed_;
  std::filesystem::path run_dir_;
  int threads_;
};

}  // namespace mr::core
