/// @file logging.hpp
/// Host logging (spdlog lives in core only) and the HostContext implementation handed to plugins.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "metareward/sdk/host.hpp"

namespace mr::core {

/// Sets up the process-wide logger writing to stderr. `level`: trace, debug, info, warn, error.
/// Throws sdk::ConfigError for an unknown level.
void init_logging(const std::string& level);

/// Also writes the log (every level the logger emits, without colours) to `file`, appending.
/// Throws sdk::DataError naming the file when it cannot be opened.
void add_log_file(const std::filesystem::path& file);

/// Logs through core's spdlog logger with a "[component] " prefix.
std::unique_ptr<sdk::Logger> make_logger(const std::string& component);

/// A progress display for host code: a bar on a TTY (items, rate, ETA), periodic log lines
/// otherwise. Plugins reach the same display through HostContext::progress.
std::unique_ptr<sdk::Progress> make_progress(const std::string& label, std::uint64_t total);

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

 private:
  std::unique_ptr<sdk::Logger> logger_;
  sdk::Config config_;
  std::uint64_t seed_;
  std::filesystem::path run_dir_;
  int threads_;
};

}  // namespace mr::core
