// The host's progress display in log-line mode (stderr is not a terminal under ctest): started /
// done lines, and silence for a display opened inside another (a backend's per-call progress
// inside a run stage).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <sstream>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "metareward/core/logging.hpp"

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

}  // namespace

TEST_CASE("progress: a display inside another stays silent", "[progress]") {
  if (isatty(STDERR_FILENO) == 1) {
    WARN("stderr is a terminal: the log-line mode under test is not used; skipping");
    return;
  }
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
