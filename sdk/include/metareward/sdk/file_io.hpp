/// @file file_io.hpp
/// Crash-safe, error-checked file writing for plugins: a file appears complete or not at all,
/// and every failure (a full disk, an I/O error) is an exception naming the file and the
/// system's reason, never a silent short file.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string_view>

namespace mr::sdk {

/// Writes one file atomically: the bytes go to `FILE.tmp.<pid>` in the same directory;
/// commit() fsyncs it, renames it to FILE and fsyncs the directory. Destroyed without commit()
/// (an exception, an abandoned write) it removes the temporary, leaving any earlier FILE intact.
/// Every failing call throws sdk::DataError naming the file and strerror(errno).
class AtomicFileWriter {
 public:
  /// Creates the temporary file (the parent directory must exist).
  explicit AtomicFileWriter(std::filesystem::path file);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  /// Appends `size` bytes (retrying short writes and EINTR).
  void write(const void* data, std::size_t size);
  /// Appends `text`.
  void write(std::string_view text) { write(text.data(), text.size()); }
  /// Makes the file durable and puts it in place. Call once, after the last write().
  void commit();

  /// The temporary file being written.
  const std::filesystem::path& temp_path() const { return temp_; }

 private:
  std::filesystem::path file_;
  std::filesystem::path temp_;
  int fd_ = -1;
  bool committed_ = false;
};

/// Writes `text` to `file` with an AtomicFileWriter.
void write_file_atomic(const std::filesystem::path& file, std::string_view text);

/// fsyncs directory `dir`, so that a rename inside it survives a power loss. Throws
/// sdk::DataError naming the directory.
void fsync_directory(const std::filesystem::path& dir);

}  // namespace mr::sdk
