// Entry point of the `metareward` command-line tool; everything lives in cli/.
#include "cli/commands.hpp"

int main(int argc, char** argv) {
  return mr::core::cli::run_cli(argc, argv);
}
