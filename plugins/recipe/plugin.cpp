// Entry point of the mr-recipe plugin library: exports MR_PLUGIN over register_recipe_plugins.
#include "metareward/sdk/plugin.hpp"
#include "recipe_plugins.hpp"

MR_PLUGIN(mr::plugins::recipe::kLibraryName,
          mr::plugins::recipe::kLibraryVersion,
          mr::plugins::recipe::register_recipe_plugins)
