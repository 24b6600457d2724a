// An LD_PRELOAD library that fails file-system calls on demand, for the tests' full-disk and I/O
// error sweeps (issue 18). It counts the calls that touch a file under MR_FAULT_DIR — open /
// openat / creat for writing, write / writev / pwrite, fsync / fdatasync, rename / renameat —
// and makes the MR_FAULT_AT-th one (1-based) and, with MR_FAULT_STICKY=1 (the default), every
// later one fail with MR_FAULT_ERRNO (ENOSPC or EIO), as a disk that filled up does.
//
//   MR_FAULT_DIR     absolute directory whose files are counted (required; unset = inert)
//   MR_FAULT_AT      the call to fail; 0 or unset = count only
//   MR_FAULT_OPS     comma list of open,write,fsync,rename (default: all)
//   MR_FAULT_ERRNO   ENOSPC (default) or EIO
//   MR_FAULT_STICKY  1 (default): the faulted call and all later ones fail; 0: only that one
//   MR_FAULT_REPORT  a file (outside MR_FAULT_DIR) that gets "count N" at exit and the failed
//                    call's kind and path
//
// Calls glibc makes internally (stdio's fwrite, fopen) are not interposable and are not counted;
// libstdc++'s streams write through write()/writev() and are.
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { kOpen = 1, kWrite = 2, kFsync = 4, kRename = 8 };

static char g_dir[PATH_MAX];
static size_t g_dir_len;
static long g_fail_at;
static int g_ops = kOpen | kWrite | kFsync | kRename;
static int g_errno = ENOSPC;
static int g_sticky = 1;
static const char* g_report;
static long g_count;
static int g_failed_kind;
static char g_failed_path[PATH_MAX];

static const char* kind_name(int kind) {
  switch (kind) {
    case kOpen:
      return "open";
    case kWrite:
      return "write";
    case kFsync:
      return "fsync";
    default:
      return "rename";
  }
}

__attribute__((constructor)) static void fault_init(void) {
  const char* dir = getenv("MR_FAULT_DIR");
  if (dir == NULL || dir[0] != '/') return;
  snprintf(g_dir, sizeof g_dir, "%s", dir);
  g_dir_len = strlen(g_dir);
  while (g_dir_len > 1 && g_dir[g_dir_len - 1] == '/') g_dir[--g_dir_len] = '\0';
  const char* at = getenv("MR_FAULT_AT");
  g_fail_at = at ? atol(at) : 0;
  const char* ops = getenv("MR_FAULT_OPS");
  if (ops && *ops) {
    g_ops = 0;
    if (strstr(ops, "open")) g_ops |= kOpen;
    if (strstr(ops, "write")) g_ops |= kWrite;
    if (strstr(ops, "fsync")) g_ops |= kFsync;
    if (strstr(ops, "rename")) g_ops |= kRename;
  }
  const char* err = getenv("MR_FAULT_ERRNO");
  if (err && strcmp(err, "EIO") == 0) g_errno = EIO;
  const char* sticky = getenv("MR_FAULT_STICKY");
  if (sticky && strcmp(sticky, "0") == 0) g_sticky = 0;
  g_report = getenv("MR_FAULT_REPORT");
}

__attribute__((destructor)) static void fault_report(void) {
  if (g_report == NULL || g_dir_len == 0) return;
  // Through the real open/write: this file is outside MR_FAULT_DIR anyway.
  FILE* f = fopen(g_report, "w");
  if (f == NULL) return;
  fprintf(f, "count %ld\n", __atomic_load_n(&g_count, __ATOMIC_SEQ_CST));
  if (g_failed_kind) fprintf(f, "failed %s %s\n", kind_name(g_failed_kind), g_failed_path);
  fclose(f);
}

static int under_dir(const char* path) {
  return g_dir_len > 0 && strncmp(path, g_dir, g_dir_len) == 0 &&
         (path[g_dir_len] == '/' || path[g_dir_len] == '\0');
}

// `path` made absolute against the working directory (or against dirfd's directory).
static int absolute_under_dir(int dirfd, const char* path) {
  if (g_dir_len == 0 || path == NULL) return 0;
  if (path[0] == '/') return under_dir(path);
  char base[PATH_MAX], full[PATH_MAX * 2];
  if (dirfd == AT_FDCWD) {
    if (getcwd(base, sizeof base) == NULL) return 0;
  } else {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
    ssize_t n = readlink(link, base, sizeof base - 1);
    if (n < 0) return 0;
    base[n] = '\0';
  }
  snprintf(full, sizeof full, "%s/%s", base, path);
  return under_dir(full);
}

static int fd_under_dir(int fd, char* path_out) {
  if (g_dir_len == 0 || fd < 0) return 0;
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path_out, PATH_MAX - 1);
  if (n < 0) return 0;
  path_out[n] = '\0';
  return under_dir(path_out);
}

// Counts one call of `kind` on `path`; true when it must fail.
static int should_fail(int kind, const char* path) {
  if (!(g_ops & kind)) return 0;
  long n = __atomic_add_fetch(&g_count, 1, __ATOMIC_SEQ_CST);
  if (g_fail_at <= 0) return 0;
  int fail = g_sticky ? n >= g_fail_at : n == g_fail_at;
  if (fail && n == g_fail_at) {
    g_failed_kind = kind;
    snprintf(g_failed_path, sizeof g_failed_path, "%s", path);
  }
  return fail;
}

#define REAL(name, type)               \
  using name##_fn = type;              \
  static name##_fn real_##name = NULL; \
  if (real_##name == NULL) real_##name = reinterpret_cast<name##_fn>(dlsym(RTLD_NEXT, #name))

static int writes(int flags) {
  return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) != 0;
}

static int open_common(
    int dirfd, const char* path, int flags, mode_t mode, int at, const char* symbol) {
  if (writes(flags) && absolute_under_dir(dirfd, path) && should_fail(kOpen, path)) {
    errno = g_errno;
    return -1;
  }
  if (at) {
    auto real = reinterpret_cast<int (*)(int, const char*, int, ...)>(dlsym(RTLD_NEXT, symbol));
    return real(dirfd, path, flags, mode);
  }
  auto real = reinterpret_cast<int (*)(const char*, int, ...)>(dlsym(RTLD_NEXT, symbol));
  return real(path, flags, mode);
}

static mode_t mode_arg(int flags, va_list ap) {
  return (flags & (O_CREAT | __O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

extern "C" {

int open(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return open_common(AT_FDCWD, path, flags, mode, 0, "open");
}

int open64(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return open_common(AT_FDCWD, path, flags, mode, 0, "open64");
}

int openat(int dirfd, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return open_common(dirfd, path, flags, mode, 1, "openat");
}

int openat64(int dirfd, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return open_common(dirfd, path, flags, mode, 1, "openat64");
}

int creat(const char* path, mode_t mode) {
  return open_common(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode, 0, "open");
}

static int fail_fd(int kind, int fd) {
  char path[PATH_MAX];
  if (fd_under_dir(fd, path) && should_fail(kind, path)) {
    errno = g_errno;
    return 1;
  }
  return 0;
}

ssize_t write(int fd, const void* buf, size_t count) {
  REAL(write, ssize_t(*)(int, const void*, size_t));
  if (fail_fd(kWrite, fd)) return -1;
  return real_write(fd, buf, count);
}

ssize_t writev(int fd, const struct iovec* iov, int iovcnt) {
  REAL(writev, ssize_t(*)(int, const struct iovec*, int));
  if (fail_fd(kWrite, fd)) return -1;
  return real_writev(fd, iov, iovcnt);
}

ssize_t pwrite(int fd, const void* buf, size_t count, off_t offset) {
  REAL(pwrite, ssize_t(*)(int, const void*, size_t, off_t));
  if (fail_fd(kWrite, fd)) return -1;
  return real_pwrite(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void* buf, size_t count, off_t offset) {
  REAL(pwrite64, ssize_t(*)(int, const void*, size_t, off_t));
  if (fail_fd(kWrite, fd)) return -1;
  return real_pwrite64(fd, buf, count, offset);
}

int fsync(int fd) {
  REAL(fsync, int (*)(int));
  if (fail_fd(kFsync, fd)) return -1;
  return real_fsync(fd);
}

int fdatasync(int fd) {
  REAL(fdatasync, int (*)(int));
  if (fail_fd(kFsync, fd)) return -1;
  return real_fdatasync(fd);
}

int rename(const char* from, const char* to) {
  REAL(rename, int (*)(const char*, const char*));
  if ((absolute_under_dir(AT_FDCWD, from) || absolute_under_dir(AT_FDCWD, to)) &&
      should_fail(kRename, to)) {
    errno = g_errno;
    return -1;
  }
  return real_rename(from, to);
}

int renameat(int fromfd, const char* from, int tofd, const char* to) {
  REAL(renameat, int (*)(int, const char*, int, const char*));
  if ((absolute_under_dir(fromfd, from) || absolute_under_dir(tofd, to)) &&
      should_fail(kRename, to)) {
    errno = g_errno;
    return -1;
  }
  return real_renameat(fromfd, from, tofd, to);
}

}  // extern "C"
