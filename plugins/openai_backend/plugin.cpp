// Entry point of the mr-openai-backend plugin library: exports MR_PLUGIN over
// register_openai_backend_plugins.
#include "metareward/sdk/plugin.hpp"
#include "metareward/openai_backend/openai_backend.hpp"

MR_PLUGIN(mr::plugins::openai_backend::kLibraryName,
          mr::plugins::openai_backend::kLibraryVersion,
          mr::plugins::openai_backend::register_openai_backend_plugins)
