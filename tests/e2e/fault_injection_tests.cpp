// Full-disk and I/O-error sweeps (issue 18): the CI-sized run (run_setup.hpp) under the
// LD_PRELOAD shim of tests/fault_injection, which makes the Nth open / write / fsync / rename of
// a file in the run directory, and every later one, fail with ENOSPC or EIO. At every N swept
// the run must stop with a clean error naming the file and the system's reason (exit 1, never an
// abort or a backtrace), and `--resume` without the fault must give the uninterrupted run's
// artifacts byte for byte: nothing durable is lost and nothing half-written is trusted. The
// second case does the same on a real full disk: the run directory on a tmpfs too small for it,
// at sizes spread over the run's footprint (needs root, else reported as skipped).
#include <sys/mount.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "cli_runner.hpp"
#include "run_files.hpp"
#include "run_setup.hpp"
#include "skip.hpp"

namespace fs = std::filesystem;
using mr::tests::CliResult;
using mr::tests::differing;
using mr::tests::read_text;
using mr::tests::run_cli;
using mr::tests::RunSetup;
using mr::tests::snapshot;

namespace {

/// The shim's report: "count N" and, when it failed a call, "failed KIND PATH".
struct FaultReport {
  long count = -1;
  std::string failed;
};

FaultReport read_report(const fs::path& file) {
  FaultReport r;
  const std::string text = fs::exists(file) ? read_text(file) : "";
  const auto nl = text.find('\n');
  if (text.rfind("count ", 0) == 0) r.count = std::stol(text.substr(6, nl - 6));
  if (nl != std::string::npos && nl + 1 < text.size()) r.failed = text.substr(nl + 1);
  return r;
}

/// `count` evenly spread call numbers in [1, total], the first and the last included.
std::vector<long> sweep_points(long total, long count) {
  std::vector<long> points;
  for (long i = 0; i < count; ++i) {
    const long n = 1 + (total - 1) * i / (count - 1);
    if (points.empty() || points.back() != n) points.push_back(n);
  }
  return points;
}

bool looks_like_a_crash(const std::string& err) {
  for (const char* sign : {"terminate called", "Aborted", "core dumped", "Segmentation fault",
                           "frame #", "Exception raised from"})
    if (err.find(sign) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE(
    "fault injection: ENOSPC or EIO at any open/write/fsync/rename of a run is a clean error and "
    "--resume gives the reference artifacts",
    "[e2e][fault]") {
#ifndef MR_E2E_HAVE_TORCH_BACKEND
  MR_SKIP("the torch backend and dpo optimizer are not built");
#else
  RunSetup s("fault");
  const CliResult reference = s.run();
  INFO(reference.err);
  REQUIRE(reference.exit_code == 0);
  const auto expected = snapshot(s.out);
  fs::remove_all(s.out);

  const fs::path report = s.dir.path() / "fault_report.txt";
  // Per kind of call (and directory): how many the whole run makes, then faults spread over
  // them. The trainer state's own directory gets a sweep of its own: its writer is libtorch's
  // archive, which used to abort the process from a destructor on a full disk.
  struct Kind {
    const char* ops;
    long points;
    const char* subdir;
  };
  int faulted = 0;
  for (const Kind kind :
       {Kind{"open,write,fsync,rename", 14, ""}, Kind{"rename", 6, ""}, Kind{"fsync", 6, ""},
        Kind{"open", 4, ""}, Kind{"open,write,fsync,rename", 5, "iter_1/train_state"}}) {
    std::vector<std::string> env = {std::string("LD_PRELOAD=") + MR_FAULT_INJECTION_LIB,
                                    "MR_FAULT_DIR=" + (s.out / kind.subdir).string(),
                                    "MR_FAULT_REPORT=" + report.string(),
                                    std::string("MR_FAULT_OPS=") + kind.ops};
    const CliResult counted = run_cli({"run", s.config.string()}, s.dir.path(), env);
    INFO(kind.ops << " in '" << kind.subdir << "': " << counted.err);
    REQUIRE(counted.exit_code == 0);
    REQUIRE(differing(expected, snapshot(s.out)).empty());  // the shim alone changes nothing
    const long total = read_report(report).count;
    REQUIRE(total > 0);
    fs::remove_all(s.out);

    int i = 0;
    for (const long n : sweep_points(total, kind.points)) {
      const std::string err_name = (++i % 2) ? "ENOSPC" : "EIO";
      std::vector<std::string> faulty = env;
      faulty.push_back("MR_FAULT_AT=" + std::to_string(n));
      faulty.push_back("MR_FAULT_ERRNO=" + err_name);
      fs::remove(report);
      const CliResult hit = run_cli({"run", s.config.string()}, s.dir.path(), faulty);
      const FaultReport what = read_report(report);
      INFO(kind.ops << " in '" << kind.subdir << "': call " << n << " of " << total
                    << " fails with " << err_name << " (" << what.failed << "): exit "
                    << hit.exit_code << "\n"
                    << hit.err);
      CHECK_FALSE(looks_like_a_crash(hit.err));
      CHECK((hit.exit_code == 0 || hit.exit_code == 1));
      if (hit.exit_code == 1) {
        ++faulted;
        // The error names the system's reason (and, by the writers' contract, the file).
        CHECK_THAT(hit.err, Catch::Contains(err_name == "EIO" ? "Input/output error"
                                                              : "No space left on device"));
      }
      // Resumed on a healthy disk, the run finishes with exactly the reference artifacts.
      std::vector<std::string> args = {"run", s.config.string()};
      if (fs::exists(s.out)) args.push_back("--resume");
      const CliResult resumed = run_cli(args, s.dir.path());
      INFO("resumed: " << resumed.err);
      REQUIRE(resumed.exit_code == 0);
      const auto names = differing(expected, snapshot(s.out));
      INFO("differing files: " << Catch::Detail::stringify(names));
      CHECK(names.empty());
      fs::remove_all(s.out);
    }
  }
  CHECK(faulted >= 25);  // most injected faults must actually have stopped the run
#endif
}

TEST_CASE(
    "full disk: a run on a tmpfs too small for it stops with ENOSPC and resumes after the disk "
    "grows to the reference artifacts",
    "[e2e][fault]") {
#ifndef MR_E2E_HAVE_TORCH_BACKEND
  MR_SKIP("the torch backend and dpo optimizer are not built");
#else
  RunSetup s("full_disk");
  const CliResult reference = s.run();
  INFO(reference.err);
  REQUIRE(reference.exit_code == 0);
  const auto expected = snapshot(s.out);
  std::uintmax_t footprint = 0;  // what the run writes, temporaries excluded
  for (const auto& e : fs::recursive_directory_iterator(s.out))
    if (e.is_regular_file()) footprint += e.file_size();
  fs::remove_all(s.out);
  fs::create_directories(s.out);
  if (::geteuid() != 0 || ::mount("tmpfs", s.out.c_str(), "tmpfs", 0, "size=64k") != 0)
    MR_SKIP("mounting a tmpfs needs root (CAP_SYS_ADMIN): the LD_PRELOAD sweep covers ENOSPC");
  ::umount(s.out.c_str());

  int stopped = 0;
  for (int i = 1; i <= 8; ++i) {
    // Sizes from 10 % to 95 % of the footprint: each fills up in another stage.
    const std::uintmax_t size = footprint * (10 + (85 * (i - 1)) / 7) / 100;
    const std::string options = "size=" + std::to_string(size);
    REQUIRE(::mount("tmpfs", s.out.c_str(), "tmpfs", 0, options.c_str()) == 0);
    const CliResult hit = s.run();
    INFO("tmpfs of " << size << " bytes (" << footprint << " needed): exit " << hit.exit_code
                     << "\n"
                     << hit.err);
    CHECK_FALSE(looks_like_a_crash(hit.err));
    CHECK((hit.exit_code == 0 || hit.exit_code == 1));
    if (hit.exit_code == 1) {
      ++stopped;
      CHECK_THAT(hit.err, Catch::Contains("No space left on device"));
    }
    // The disk grows (tmpfs resizes in place): --resume finishes with the reference bytes.
    REQUIRE(::mount("tmpfs", s.out.c_str(), "tmpfs", MS_REMOUNT, "size=512m") == 0);
    std::vector<std::string> args;
    if (fs::exists(s.out / "config.resolved.toml")) args.push_back("--resume");
    const CliResult resumed = s.run(args);
    INFO("resumed: " << resumed.err);
    CHECK(resumed.exit_code == 0);
    const auto names = differing(expected, snapshot(s.out));
    INFO("differing files: " << Catch::Detail::stringify(names));
    CHECK(names.empty());
    REQUIRE(::umount(s.out.c_str()) == 0);
  }
  CHECK(stopped >= 6);  // the small disks must actually have run out
#endif
}
