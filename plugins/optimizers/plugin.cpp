// Entry point of the mr-optimizers plugin library: exports MR_PLUGIN over
// register_optimizer_plugins.
#include "metareward/sdk/plugin.hpp"
#include "preference_optimizer.hpp"

MR_PLUGIN(mr::plugins::optimizers::kLibraryName,
          mr::plugins::optimizers::kLibraryVersion,
          mr::plugins::optimizers::register_optimizer_plugins)
