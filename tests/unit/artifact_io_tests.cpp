// BatchedJsonlWriter, the durable writer of every generation stage: what a resume keeps of a
// FILE.partial and its progress record, and what it says when it cannot keep it.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "metareward/core/artifact_io.hpp"

namespace fs = std::filesystem;
using mr::core::BatchedJsonlWriter;
using mr::core::read_file_text;

namespace {

/// Captures spdlog's default logger while alive.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(text_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::string text() const { return text_.str(); }

 private:
  std::ostringstream text_;
  std::shared_ptr<spdlog::logger> previous_;
};

struct Scratch {
  fs::path dir = fs::temp_directory_path() / ("mr_artifact_io_" + std::to_string(::getpid()));
  Scratch() {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~Scratch() { fs::remove_all(dir); }
};

/// Two durable batches of a stage that was then killed (no finish()).
void write_two_batches(const fs::path& file) {
  BatchedJsonlWriter w(file, 2);
  w.append_batch({"{\"i\":1}", "{\"i\":2}"});
  w.append_batch({"{\"i\":3}", "{\"i\":4}"});
}

}  // namespace

TEST_CASE("artifact io: a resumed stage keeps its durable batches and drops the one in flight",
          "[artifact_io]") {
  Scratch s;
  const fs::path file = s.dir / "rows.jsonl";
  write_two_batches(file);
  {
    // Half a row of a third batch reached the file before the kill.
    std::ofstream out(file.string() + ".partial", std::ios::app | std::ios::binary);
    out << "{\"i\":5";
  }
  BatchedJsonlWriter w(file, 2);
  CHECK_FALSE(w.complete());
  CHECK(w.batches_done() == 2);
  w.append_batch({"{\"i\":5}", "{\"i\":6}"});
  w.finish();
  CHECK(read_file_text(file) ==
        "{\"i\":1}\n{\"i\":2}\n{\"i\":3}\n{\"i\":4}\n{\"i\":5}\n{\"i\":6}\n");
  CHECK_FALSE(fs::exists(file.string() + ".partial"));
  CHECK_FALSE(fs::exists(file.string() + ".partial.progress"));
  CHECK(BatchedJsonlWriter(file, 2).complete());
}

TEST_CASE("artifact io: a partial file shorter than its progress record says so and restarts",
          "[artifact_io]") {
  Scratch s;
  const fs::path file = s.dir / "rows.jsonl";
  const fs::path partial = file.string() + ".partial";
  SECTION("the data file truncated mid-row") {
    write_two_batches(file);
    fs::resize_file(partial, fs::file_size(partial) - 5);
    LogCapture log;
    BatchedJsonlWriter w(file, 2);
    CHECK(w.batches_done() == 0);
    CHECK_THAT(log.text(), Catch::Contains(partial.string() + ": holds 27 bytes, fewer than the "
                                                              "32 of the 2 batch(es)") &&
                               Catch::Contains("the data file was truncated or replaced"));
    CHECK_THAT(log.text(), !Catch::Contains("unreadable progress record"));
    w.append_batch({"{\"i\":9}"});
    w.finish();
    CHECK(read_file_text(file) == "{\"i\":9}\n");
  }
  SECTION("a progress record that does not parse") {
    write_two_batches(file);
    {
      std::ofstream out(file.string() + ".partial.progress", std::ios::trunc);
      out << "garbage";
    }
    LogCapture log;
    BatchedJsonlWriter w(file, 2);
    CHECK(w.batches_done() == 0);
    CHECK_THAT(log.text(), Catch::Contains("unreadable progress record"));
  }
  SECTION("another batch size") {
    write_two_batches(file);
    LogCapture log;
    BatchedJsonlWriter w(file, 3);
    CHECK(w.batches_done() == 0);
    CHECK_THAT(log.text(), Catch::Contains("written with batch size 2, now 3"));
  }
}
