// spdlog-backed logging, progress displays and the HostContext core hands to plugin objects.
#include "metareward/core/logging.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string_view>
#include <thread>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "metareward/sdk/error.hpp"

namespace mr::core {

namespace {

spdlog::level::level_enum to_spdlog(sdk::LogLevel level) {
  switch (level) {
    case sdk::LogLevel::Trace:
      return spdlog::level::trace;
    case sdk::LogLevel::Debug:
      return spdlog::level::debug;
    case sdk::LogLevel::Info:
      return spdlog::level::info;
    case sdk::LogLevel::Warn:
      return spdlog::level::warn;
    case sdk::LogLevel::Error:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

/// A component logger: looks the default logger up on every call so that a logger installed
/// later (init_logging, a test's capturing sink) is honoured.
class ComponentLogger : public sdk::Logger {
 public:
  explicit ComponentLogger(std::string component) : component_(std::move(component)) {}
  void log(sdk::LogLevel level, std::string_view message) override {
    spdlog::default_logger_raw()->log(to_spdlog(level), "[{}] {}", component_, message);
  }
  bool enabled(sdk::LogLevel level) const override {
    return spdlog::default_logger_raw()->should_log(to_spdlog(level));
  }
  const std::string& component() const { return component_; }

 private:
  std::string component_;
};

/// The runner behind PluginHostContext::run_command (set by the CLI at start-up).
CommandRunner& command_runner() {
  static CommandRunner runner;
  return runner;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  auto s = static_cast<long long>(std::llround(seconds));
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", s / 60, s % 60);
  return buf;
}

std::string format_rate(double per_second) {
  char buf[32];
  if (per_second >= 1000)
    std::snprintf(buf, sizeof buf, "%.1fk", per_second / 1000);
  else if (per_second >= 10)
    std::snprintf(buf, sizeof buf, "%.0f", per_second);
  else
    std::snprintf(buf, sizeof buf, "%.2f", per_second);
  return buf;
}

/// The stderr line a progress bar occupies. The bar and the console sink share it under one
/// mutex, so that a log line never lands on the bar's line: the sink clears the bar, writes its
/// line and redraws the bar below (as tqdm and indicatif do).
struct BarLine {
  std::mutex mutex;
  bool drawn = false;  ///< A bar is on the terminal, the cursor at the end of its line.
  std::string text;    ///< The bar as last drawn, without control sequences.
};

BarLine& bar_line() {
  static BarLine line;
  return line;
}

/// Whether stderr takes ANSI erase sequences (a terminal other than TERM=dumb).
bool ansi_terminal() {
  static const bool ansi = [] {
    const char* term = std::getenv("TERM");
    return term == nullptr || std::string_view(term) != "dumb";
  }();
  return ansi;
}

/// Returns the cursor to the start of the bar's line and blanks it. Caller holds the mutex.
void erase_bar(const BarLine& bar) {
  const std::string erase =
      ansi_terminal() ? std::string("\r\x1b[2K") : "\r" + std::string(bar.text.size(), ' ') + "\r";
  std::fputs(erase.c_str(), stderr);
}

/// Writes `text` as the bar's line (over the previous bar) and remembers it. Caller holds the
/// mutex.
void put_bar(BarLine& bar, std::string text) {
  std::string line = "\r" + text;
  if (ansi_terminal())
    line += "\x1b[K";  // Clear what a longer previous line left behind.
  else if (bar.drawn && bar.text.size() > text.size())
    line += std::string(bar.text.size() - text.size(), ' ');
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
  bar.text = std::move(text);
  bar.drawn = true;
}

/// A sink that hands everything to another (spdlog's own sinks are final).
class ForwardingSink : public spdlog::sinks::sink {
 public:
  explicit ForwardingSink(std::shared_ptr<spdlog::sinks::sink> inner) : inner_(std::move(inner)) {}
  void log(const spdlog::details::log_msg& msg) override { inner_->log(msg); }
  void flush() override { inner_->flush(); }
  void set_pattern(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override {
    inner_->set_formatter(std::move(formatter));
  }

 protected:
  std::shared_ptr<spdlog::sinks::sink> inner_;
};

/// The console sink of init_logging(): wraps the stderr sink so that a line logged while a
/// progress bar is drawn clears the bar's line, is written, and has the bar redrawn below it.
class BarAwareConsoleSink final : public ForwardingSink {
 public:
  using ForwardingSink::ForwardingSink;

  void log(const spdlog::details::log_msg& msg) override {
    BarLine& bar = bar_line();
    const std::lock_guard<std::mutex> lock(bar.mutex);
    if (!bar.drawn) {
      inner_->log(msg);
      return;
    }
    erase_bar(bar);
    inner_->log(msg);  // Ends with a newline; the stderr sink flushes each line.
    put_bar(bar, bar.text);
  }
};

/// The sinks add_log_file() adds (a file sink, wrapped); log_to_files() finds them among the
/// logger's sinks by this type.
class LogFileSink final : public ForwardingSink {
 public:
  using ForwardingSink::ForwardingSink;
};

/// Progress display: a redrawn bar when stderr is a terminal, periodic log lines otherwise
/// (log files and CI output stay readable). Wall-clock time is used for display only.
class ProgressDisplay : public sdk::Progress {
 public:
  using Clock = std::chrono::steady_clock;

  ProgressDisplay(std::string label, std::uint64_t total, bool tty)
      : label_(std::move(label)),
        total_(total),
        tty_(tty),
        // A display opened while another is live (a backend's per-call progress inside a run
        // stage) stays silent: two bars would fight over one terminal line, and in logs every
        // batch would add a started/done pair under the stage's own lines.
        nested_(live_displays().fetch_add(1) > 0),
        start_(Clock::now()),
        last_report_(start_) {
    if (nested_) return;
    if (!tty_)
      spdlog::default_logger_raw()->info(
          "[{}] started{}", label_,
          total_ ? " (" + std::to_string(total_) + " items)" : std::string());
  }

  ~ProgressDisplay() override {
    live_displays().fetch_sub(1);
    if (nested_) return;
    const double secs = elapsed();
    if (tty_) {
      BarLine& bar = bar_line();
      const std::lock_guard<std::mutex> lock(bar.mutex);
      put_bar(bar, bar_text(true));
      std::fputc('\n', stderr);  // The final bar stays; later lines go below it.
      std::fflush(stderr);
      bar.drawn = false;
      bar.text.clear();
    }
    // Logged after the bar's mutex is released: the console sink takes it.
    spdlog::default_logger_raw()->info("[{}] done: {} items in {}{}", label_, items_,
                                       format_duration(secs), rates(secs));
  }

  void advance(std::uint64_t items, std::uint64_t tokens) override {
    items_ += items;
    tokens_ += tokens;
    if (nested_) return;
    const auto now = Clock::now();
    const auto interval = tty_ ? std::chrono::milliseconds(200) : std::chrono::milliseconds(10000);
    if (now - last_report_ < interval) return;
    last_report_ = now;
    if (tty_) {
      const std::string text = bar_text(false);
      BarLine& bar = bar_line();
      const std::lock_guard<std::mutex> lock(bar.mutex);
      put_bar(bar, text);
    } else {
      spdlog::default_logger_raw()->info("[{}] {}{}", label_, counts(), rates(elapsed()) + eta());
    }
  }

 private:
  double elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

  std::string counts() const {
    std::string s = std::to_string(items_);
    if (total_) {
      char pct[16];
      std::snprintf(
          pct, sizeof pct, " (%.0f%%)",
          100.0 * static_cast<double>(std::min(items_, total_)) / static_cast<double>(total_));
      s += "/" + std::to_string(total_) + pct;
    }
    return s;
  }

  std::string rates(double secs) const {
    if (secs <= 0) return "";
    std::string s = ", " + format_rate(static_cast<double>(items_) / secs) + " items/s";
    if (tokens_) s += ", " + format_rate(static_cast<double>(tokens_) / secs) + " tokens/s";
    return s;
  }

  std::string eta() const {
    if (!total_ || items_ == 0 || items_ >= total_) return "";
    const double per_item = elapsed() / static_cast<double>(items_);
    return ", ETA " + format_duration(per_item * static_cast<double>(total_ - items_));
  }

  /// The bar's text (label, bar, counts, rates and, unless `final`, the ETA).
  std::string bar_text(bool final) const {
    constexpr int kWidth = 28;
    std::string line = label_ + " ";
    if (total_) {
      const double frac = std::min(1.0, static_cast<double>(items_) / static_cast<double>(total_));
      const int filled = static_cast<int>(frac * kWidth);
      line += "[" + std::string(filled, '#') + std::string(kWidth - filled, '.') + "] ";
    }
    line += counts() + rates(elapsed());
    if (!final) line += eta();
    return line;
  }

  static std::atomic<int>& live_displays() {
    static std::atomic<int> count{0};
    return count;
  }

  std::string label_;
  std::uint64_t total_;
  bool tty_;
  bool nested_;
  Clock::time_point start_, last_report_;
  std::uint64_t items_ = 0, tokens_ = 0;
};

}  // namespace

void init_logging(const std::string& level) {
  const spdlog::level::level_enum parsed = spdlog::level::from_str(level);
  // from_str maps anything unknown to "off"; only the five documented names are accepted.
  static const char* const kNames[] = {"trace", "debug", "info", "warn", "error"};
  if (std::find(std::begin(kNames), std::end(kNames), level) == std::end(kNames))
    throw sdk::ConfigError("unknown log level '" + level +
                           "' (expected one of: trace, debug, info, warn, error)");
  auto sink = std::make_shared<BarAwareConsoleSink>(
      std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  auto logger = std::make_shared<spdlog::logger>("metareward", std::move(sink));
  logger->set_pattern("[%Y-%m-%d %H:%M:%S] [%^%l%$] %v");
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
}

void add_log_file(const std::filesystem::path& file) {
  std::shared_ptr<LogFileSink> sink;
  try {
    sink = std::make_shared<LogFileSink>(
        std::make_shared<spdlog::sinks::basic_file_sink_mt>(file.string(), /*truncate=*/false));
  } catch (const spdlog::spdlog_ex& e) {
    throw sdk::DataError("cannot open log file '" + file.string() + "': " + e.what());
  }
  sink->set_pattern("[%Y-%m-%d %H:%M:%S] [%l] %v");
  spdlog::default_logger()->sinks().push_back(std::move(sink));
}

void log_to_files(spdlog::level::level_enum level, const std::string& message) {
  spdlog::logger* logger = spdlog::default_logger_raw();
  if (!logger->should_log(level)) return;
  const spdlog::details::log_msg msg(logger->name(), level, message);
  for (const auto& sink : logger->sinks()) {
    if (dynamic_cast<LogFileSink*>(sink.get()) == nullptr || !sink->should_log(level)) continue;
    sink->log(msg);
    sink->flush();
  }
}

std::unique_ptr<sdk::Logger> make_logger(const std::string& component) {
  return std::make_unique<ComponentLogger>(component);
}

/// A progress display for host code (plugins reach it through HostContext::progress).
std::unique_ptr<sdk::Progress> make_progress(const std::string& label, std::uint64_t total) {
  return std::make_unique<ProgressDisplay>(label, total, isatty(STDERR_FILENO) == 1);
}

PluginHostContext::PluginHostContext(std::string plugin_name,
                                     sdk::Config config,
                                     std::uint64_t seed,
                                     std::filesystem::path run_dir,
                                     int threads)
    : logger_(make_logger(plugin_name)),
      config_(std::move(config)),
      seed_(seed),
      run_dir_(std::move(run_dir)),
      threads_(threads > 0 ? threads
                           : std::max(1, static_cast<int>(std::thread::hardware_concurrency()))) {}

sdk::Logger& PluginHostContext::logger() {
  return *logger_;
}

std::unique_ptr<sdk::Progress> PluginHostContext::progress(std::string_view stage,
                                                           std::uint64_t total) {
  // logger_ is always a ComponentLogger (made in the constructor); its name labels the display.
  const auto& component = static_cast<const ComponentLogger&>(*logger_).component();
  return make_progress(component + ": " + std::string(stage), total);
}

CommandRunner set_command_runner(CommandRunner runner) {
  CommandRunner previous = std::move(command_runner());
  command_runner() = std::move(runner);
  return previous;
}

int PluginHostContext::run_command(const std::vector<std::string>& args) {
  // A copy: the command may install its own runner (and restore this one) while it runs.
  const CommandRunner runner = command_runner();
  if (!runner) {
    std::string line;
    for (const auto& a : args) line += (line.empty() ? "" : " ") + a;
    throw sdk::PluginError("cannot run 'metareward " + line +
                           "': no command runner is installed (run_command works in plugin "
                           "commands started by the metareward CLI)");
  }
  return runner(args);
}

}  // namespace mr::core
