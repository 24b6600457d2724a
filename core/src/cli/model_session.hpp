// Private to the `metareward` binary: the model backend (and optionally optimizer) that the
// model commands (generate, score, train-dpo, sft) and `serve` work with, built from a small
// in-memory run config so that --set overrides are validated exactly as in a run config.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <boost/program_options.hpp>

#include "commands.hpp"
#include "metareward/core/config_loader.hpp"
#include "metareward/core/plugin_registry.hpp"
#include "metareward/sdk/model_backend.hpp"
#include "metareward/sdk/optimizer.hpp"

namespace mr::core::cli {

/// The plugins a model command drives; the registry keeps their libraries loaded.
struct ModelSession {
  PluginRegistry registry;
  ResolvedConfig resolved;
  std::shared_ptr<sdk::ModelBackend> backend;  ///< Guarded (errors name the plugin and call).
  std::shared_ptr<sdk::Optimizer> optimizer;   ///< Only when open_session() was given one.
  std::string optimizer_name;                  ///< Empty: no optimizer.
  std::uint64_t seed = 0;
  int threads = 1;
};

/// --model, --adapter, --backend, --set, --seed, --threads.
void add_model_options(boost::program_options::options_description& options);

/// The string value of option `key`; UsageError "COMMAND: --KEY is required" when absent.
std::string required(const boost::program_options::variables_map& vm,
                     const std::string& command,
                     const std::string& key);

/// Builds the session from the options of add_model_options(): loads the plugin search path,
/// validates [models.policy] (type = --backend, path = --model, adapter, --set overrides) and,
/// when `optimizer_name` is not empty, [optimizer]; constructs the guarded plugin objects.
void open_session(ModelSession& s,
                  const std::string& command,
                  const GlobalOptions& globals,
                  const boost::program_options::variables_map& vm,
                  const std::string& optimizer_name);

/// open_session() in two steps: resolve_session() loads the plugins and validates the config
/// (sdk::ConfigError for a bad option or --set key); create_session_plugins() then constructs
/// the backend (loading the model) and the optimizer.
void resolve_session(ModelSession& s,
                     const std::string& command,
                     const GlobalOptions& globals,
                     const boost::program_options::variables_map& vm,
                     const std::string& optimizer_name);
void create_session_plugins(ModelSession& s);

}  // namespace mr::core::cli
