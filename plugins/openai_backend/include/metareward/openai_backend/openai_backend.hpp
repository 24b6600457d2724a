/// @file openai_backend.hpp
/// The `openai` model backend plugin: generation through servers that speak the OpenAI HTTP API
/// (vLLM, SGLang, llama.cpp's server, hosted APIs, `metareward serve`), spread over one or many
/// servers, optionally started and restarted by the backend itself (`launch`). Text-level header.
#pragma once

#include <memory>

#include "metareward/sdk/config.hpp"
#include "metareward/sdk/host.hpp"
#include "metareward/sdk/model_backend.hpp"
#include "metareward/sdk/plugin.hpp"

namespace mr::plugins::openai_backend {

/// Library name and version reported by MR_PLUGIN.
inline constexpr const char* kLibraryName = "mr-openai-backend";
inline constexpr const char* kLibraryVersion = "0.1.0";

/// Config keys of `openai` (docs/config_reference.md lists them with their help).
mr::sdk::Schema openai_backend_schema();

/// Builds the backend from `ctx.config()`; with `launch`, starts the managed servers and waits
/// until they answer. Throws ConfigError (inconsistent keys, a missing api_key_env variable) or
/// BackendError (a server that does not start).
std::unique_ptr<mr::sdk::ModelBackend> make_openai_backend(mr::sdk::HostContext& ctx);

/// Registers `openai` with the host.
void register_openai_backend_plugins(mr::sdk::Registrar& r);

}  // namespace mr::plugins::openai_backend
