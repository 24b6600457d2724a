// Atomic whole-file writes and batch-durable JSONL streams for run artifacts.
#include "metareward/core/artifact_io.hpp"

#include "metareward/sdk/file_io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "metareward/sdk/error.hpp"

namespace mr::core {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& what, const fs::path& file) {
  throw sdk::DataError(what + " '" + file.string() + "': " + std::strerror(errno));
}

void write_all(int fd, const char* data, std::size_t size, const fs::path& file) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot write", file);
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);  // Best effort: makes the rename durable on filesystems that need it.
    ::close(fd);
  }
}

}  // namespace

void write_file_atomic(const fs::path& file, const std::string& text) {
  std::error_code ec;
  if (file.has_parent_path()) fs::create_directories(file.parent_path(), ec);
  sdk::write_file_atomic(file, text);
}

AppendOnlyFile::AppendOnlyFile(fs::path file) : file_(std::move(file)) {
  fd_ = ::open(file_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot open for appending", file_);
  // A line torn by a crash or a full disk would glue itself to the next row: cut it off.
  const off_t size = ::lseek(fd_, 0, SEEK_END);
  off_t keep = size;
  char c = 0;
  while (keep > 0 && ::pread(fd_, &c, 1, keep - 1) == 1 && c != '\n') --keep;
  if (keep < size && ::ftruncate(fd_, keep) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    errno = err;
    fail("cannot cut the torn last line of", file_);
  }
}

AppendOnlyFile::~AppendOnlyFile() {
  if (fd_ >= 0) ::close(fd_);
}

void AppendOnlyFile::append(std::string_view text) {
  write_all(fd_, text.data(), text.size(), file_);
}

std::string read_file_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw sdk::DataError("cannot read '" + file.string() + "'");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> read_complete_lines(const fs::path& file) {
  const std::string text = read_file_text(file);
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(text.substr(start, nl - start));
  return lines;
}

BatchedJsonlWriter::BatchedJsonlWriter(fs::path file, std::int64_t batch_size)
    : file_(std::move(file)),
      partial_(file_.string() + ".partial"),
      progress_(file_.string() + ".partial.progress"),
      batch_size_(batch_size) {
  std::error_code ec;
  if (fs::exists(file_, ec)) {
    complete_ = true;
    return;
  }
  if (file_.has_parent_path()) fs::create_directories(file_.parent_path(), ec);
  if (fs::exists(progress_, ec) && fs::exists(partial_, ec)) {
    std::istringstream in(read_file_text(progress_));
    std::string key;
    std::int64_t batches = -1, bytes = -1, recorded_batch_size = -1;
    while (in >> key) {
      if (key == "batches")
        in >> batches;
      else if (key == "bytes")
        in >> bytes;
      else if (key == "batch_size")
        in >> recorded_batch_size;
    }
    const auto size = static_cast<std::int64_t>(fs::file_size(partial_, ec));
    if (batches < 0 || bytes < 0) {
      spdlog::warn("{}: unreadable progress record; restarting this stage", progress_.string());
    } else if (ec) {
      spdlog::warn("{}: cannot read its size ({}); restarting this stage", partial_.string(),
                   ec.message());
    } else if (bytes > size) {
      // The data file lost rows its progress record says were durable (truncated, replaced).
      spdlog::warn(
          "{}: holds {} bytes, fewer than the {} of the {} batch(es) its progress record says "
          "were written (the data file was truncated or replaced); restarting this stage",
          partial_.string(), size, bytes, batches);
    } else if (recorded_batch_size != batch_size_) {
      spdlog::warn("{}: written with batch size {}, now {}; restarting this stage",
                   partial_.string(), recorded_batch_size, batch_size_);
    } else {
      batches_ = batches;
      bytes_ = bytes;
      if (size > bytes)
        spdlog::info("{}: dropping {} bytes of the batch in flight at the interruption",
                     partial_.string(), size - bytes);
    }
  }
  fd_ = ::open(partial_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot open", partial_);
  if (::ftruncate(fd_, bytes_) != 0) fail("cannot truncate", partial_);
  if (::lseek(fd_, bytes_, SEEK_SET) < 0) fail("cannot seek in", partial_);
  if (batches_ == 0) write_progress();
}

BatchedJsonlWriter::~BatchedJsonlWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void BatchedJsonlWriter::append_batch(const std::vector<std::string>& lines) {
  if (complete_) throw sdk::DataError("'" + file_.string() + "' is already complete");
  std::string data;
  for (const auto& l : lines) {
    data += l;
    data += '\n';
  }
  write_all(fd_, data.data(), data.size(), partial_);
  if (::fsync(fd_) != 0) fail("cannot flush", partial_);
  bytes_ += static_cast<std::int64_t>(data.size());
  ++batches_;
  write_progress();
}

void BatchedJsonlWriter::finish() {
  if (complete_) return;
  if (::fsync(fd_) != 0) fail("cannot flush", partial_);
  ::close(fd_);
  fd_ = -1;
  if (::rename(partial_.c_str(), file_.c_str()) != 0)
    fail("cannot rename '" + partial_.string() + "' to", file_);
  std::error_code ec;
  fs::remove(progress_, ec);
  fsync_dir(file_.parent_path());
  complete_ = true;
}

void BatchedJsonlWriter::write_progress() {
  write_file_atomic(progress_, "batches " + std::to_string(batches_) + "\nbytes " +
                                   std::to_string(bytes_) + "\nbatch_size " +
                                   std::to_string(batch_size_) + "\n");
}

}  // namespace mr::core
