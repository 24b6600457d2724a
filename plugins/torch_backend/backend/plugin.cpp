// Entry point of the mr-torch-backend plugin library: exports MR_PLUGIN over
// register_torch_backend_plugins.
#include "metareward/sdk/plugin.hpp"
#include "metareward/torch_backend_plugin/torch_backend.hpp"

MR_PLUGIN(mr::plugins::torch_backend::kLibraryName,
          mr::plugins::torch_backend::kLibraryVersion,
          mr::plugins::torch_backend::register_torch_backend_plugins)
