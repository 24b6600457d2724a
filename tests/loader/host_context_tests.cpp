// The services core hands to plugin objects: prefixed logging through the host's logger,
// progress reporting and the per-object context values.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <sstream>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "metareward/core/logging.hpp"
#include "metareward/sdk/error.hpp"
#include "skip.hpp"

namespace {

/// Redirects the default spdlog logger into a string at `level` while alive.
class CapturedLog {
 public:
  explicit CapturedLog(spdlog::level::level_enum level) : previous_(spdlog::default_logger()) {
    auto logger = std::make_shared<spdlog::logger>(
        "captured", std::make_shared<spdlog::sinks::ostream_sink_mt>(text_));
    logger->set_pattern("%l: %v");
    logger->set_level(level);
    spdlog::set_default_logger(logger);
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  std::string str() const { return text_.str(); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream text_;
};

mr::core::PluginHostContext make_context(int threads) {
  mr::sdk::Table values{{"scale", mr::sdk::Value(3)}};
  return mr::core::PluginHostContext("additive5", mr::sdk::Config("judge_rubric", values, 2), 42,
                                     "/tmp/run", threads);
}

}  // namespace

TEST_CASE("host context: plugin logs go through the host logger with the plugin's name", "[host]") {
  CapturedLog log(spdlog::level::info);
  auto ctx = make_context(2);
  auto& logger = ctx.logger();
  CHECK(logger.enabled(mr::sdk::LogLevel::Info));
  CHECK_FALSE(logger.enabled(mr::sdk::LogLevel::Debug));
  logger.debug("hidden detail");
  logger.info("scored 12 responses");
  logger.warn("3 judgments did not parse");
  CHECK(log.str() ==
        "info: [additive5] scored 12 responses\n"
        "warning: [additive5] 3 judgments did not parse\n");
}

TEST_CASE("host context: carries the plugin's config, seed, run dir and threads", "[host]") {
  auto ctx = make_context(3);
  CHECK(ctx.config().path() == "judge_rubric");
  CHECK(ctx.config().get_int("scale") == 3);
  CHECK(ctx.config().iterations() == 2);
  CHECK(ctx.seed() == 42);
  CHECK(ctx.run_dir() == "/tmp/run");
  CHECK(ctx.threads() == 3);
  SECTION("threads = 0 resolves to the machine's cores, never 0") {
    CHECK(make_context(0).threads() >= 1);
  }
}

TEST_CASE("host context: progress reports start and completion as log lines off a terminal",
          "[host]") {
  if (isatty(STDERR_FILENO))
    MR_SKIP("stderr is a terminal, so progress draws a bar instead of log lines");
  CapturedLog log(spdlog::level::info);
  auto ctx = make_context(1);
  {
    auto progress = ctx.progress("judge", 5);
    for (int i = 0; i < 5; ++i) progress->advance(1, 10);
  }
  const std::string text = log.str();
  CHECK_THAT(text, Catch::StartsWith("info: [additive5: judge] started (5 items)\n"
                                     "info: [additive5: judge] done: 5 items in 00:00, "));
  CHECK_THAT(text, Catch::Contains(" items/s, "));
  CHECK_THAT(text, Catch::EndsWith(" tokens/s\n"));
}

TEST_CASE("logging: init_logging accepts the five level names only", "[host]") {
  auto previous = spdlog::default_logger();
  CHECK_THROWS_MATCHES(
      mr::core::init_logging("verbose"), mr::sdk::ConfigError,
      Catch::Message("unknown log level 'verbose' (expected one of: trace, debug, info, warn, "
                     "error)"));
  mr::core::init_logging("warn");
  CHECK(spdlog::default_logger()->level() == spdlog::level::warn);
  CHECK(mr::core::make_logger("x")->enabled(mr::sdk::LogLevel::Warn));
  CHECK_FALSE(mr::core::make_logger("x")->enabled(mr::sdk::LogLevel::Info));
  mr::core::init_logging("trace");
  CHECK(spdlog::default_logger()->level() == spdlog::level::trace);
  spdlog::set_default_logger(previous);
}
