// `metareward config check|show`: parse a run config, apply --set overrides, load the plugin
// libraries it names and validate it.
#include <algorithm>
#include <iostream>

#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "metareward/core/config_loader.hpp"
#include "metareward/core/run/run_session.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::core::cli {

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace {

struct LoadedConfig {
  PluginRegistry registry;
  ResolvedConfig resolved;
};

/// The strings of `[plugins] <key>` (empty when absent); paths relative to the config file.
std::vector<fs::path> plugin_paths(const ConfigDocument& doc, const std::string& key) {
  std::vector<fs::path> out;
  auto section = doc.root.find("plugins");
  if (section == doc.root.end() || !section->second.is_table()) return out;
  const auto& table = section->second.as_table();
  auto it = table.find(key);
  if (it == table.end()) return out;
  const fs::path base = doc.file.parent_path();
  auto bad = [&](const sdk::Value& v) {
    return sdk::ConfigError(v.source().describe() + ": [plugins." + key +
                            "] expected an array of path strings, got " + v.to_toml());
  };
  if (!it->second.is_array()) throw bad(it->second);
  for (const auto& v : it->second.as_array()) {
    if (!v.is_string()) throw bad(v);
    fs::path p = v.as_string();
    // A path written in a config file means the same thing wherever the command is run from.
    out.push_back(p.is_absolute() || v.source().file == "--set" ? p : base / p);
  }
  return out;
}

/// Parses and validates FILE with the options shared by `config check` and `config show`.
/// Returns nullopt-equivalent (false) when --help was printed.
bool load_config(const std::string& command,
                 const GlobalOptions& globals,
                 const std::vector<std::string>& args,
                 LoadedConfig& out) {
  po::options_description options("Options");
  options.add_options()("file", po::value<std::string>()->value_name("FILE"), "Run config (TOML).")(
      "set", po::value<std::vector<std::string>>()->composing()->value_name("KEY=VALUE"),
      "Override a config value before validation, e.g. --set run.iterations=2 "
      "(repeatable; VALUE is parsed as TOML, else taken as a string).");
  po::positional_options_description positional;
  positional.add("file", 1);
  po::variables_map vm;
  if (!parse_command_args(command, "FILE [--set KEY=VALUE]...", options, positional, args, vm))
    return false;
  if (!vm.count("file")) throw UsageError(command + ": missing the config FILE argument");

  out.resolved = load_run_config(
      out.registry, globals, vm["file"].as<std::string>(),
      vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{});
  return true;
}

}  // namespace

ResolvedConfig load_run_config(PluginRegistry& registry,
                               const GlobalOptions& globals,
                               const std::string& file,
                               const std::vector<std::string>& overrides) {
  ConfigDocument doc = parse_config_file(file);
  apply_overrides(doc, overrides);

  load_search_path(registry, globals);
  for (const auto& dir : plugin_paths(doc, "dirs")) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
      spdlog::warn("[plugins] dirs: '{}' is not a directory; ignored", dir.string());
    registry.load_directory(dir);
  }
  // Libraries named explicitly must load: a failure is fatal (sdk::PluginError, exit code 1).
  for (const auto& library : plugin_paths(doc, "libraries")) registry.load_library(library);

  return resolve_config(doc, registry);
}

int config_check(const GlobalOptions& globals, const std::vector<std::string>& args) {
  LoadedConfig loaded;
  if (!load_config("config check", globals, args, loaded)) return 0;
  const ResolvedConfig& resolved = loaded.resolved;
  // Construct the plugins that load no model (rubric, meta-judge strategy, pair policy,
  // optimizer, evaluator): an option only their constructor checks fails here, not mid-run.
  RunSession session(loaded.registry, resolved);
  session.create_text_plugins();

  // "model_backend torch, judge_rubric additive5, ...": each kind once per distinct plugin.
  std::vector<std::string> parts;
  for (const auto& kind_info : sdk::kPluginKinds) {
    const sdk::PluginKind kind = kind_info.kind;
    for (const auto& [path, name] : resolved.plugin_of) {
      const RegisteredPlugin* plugin = loaded.registry.find(name);
      if (plugin == nullptr || plugin->descriptor.kind() != kind) continue;
      std::string part = std::string(sdk::plugin_kind_name(kind)) + " " + name;
      if (std::find(parts.begin(), parts.end(), part) == parts.end()) parts.push_back(part);
    }
  }
  std::string summary;
  for (std::size_t i = 0; i < parts.size(); ++i) summary += (i ? ", " : "") + parts[i];
  std::cout << "OK: " << resolved.file.string() << " is valid (" << resolved.iterations
            << (resolved.iterations == 1 ? " iteration" : " iterations")
            << (summary.empty() ? "" : "; " + summary) << ")\n";
  return 0;
}

int config_show(const GlobalOptions& globals, const std::vector<std::string>& args) {
  LoadedConfig loaded;
  if (!load_config("config show", globals, args, loaded)) return 0;
  std::cout << loaded.resolved.to_toml();
  return 0;
}

}  // namespace mr::core::cli
