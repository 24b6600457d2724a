// Entry point of the mr-evaluators plugin library: exports MR_PLUGIN over
// register_evaluator_plugins.
#include "metareward/evaluators/evaluators.hpp"

MR_PLUGIN(mr::plugins::evaluators::kLibraryName,
          mr::plugins::evaluators::kLibraryVersion,
          mr::plugins::evaluators::register_evaluator_plugins)
