/// @file commands.hpp
/// The mr-testbed plugin library's registration and its CLI command `testbed`, a group of the
/// subcommands `data` (the bootstrap dataset, see dataset.hpp) and `bootstrap` (dataset, a
/// small Llama-shaped model and its SFT into the seed model, see bootstrap.hpp) that the host
/// dispatches (sdk::CommandDescriptor::subcommands). `testbed-data` stays as an alias of
/// `testbed data`. The commands parse their options with Boost.Program_options.
#pragma once

#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "metareward/sdk/host.hpp"
#include "metareward/sdk/plugin.hpp"

namespace mr::plugins::testbed {

/// Library name and version reported by MR_PLUGIN.
inline constexpr const char* kLibraryName = "mr-testbed";
inline constexpr const char* kLibraryVersion = "0.2.0";

/// A command-line usage error: the command prints it with its usage and exits 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Usage text of `metareward testbed data` (defaults taken from DatasetOptions). `name` is how
/// the command was called ("testbed data" or the alias "testbed-data").
std::string testbed_data_usage(const std::string& name = "testbed data");

/// Runs `metareward testbed data ARGS`: parses the options (`--flag value` or `--flag=value`),
/// builds the dataset and writes it. Returns 0 on success (a one-line summary on `out`), 0 for
/// --help (usage on `out`), 2 on a usage error (message and usage on `err`). I/O failures throw
/// mr::sdk::DataError (the host prints it and exits 1).
int testbed_data_command(const std::vector<std::string>& args,
                         std::ostream& out,
                         std::ostream& err,
                         const std::string& name = "testbed data");

/// Registers the library's plugins and commands: the evaluator `testbed`, the command `testbed`
/// (no run function of its own; subcommands `data` and `bootstrap`) and `testbed-data`.
void register_testbed_plugins(mr::sdk::Registrar& registrar);

}  // namespace mr::plugins::testbed
