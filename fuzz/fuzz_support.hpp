// Shared helpers of the libFuzzer harnesses (fuzz/fuzz_*.cpp): scratch files for APIs that read
// from disk, fixture lookup, and the invariant check that turns a broken promise into a crash.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace mr::fuzz {

/// The input as text (harnesses take arbitrary bytes, including NULs and ill-formed UTF-8).
inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// A private directory for this process, created on first use: under /dev/shm when present so
/// that harnesses writing their input to a file per run stay fast.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const std::filesystem::path base = std::filesystem::is_directory("/dev/shm")
                                           ? "/dev/shm"
                                           : std::filesystem::temp_directory_path();
    std::filesystem::path d = base / ("mr-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    // Cleaned at normal exit; a crashed run leaves it behind for inspection.
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return d;
  }();
  return dir;
}

/// Writes `bytes` to `path`, replacing it.
inline void write_bytes(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// The directory of the shared tokenizer fixture `name` (llama3, qwen3):
/// $MR_FUZZ_FIXTURES/NAME, else ../shared/fixtures/tokenizers/NAME of the source tree.
inline std::filesystem::path tokenizer_fixture(const std::string& name) {
  if (const char* env = std::getenv("MR_FUZZ_FIXTURES")) return std::filesystem::path(env) / name;
  return std::filesystem::path(MR_FUZZ_SHARED_DIR) / "fixtures" / "tokenizers" / name;
}

}  // namespace mr::fuzz

/// A documented guarantee of the code under test does not hold: report and abort, so libFuzzer
/// records the input like any other crash.
#define MR_FUZZ_CHECK(cond, what)                                                            \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "MR_FUZZ_CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, what); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)
