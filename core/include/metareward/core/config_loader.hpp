/// @file config_loader.hpp
/// Reads a run's TOML file (toml++), applies `--set` overrides, validates every section against
/// the host's and the plugins' schemas, and produces the resolved config (defaults filled).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "metareward/core/logging.hpp"
#include "metareward/core/plugin_registry.hpp"
#include "metareward/sdk/config.hpp"

namespace mr::core {

/// A parsed (not yet validated) config file with overrides applied.
struct ConfigDocument {
  std::filesystem::path file;
  sdk::Table root;  ///< Values carry their file:line:column source.
};

/// Parses `file`; throws sdk::ConfigError "file:line:col: message" on TOML syntax errors.
ConfigDocument parse_config_file(const std::filesystem::path& file);
/// Parses TOML text (for tests); `name` is used in error messages.
ConfigDocument parse_config_text(const std::string& text, const std::string& name);

/// Applies `a.b.c=value` overrides in order. The value is parsed as a TOML value (`0.5`, `true`,
/// `[0.0, 0.32]`, `"text"`); anything that is not valid TOML is taken as a bare string.
/// Throws sdk::ConfigError for a malformed override (no '=', empty key, path through a non-table).
void apply_overrides(ConfigDocument& doc, const std::vector<std::string>& overrides);

/// A validated run configuration.
struct ResolvedConfig {
  std::filesystem::path file;
  int iterations = 1;
  sdk::Table root;                              ///< Whole tree, defaults filled in.
  std::map<std::string, sdk::Config> sections;  ///< By TOML path: "run", "models.policy", ...
  /// The plugin chosen for each plugin table ("judge_rubric" -> "additive5",
  /// "models.policy" -> "torch").
  std::map<std::string, std::string> plugin_of;
  /// The resolved tree as TOML text (stable key order), what a run records.
  std::string to_toml() const;
  /// The section at `path`; throws sdk::ConfigError if absent.
  const sdk::Config& section(const std::string& path) const;
};

/// Constructs the plugin `config` names for the table `section` (plugin_of), giving it a
/// PluginHostContext over that table with `seed`, `run_dir` and `threads`. Throws
/// sdk::PluginError when that plugin is not in `registry`, or as create_plugin() does.
template <class Interface>
std::shared_ptr<Interface> create_configured_plugin(const PluginRegistry& registry,
                                                    const ResolvedConfig& config,
                                                    const std::string& section,
                                                    std::uint64_t seed,
                                                    const std::filesystem::path& run_dir,
                                                    int threads) {
  const std::string& name = config.plugin_of.at(section);
  const RegisteredPlugin* plugin = registry.find(name);
  if (plugin == nullptr)
    throw sdk::PluginError("plugin '" + name + "' for [" + section + "] is not loaded");
  auto ctx =
      std::make_shared<PluginHostContext>(section, config.section(section), seed, run_dir, threads);
  return create_plugin<Interface>(*plugin, ctx);
}

/// Validates `doc` against the host schema and the schemas of the plugins it names. Collects
/// every error and throws one sdk::ConfigError listing them all, one per line, each
/// "file:line:col: [toml.path] message".
/// How resolve_config treats what the document leaves out.
struct ResolveOptions {
  /// Absent [judge_rubric], [meta_judge], [pair_selection], [optimizer] tables get their default
  /// plugin (a run needs all four). Commands that use only some (e.g. `generate`) turn this off:
  /// absent plugin tables are then left out of the result.
  bool default_plugin_tables = true;
};

ResolvedConfig resolve_config(const ConfigDocument& doc,
                              const PluginCatalog& plugins,
                              const ResolveOptions& options = {});

/// The host's own sections and their schemas ("run", "prompts", "roles", "generation.actor",
/// ...), for validation and the docs.
const std::vector<std::pair<std::string, sdk::Schema>>& host_sections();

/// The optional seed-stage table (iteration 0: supervised fine-tuning before iteration 1). It
/// selects an optimizer plugin with `type` (default "sft") and takes that plugin's keys, plus
/// the host's own keys (seed_stage_host_schema()); every key is one value (the stage trains
/// once). The plugin's section (ResolvedConfig::section) holds only the plugin's keys; the host
/// keys are in ResolvedConfig::root.
inline constexpr const char* kSeedStageTable = "seed_sft";
/// The optimizer plugin an absent `type` in [seed_sft] selects.
inline constexpr const char* kSeedStageDefaultType = "sft";
/// The host's keys of [seed_sft]: `data` (required).
const sdk::Schema& seed_stage_host_schema();

/// Edit distance-based suggestion: the candidate closest to `word`, or "" if none is close.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace mr::core
