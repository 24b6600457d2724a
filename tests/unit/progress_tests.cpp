// The host's progress display in log-line mode (stderr is not a terminal under ctest): started /
// done lines, and silence for a display opened inside another (a backend's per-call progress
// inside a run stage); in bar mode on a pseudo-terminal: log lines go above the bar, never onto
// its line. Also log_to_files(): a record for the log files only.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "metareward/core/logging.hpp"
#include "skip.hpp"
#include "temp_dir.hpp"

namespace {

/// Routes the default logger to a string for the lifetime of the object.
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    sink->set_pattern("%v");
    auto logger = std::make_shared<spdlog::logger>("capture", sink);
    logger->set_level(spdlog::level::info);
    spdlog::set_default_logger(logger);
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  std::string text() const { return out_.str(); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream out_;
};

/// A pseudo-terminal put in place of stderr (file descriptor 2, so both the progress bar and the
/// console sink write to it) for the lifetime of the object; the previous stderr is restored.
class FakeTerminal {
 public:
  FakeTerminal() {
    master_ = ::posix_openpt(O_RDWR | O_NOCTTY);
    if (master_ < 0 || ::grantpt(master_) != 0 || ::unlockpt(master_) != 0) return;
    const char* name = ::ptsname(master_);
    if (name == nullptr) return;
    slave_ = ::open(name, O_RDWR | O_NOCTTY);
    if (slave_ < 0) return;
    std::fflush(stderr);
    saved_ = ::dup(STDERR_FILENO);
    if (saved_ >= 0 && ::dup2(slave_, STDERR_FILENO) < 0) {
      ::close(saved_);
      saved_ = -1;
    }
  }
  ~FakeTerminal() {
    if (saved_ >= 0) {
      std::fflush(stderr);
      ::dup2(saved_, STDERR_FILENO);
      ::close(saved_);
    }
    if (slave_ >= 0) ::close(slave_);
    if (master_ >= 0) ::close(master_);
  }
  FakeTerminal(const FakeTerminal&) = delete;
  FakeTerminal& operator=(const FakeTerminal&) = delete;

  bool ok() const { return saved_ >= 0; }

  /// Everything written so far (the terminal's output processing applied, e.g. "\n" as "\r\n").
  const std::string& output() {
    char buf[4096];
    pollfd fd{master_, POLLIN, 0};
    while (::poll(&fd, 1, 200) > 0 && (fd.revents & POLLIN)) {
      const ssize_t n = ::read(master_, buf, sizeof buf);
      if (n <= 0) break;
      raw_.append(buf, static_cast<std::size_t>(n));
    }
    return raw_;
  }

  /// The screen lines the output leaves, as a terminal shows them: "\r" returns to column 0,
  /// "\n" moves down, ESC [ K / ESC [ 2 K erase (to the end of / the whole) line, other escape
  /// sequences (colours) are dropped; trailing blanks are trimmed.
  std::vector<std::string> screen() {
    const std::string& out = output();
    std::vector<std::string> rows(1);
    std::size_t row = 0, col = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
      const char c = out[i];
      if (c == '\r') {
        col = 0;
      } else if (c == '\n') {
        if (++row == rows.size()) rows.emplace_back();
      } else if (c == '\x1b' && i + 1 < out.size() && out[i + 1] == '[') {
        std::size_t j = i + 2;
        while (j < out.size() &&
               (std::isdigit(static_cast<unsigned char>(out[j])) || out[j] == ';'))
          ++j;
        if (j >= out.size()) break;
        const std::string param = out.substr(i + 2, j - i - 2);
        if (out[j] == 'K') {
          if (param == "2")
            rows[row].clear();
          else if (rows[row].size() > col)
            rows[row].resize(col);
        }
        i = j;
      } else {
        if (rows[row].size() <= col) rows[row].resize(col + 1, ' ');
        rows[row][col++] = c;
      }
    }
    for (auto& r : rows) r.erase(r.find_last_not_of(' ') + 1);
    return rows;
  }

 private:
  int master_ = -1, slave_ = -1, saved_ = -1;
  std::string raw_;
};

/// Puts the default logger back on destruction (for tests that call init_logging).
class RestoreLogger {
 public:
  RestoreLogger() : previous_(spdlog::default_logger()) {}
  ~RestoreLogger() { spdlog::set_default_logger(previous_); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
};

std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("progress: a display inside another stays silent", "[progress]") {
  if (isatty(STDERR_FILENO) == 1)
    MR_SKIP("stderr is a terminal: the log-line mode under test is not used");
  CapturedLog log;
  {
    auto stage = mr::core::make_progress("iter 1/2 actor", 4);
    {
      auto inner = mr::core::make_progress("models.policy: generate", 8);
      inner->advance(8, 100);
    }
    stage->advance(4, 100);
  }
  {
    auto after = mr::core::make_progress("train", 2);  // not nested: the stage has ended
    after->advance(2);
  }
  const std::string text = log.text();
  INFO(text);
  CHECK_THAT(text, Catch::Contains("[iter 1/2 actor] started (4 items)"));
  CHECK_THAT(text, Catch::Contains("[iter 1/2 actor] done: 4 items"));
  CHECK_THAT(text, !Catch::Contains("models.policy: generate"));
  CHECK_THAT(text, Catch::Contains("[train] started (2 items)"));
  CHECK_THAT(text, Catch::Contains("[train] done: 2 items"));
}

TEST_CASE("progress: on a terminal a log line goes above the bar, which is redrawn below it",
          "[progress]") {
  FakeTerminal term;
  if (!term.ok()) MR_SKIP("cannot open a pseudo-terminal for stderr");
  const RestoreLogger restore;
  mr::core::init_logging("info");  // The console sink writes to the pseudo-terminal too.
  const auto logger = mr::core::make_logger("optimizer");
  std::string before_log;
  std::vector<std::string> screen;
  {
    auto bar = mr::core::make_progress("train stage", 8);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));  // The bar redraws every 200 ms.
    bar->advance(5);
    before_log = term.output();
    logger->log(mr::sdk::LogLevel::Info, "step 5/8 done");
    screen = term.screen();
  }
  std::string shown;
  for (const auto& row : screen) shown += "|" + row + "|\n";
  INFO("screen:\n" << shown);
  REQUIRE_THAT(before_log, Catch::Contains("train stage ["));  // The bar was on the terminal.

  std::size_t log_row = screen.size();
  for (std::size_t i = 0; i < screen.size(); ++i)
    if (screen[i].find("[optimizer] step 5/8 done") != std::string::npos) log_row = i;
  REQUIRE(log_row < screen.size());
  // The log line has a line of its own: the bar's text was erased, not prefixed to it
  // ("... ETA 00:01[2026-12-02 05:42:24] [info] [optimizer] step 5/8").
  CHECK_THAT(screen[log_row], Catch::StartsWith("["));
  CHECK_THAT(screen[log_row], !Catch::Contains("train stage") && !Catch::Contains("ETA"));
  // ... and the bar is drawn again on the line below it.
  REQUIRE(log_row + 1 < screen.size());
  CHECK_THAT(screen[log_row + 1], Catch::StartsWith("train stage [") && Catch::Contains("5/8"));
}

TEST_CASE("logging: log_to_files writes to the log files, not to the console", "[logging]") {
  const mr::tests::TempDir dir("log_to_files");
  CapturedLog console;
  mr::core::add_log_file(dir.path() / "run.log");
  mr::core::log_to_files(spdlog::level::err, "run failed: the judge plugin crashed");
  mr::core::log_to_files(spdlog::level::debug, "below the logger's level");
  spdlog::default_logger()->info("an ordinary line");  // Both the console and the file.
  spdlog::default_logger()->flush();

  const std::string file = read_text(dir.path() / "run.log");
  INFO("run.log:\n" << file << "console:\n" << console.text());
  CHECK_THAT(file, Catch::Contains("] [error] run failed: the judge plugin crashed\n"));
  CHECK_THAT(file, Catch::Contains("an ordinary line"));
  CHECK_THAT(file, !Catch::Contains("below the logger's level"));
  CHECK_THAT(console.text(), !Catch::Contains("run failed"));
  CHECK_THAT(console.text(), Catch::Contains("an ordinary line"));
}
