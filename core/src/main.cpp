// Entry point of the `metareward` command-line tool; everything lives in cli/.
#include <cstdlib>

#include "cli/commands.hpp"

int main(int argc, char** argv) {
  // OpenMP threads (libtorch, OpenBLAS) spin while waiting by default. When the cores are shared
  // (tests run in parallel, a build alongside) spinning threads starve each other: measured 10x
  // slower training at 2 threads on a loaded 2-core machine, against 1.3x with passive waiting.
  // Set before any plugin library (and so libgomp) is loaded; an explicit setting wins.
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0);
  return mr::core::cli::run_cli(argc, argv);
}
