/// @file commands.hpp
/// The mr-testbed plugin library's registration and its CLI command `testbed-data`, which writes
/// the testbed's bootstrap dataset (see dataset.hpp).
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "metareward/sdk/plugin.hpp"

namespace mr::plugins::testbed {

/// Library name and version reported by MR_PLUGIN.
inline constexpr const char* kLibraryName = "mr-testbed";
inline constexpr const char* kLibraryVersion = "0.1.0";

/// Usage text of `metareward testbed-data` (defaults taken from DatasetOptions).
std::string testbed_data_usage();

/// Runs `metareward testbed-data ARGS`: parses the flags (`--flag value` or `--flag=value`),
/// builds the dataset and writes it. Returns 0 on success (a one-line summary on `out`), 0 for
/// --help (usage on `out`), 2 on a usage error (message and usage on `err`). I/O failures throw
/// mr::sdk::DataError (the host prints it and exits 1).
int testbed_data_command(const std::vector<std::string>& args,
                         std::ostream& out,
                         std::ostream& err);

/// Registers the library's command `testbed-data` (no plugins of the five kinds).
void register_testbed_plugins(mr::sdk::Registrar& registrar);

}  // namespace mr::plugins::testbed
