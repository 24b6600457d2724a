// Plugin loading (Boost.DLL), ABI checks and the name -> descriptor registry.
#include "metareward/core/plugin_registry.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "metareward/sdk/error.hpp"
#include "metareward/sdk/version.hpp"

namespace mr::core {

namespace fs = std::filesystem;

namespace {

/// Absolute, symlink-resolved form of `p` (as far as it exists): the identity of a library.
fs::path canonical_path(const fs::path& p) {
  std::error_code ec;
  fs::path abs = fs::absolute(p, ec);
  if (ec) return p;
  fs::path canon = fs::weakly_canonical(abs, ec);
  return ec ? abs.lexically_normal() : canon;
}

/// Collects one library's descriptors; nothing reaches the registry until registration succeeded.
class StagingRegistrar : public sdk::Registrar {
 public:
  void add(sdk::PluginDescriptor descriptor) override { added.push_back(std::move(descriptor)); }
  void add_command(sdk::CommandDescriptor command) override {
    commands.push_back(std::move(command));
  }
  std::vector<sdk::PluginDescriptor> added;
  std::vector<sdk::CommandDescriptor> commands;
};

}  // namespace

struct PluginRegistry::Impl {
  // Declaration order matters: members are destroyed bottom-up, so every descriptor (whose
  // std::function factories have code in the plugin) is gone before the last library handle
  // held here is released.
  std::vector<std::shared_ptr<void>> libraries;
  std::set<fs::path> loaded_paths;
  std::map<std::string, std::unique_ptr<RegisteredPlugin>, std::less<>> plugins;
  std::map<std::string, std::unique_ptr<RegisteredCommand>, std::less<>> commands;

  /// Origin of a plugin for messages: its library path, or the static origin name.
  static std::string origin_of(const RegisteredPlugin& p) {
    return p.library_path.empty() ? p.library_name : p.library_path.string();
  }

  /// Adds a library's staged descriptors, all or none. `origin` names it in errors.
  void commit(std::vector<sdk::PluginDescriptor> descriptors,
              std::vector<sdk::CommandDescriptor> new_commands,
              const fs::path& library_path,
              const std::string& origin,
              const std::string& library_name,
              const std::string& library_version,
              const std::shared_ptr<void>& library) {
    std::set<std::string> seen;
    for (const auto& d : descriptors) {
      if (d.name.empty())
        throw sdk::PluginError("plugin library '" + origin + "' registered a plugin with no name");
      if (d.factory.valueless_by_exception())
        throw sdk::PluginError("plugin '" + d.name + "' from '" + origin + "' has no factory");
      auto it = plugins.find(d.name);
      if (it != plugins.end())
        throw sdk::PluginError("duplicate plugin name '" + d.name + "': registered by '" + origin +
                               "' and already by '" + origin_of(*it->second) + "'");
      if (!seen.insert(d.name).second)
        throw sdk::PluginError("duplicate plugin name '" + d.name + "': registered by '" + origin +
                               "' and already by '" + origin + "'");
    }
    std::set<std::string> seen_commands;
    // A command (or subcommand) needs a name and a function or subcommands, each name once.
    std::function<void(const sdk::CommandDescriptor&, const std::string&)> check_command =
        [&](const sdk::CommandDescriptor& c, const std::string& parent) {
          const std::string full = parent.empty() ? c.name : parent + " " + c.name;
          if (c.name.empty() || (!c.run && c.subcommands.empty()))
            throw sdk::PluginError("plugin library '" + origin + "' registered a command" +
                                   (full.empty() ? "" : " '" + full + "'") +
                                   " with no name or no function");
          std::set<std::string> subs;
          for (const auto& sub : c.subcommands) {
            if (!subs.insert(sub.name).second)
              throw sdk::PluginError("plugin library '" + origin + "' registered the subcommand '" +
                                     full + " " + sub.name + "' twice");
            check_command(sub, full);
          }
        };
    for (const auto& c : new_commands) {
      check_command(c, "");
      auto it = commands.find(c.name);
      const std::string previous = it != commands.end() ? (it->second->library_path.empty()
                                                               ? it->second->library_name
                                                               : it->second->library_path.string())
                                                        : origin;
      if (it != commands.end() || !seen_commands.insert(c.name).second)
        throw sdk::PluginError("duplicate command name '" + c.name + "': registered by '" + origin +
                               "' and already by '" + previous + "'");
    }
    for (auto& c : new_commands) {
      auto entry = std::make_unique<RegisteredCommand>();
      entry->library = library;
      entry->library_path = library_path;
      entry->library_name = library_name;
      std::string name = c.name;
      entry->descriptor = std::move(c);
      commands.emplace(std::move(name), std::move(entry));
    }
    for (auto& d : descriptors) {
      auto entry = std::make_unique<RegisteredPlugin>();
      entry->descriptor = std::move(d);
      entry->library_path = library_path;
      entry->library_name = library_name;
      entry->library_version = library_version;
      entry->library = library;
      std::string name = entry->descriptor.name;
      plugins.emplace(std::move(name), std::move(entry));
    }
  }
};

PluginRegistry::PluginRegistry() : impl_(std::make_unique<Impl>()) {}
PluginRegistry::~PluginRegistry() = default;

void PluginRegistry::load_library(const fs::path& path) {
  const fs::path canon = canonical_path(path);
  if (impl_->loaded_paths.count(canon)) return;  // Same file again: nothing to do.
  const std::string where = "plugin '" + canon.string() + "': ";

  // rtld_now: a missing symbol fails here, not in the middle of a run. rtld_local: one plugin's
  // symbols never satisfy (or shadow) another's.
  auto library = std::make_shared<boost::dll::shared_library>();
  std::error_code ec;
  dlerror();  // Clear any stale message so the one below belongs to this dlopen.
  library->load(canon, ec, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  if (ec || !library->is_loaded()) {
    const char* text = dlerror();
    throw sdk::PluginError(where + "cannot load library: " + (text ? text : ec.message()));
  }
  if (!library->has(MR_PLUGIN_ENTRY_SYMBOL))
    throw sdk::PluginError(where + "entry point '" MR_PLUGIN_ENTRY_SYMBOL
                                   "' not found; is this a metareward plugin?");

  using EntryFn = const MrPluginInfo*();
  const MrPluginInfo* info = library->get<EntryFn>(MR_PLUGIN_ENTRY_SYMBOL)();
  if (info == nullptr)
    throw sdk::PluginError(where + "entry point '" MR_PLUGIN_ENTRY_SYMBOL "' returned null");
  // Only api_version is readable before it matches: the rest of the struct may differ.
  if (info->api_version != MR_PLUGIN_API_VERSION)
    throw sdk::PluginError(where + "API version mismatch (plugin " +
                           std::to_string(info->api_version) + ", host " +
                           std::to_string(MR_PLUGIN_API_VERSION) +
                           "); rebuild it against metareward SDK " MR_SDK_VERSION);
  const std::string fingerprint = info->build_fingerprint ? info->build_fingerprint : "";
  if (fingerprint != host_fingerprint())
    throw sdk::PluginError(where + "build fingerprint mismatch (plugin '" + fingerprint +
                           "', host '" + host_fingerprint() +
                           "'); rebuild it with the same compiler, libtorch and ABI flags as the "
                           "host");
  if (info->register_plugins == nullptr)
    throw sdk::PluginError(where + "registration failed: no registration function");

  // `library` outlives this try block, so exception objects thrown from plugin code are
  // destroyed while their code is still mapped.
  StagingRegistrar staging;
  try {
    info->register_plugins(staging);
  } catch (const std::exception& e) {
    throw sdk::PluginError(where + "registration failed: " + std::string(e.what()));
  } catch (...) {
    throw sdk::PluginError(where + "registration failed: unknown exception");
  }

  std::shared_ptr<void> handle = library;
  const std::string library_name = info->library_name ? info->library_name : "";
  const std::string library_version = info->library_version ? info->library_version : "";
  try {
    impl_->commit(std::move(staging.added), std::move(staging.commands), canon, canon.string(),
                  library_name, library_version, handle);
  } catch (...) {
    // Destroy plugin-owned factories and commands before `library` may unload.
    staging.added.clear();
    staging.commands.clear();
    throw;
  }
  impl_->libraries.push_back(std::move(handle));
  impl_->loaded_paths.insert(canon);
  spdlog::debug("loaded plugin library '{}' ({} {})", canon.string(), library_name,
                library_version);
}

int PluginRegistry::load_directory(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  std::vector<fs::path> files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (it->path().extension() == ".so" && it->is_regular_file(type_ec))
      files.push_back(it->path());
  }
  if (ec) {
    spdlog::warn("cannot list plugin directory '{}': {}", dir.string(), ec.message());
    return 0;
  }
  std::sort(files.begin(), files.end());  // Deterministic: which duplicate wins never varies.
  int loaded = 0;
  for (const auto& file : files) {
    const bool known = impl_->loaded_paths.count(canonical_path(file)) > 0;
    try {
      load_library(file);
      if (!known) ++loaded;
    } catch (const sdk::Error& e) {
      spdlog::warn("skipping {}", e.what());
    }
  }
  return loaded;
}

void PluginRegistry::register_static(void (*register_fn)(sdk::Registrar&),
                                     const std::string& origin) {
  if (register_fn == nullptr)
    throw sdk::PluginError("plugin '" + origin +
                           "': registration failed: no registration function");
  StagingRegistrar staging;
  try {
    register_fn(staging);
  } catch (const std::exception& e) {
    throw sdk::PluginError("plugin '" + origin + "': registration failed: " + e.what());
  }
  impl_->commit(std::move(staging.added), std::move(staging.commands), {}, origin, origin,
                MR_SDK_VERSION, nullptr);
}

const RegisteredPlugin* PluginRegistry::find(std::string_view name) const {
  auto it = impl_->plugins.find(name);
  return it == impl_->plugins.end() ? nullptr : it->second.get();
}

std::vector<std::string> PluginRegistry::names(sdk::PluginKind kind) const {
  std::vector<std::string> out;
  for (const auto& [name, plugin] : impl_->plugins)  // std::map: already sorted.
    if (plugin->descriptor.kind() == kind) out.push_back(name);
  return out;
}

std::vector<const RegisteredPlugin*> PluginRegistry::all() const {
  std::vector<const RegisteredPlugin*> out;
  for (const auto& [name, plugin] : impl_->plugins) out.push_back(plugin.get());
  std::stable_sort(out.begin(), out.end(),
                   [](const RegisteredPlugin* a, const RegisteredPlugin* b) {
                     return a->descriptor.kind() < b->descriptor.kind();
                   });
  return out;
}

const RegisteredCommand* PluginRegistry::find_command(std::string_view name) const {
  auto it = impl_->commands.find(name);
  return it == impl_->commands.end() ? nullptr : it->second.get();
}

std::vector<const RegisteredCommand*> PluginRegistry::commands() const {
  std::vector<const RegisteredCommand*> out;
  for (const auto& [name, command] : impl_->commands) out.push_back(command.get());
  return out;
}

std::vector<fs::path> plugin_search_path(const std::vector<fs::path>& extra_dirs) {
  std::vector<fs::path> dirs;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path exe_dir = exe.parent_path();
    // The build tree's plugins only for the build tree's binary: an installed metareward must
    // never pick up whatever a source checkout happens to contain.
    if (canonical_path(exe_dir) == canonical_path(MR_BUILD_BIN_DIR))
      dirs.push_back(MR_BUILD_PLUGIN_DIR);
    dirs.push_back((exe_dir / ".." / MR_INSTALL_PLUGIN_DIR_REL).lexically_normal());
  }
  if (const char* env = std::getenv("METAREWARD_PLUGIN_PATH")) {
    std::string value = env;
    std::size_t start = 0;
    while (start <= value.size()) {
      std::size_t end = value.find(':', start);
      if (end == std::string::npos) end = value.size();
      if (end > start) dirs.emplace_back(value.substr(start, end - start));
      start = end + 1;
    }
  }
  dirs.insert(dirs.end(), extra_dirs.begin(), extra_dirs.end());
  // Drop repeats (e.g. --plugin-dir naming the build dir again), keeping the first position.
  std::vector<fs::path> unique;
  std::set<fs::path> seen;
  for (const auto& d : dirs)
    if (seen.insert(canonical_path(d)).second) unique.push_back(d);
  return unique;
}

const char* host_fingerprint() {
  return MR_BUILD_FINGERPRINT;
}

}  // namespace mr::core
