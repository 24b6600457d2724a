// Entry point of the mr-testbed plugin library: exports MR_PLUGIN over register_testbed_plugins.
#include "metareward/sdk/plugin.hpp"
#include "metareward/testbed/commands.hpp"

MR_PLUGIN(mr::plugins::testbed::kLibraryName,
          mr::plugins::testbed::kLibraryVersion,
          mr::plugins::testbed::register_testbed_plugins)
