/// @file artifact_io.hpp
/// Crash-safe writing of run artifacts: whole files written atomically, and JSONL streams that
/// are appended in batches and resume after kill -9 from the last completed batch.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace mr::core {

/// Writes `text` to `file` atomically: a temp file in the same directory, fsync, rename, fsync
/// of the directory. Creates the parent directories. Throws sdk::DataError naming the file.
void write_file_atomic(const std::filesystem::path& file, const std::string& text);

/// A file of lines opened for appending (created when missing); a torn last line (no '\n', what
/// a crash or a full disk mid-write leaves) is cut off on opening. Every failing write throws
/// sdk::DataError naming the file and the system's reason (a full disk is never silent).
class AppendOnlyFile {
 public:
  explicit AppendOnlyFile(std::filesystem::path file);
  ~AppendOnlyFile();
  AppendOnlyFile(const AppendOnlyFile&) = delete;
  AppendOnlyFile& operator=(const AppendOnlyFile&) = delete;
  /// Appends `text` completely (retrying short writes).
  void append(std::string_view text);

 private:
  std::filesystem::path file_;
  int fd_ = -1;
};

/// The whole file as a string; throws sdk::DataError naming the file when it cannot be read.
std::string read_file_text(const std::filesystem::path& file);

/// The complete lines of a text file (a trailing line without '\n' is ignored: it is what a
/// crash mid-write leaves), without their newline. Throws sdk::DataError when unreadable.
std::vector<std::string> read_complete_lines(const std::filesystem::path& file);

/// A JSONL artifact produced batch by batch. Rows go to `FILE.partial`; after every batch the
/// data is fsync'd and `FILE.partial.progress` records the batches done and the byte length
/// (atomically). Reopening after a crash truncates the partial file to the recorded length, so
/// at most the batch in flight is lost. finish() renames the partial file to FILE: FILE existing
/// means the stage is complete.
class BatchedJsonlWriter {
 public:
  /// Opens the artifact. `batch_size` is recorded: progress written with another batch size is
  /// discarded (the stage restarts) because batches must cover the same requests to reproduce
  /// the same bytes.
  BatchedJsonlWriter(std::filesystem::path file, std::int64_t batch_size);
  ~BatchedJsonlWriter();
  BatchedJsonlWriter(const BatchedJsonlWriter&) = delete;
  BatchedJsonlWriter& operator=(const BatchedJsonlWriter&) = delete;

  /// True when FILE already exists (nothing left to write).
  bool complete() const { return complete_; }
  /// Batches already written (0 for a fresh stage).
  std::int64_t batches_done() const { return batches_; }

  /// Appends one batch of JSON lines (no newlines inside) and makes it durable.
  void append_batch(const std::vector<std::string>& lines);
  /// Renames the partial file to FILE and removes the progress file.
  void finish();

 private:
  void write_progress();

  std::filesystem::path file_, partial_, progress_;
  std::int64_t batch_size_;
  std::int64_t batches_ = 0;
  std::int64_t bytes_ = 0;
  bool complete_ = false;
  int fd_ = -1;
};

}  // namespace mr::core
