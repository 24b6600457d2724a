// Runs the `metareward` binary as a child process and captures stdout, stderr and exit code.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace mr::tests {

/// What one CLI invocation produced.
struct CliResult {
  int exit_code = -1;
  std::string out;  ///< stdout
  std::string err;  ///< stderr
};

/// `text` as one single-quoted shell word.
inline std::string shell_quote(const std::string& text) {
  std::string q = "'";
  for (char c : text) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_text(const std::filesystem::path& file, const std::string& text) {
  std::filesystem::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << text;
}

/// A fresh directory under the system temp dir, removed on destruction.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag)
      : path_(std::filesystem::temp_directory_path() /
              ("mr_e2e_" + tag + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  /// Writes `text` to `name` inside the directory and returns its path.
  std::filesystem::path write(const std::string& name, const std::string& text) const {
    write_text(path_ / name, text);
    return path_ / name;
  }

 private:
  std::filesystem::path path_;
};

/// Runs `binary args...` in `cwd` with $METAREWARD_PLUGIN_PATH removed (so the developer's
/// environment cannot change the result) plus `env` ("NAME=value") entries.
inline CliResult run_binary(
    const std::string& binary,
    const std::vector<std::string>& args,
    const std::filesystem::path& cwd = std::filesystem::temp_directory_path(),
    const std::vector<std::string>& env = {}) {
  static int counter = 0;
  const auto base = std::filesystem::temp_directory_path() /
                    ("mr_e2e_io_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  const std::string out_file = base.string() + ".out", err_file = base.string() + ".err";
  std::string command = "cd " + shell_quote(cwd.string()) + " && env -u METAREWARD_PLUGIN_PATH";
  for (const auto& e : env) command += " " + shell_quote(e);
  command += " " + shell_quote(binary);
  for (const auto& a : args) command += " " + shell_quote(a);
  command += " >" + shell_quote(out_file) + " 2>" + shell_quote(err_file) + " </dev/null";
  const int status = std::system(command.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_text(out_file);
  r.err = read_text(err_file);
  std::filesystem::remove(out_file);
  std::filesystem::remove(err_file);
  return r;
}

/// Runs the build's `metareward` (MR_CLI_PATH).
inline CliResult run_cli(const std::vector<std::string>& args,
                         const std::filesystem::path& cwd = std::filesystem::temp_directory_path(),
                         const std::vector<std::string>& env = {}) {
  return run_binary(MR_CLI_PATH, args, cwd, env);
}

}  // namespace mr::tests
