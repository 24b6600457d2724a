// AtomicFileWriter: temporary file, checked writes, fsync, rename, directory fsync.
#include "metareward/sdk/file_io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "metareward/sdk/error.hpp"

namespace mr::sdk {
namespace {

[[noreturn]] void fail(const std::string& what, const std::filesystem::path& file, int err) {
  throw DataError(what + " '" + file.string() + "': " + std::strerror(err));
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(std::filesystem::path file)
    : file_(std::move(file)),
      temp_(file_.string() + ".tmp." + std::to_string(static_cast<long>(::getpid()))) {
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot create", temp_, errno);
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFileWriter::write(const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot write", temp_, errno);
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

void AtomicFileWriter::commit() {
  if (::fsync(fd_) != 0) fail("cannot flush", temp_, errno);
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) fail("cannot close", temp_, errno);
  if (::rename(temp_.c_str(), file_.c_str()) != 0)
    fail("cannot rename '" + temp_.string() + "' to", file_, errno);
  committed_ = true;
  const std::filesystem::path dir = file_.parent_path();
  fsync_directory(dir.empty() ? std::filesystem::path(".") : dir);
}

void write_file_atomic(const std::filesystem::path& file, std::string_view text) {
  AtomicFileWriter out(file);
  out.write(text);
  out.commit();
}

void fsync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("cannot open directory", dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) fail("cannot flush directory", dir, err);
}

}  // namespace mr::sdk
