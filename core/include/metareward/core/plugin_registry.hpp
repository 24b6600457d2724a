/// @file plugin_registry.hpp
/// Loads plugin libraries (Boost.DLL), checks their API version and build fingerprint, keeps
/// their descriptors by name and constructs plugin objects that pin their library.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "metareward/sdk/error.hpp"
#include "metareward/sdk/plugin.hpp"

namespace mr::core {

/// A descriptor plus the library it came from.
struct RegisteredPlugin {
  /// Keeps the shared library loaded (opaque). Declared first so it is destroyed last: the
  /// descriptor's factory and schema are code and data of that library.
  std::shared_ptr<void> library;
  sdk::PluginDescriptor descriptor;
  std::filesystem::path library_path;  ///< Empty for plugins registered in-process (tests).
  std::string library_name;
  std::string library_version;
};

/// A CLI command contributed by a plugin library.
struct RegisteredCommand {
  std::shared_ptr<void> library;  ///< Declared first: destroyed after the command's code.
  sdk::CommandDescriptor descriptor;
  std::filesystem::path library_path;
  std::string library_name;
};

/// Read-only view used by config validation: find a plugin's schema by name.
class PluginCatalog {
 public:
  virtual ~PluginCatalog() = default;
  /// The plugin called `name`, or nullptr.
  virtual const RegisteredPlugin* find(std::string_view name) const = 0;
  /// Sorted names of the plugins of one kind.
  virtual std::vector<std::string> names(sdk::PluginKind kind) const = 0;
};

/// The host's plugin registry. Not thread-safe: load on the main thread at start-up.
class PluginRegistry : public PluginCatalog {
 public:
  PluginRegistry();
  ~PluginRegistry() override;

  /// Loads one library; throws sdk::PluginError naming the file on any failure (not a shared
  /// library, no entry symbol, API version or fingerprint mismatch, registration throws,
  /// duplicate plugin name).
  void load_library(const std::filesystem::path& path);

  /// Loads every `*.so` in `dir` (not recursive), logging and skipping bad files. Returns the
  /// number of libraries loaded. A missing directory is skipped silently.
  int load_directory(const std::filesystem::path& dir);

  /// Registers descriptors from an in-process registration function (tests, static builds).
  void register_static(void (*register_fn)(sdk::Registrar&), const std::string& origin);

  const RegisteredPlugin* find(std::string_view name) const override;
  std::vector<std::string> names(sdk::PluginKind kind) const override;
  /// All plugins, sorted by (kind, name).
  std::vector<const RegisteredPlugin*> all() const;

  /// The plugin-contributed command called `name`, or nullptr.
  const RegisteredCommand* find_command(std::string_view name) const;
  /// All plugin-contributed commands, sorted by name.
  std::vector<const RegisteredCommand*> commands() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The default plugin search path, in order: the build tree's plugin dir (when running from the
/// build tree), the install dir (<prefix>/lib/metareward/plugins), then each entry of
/// $METAREWARD_PLUGIN_PATH (colon-separated), then `extra_dirs` (--plugin-dir). Never the
/// current directory implicitly.
std::vector<std::filesystem::path> plugin_search_path(
    const std::vector<std::filesystem::path>& extra_dirs);

/// The host's own build fingerprint (MR_BUILD_FINGERPRINT as compiled into core).
const char* host_fingerprint();

}  // namespace mr::core

namespace mr::core {

/// Constructs a plugin object of interface `Interface` from `plugin`. The returned pointer keeps
/// both the plugin's library and `ctx` alive until the object is destroyed. Any exception from the
/// factory is rethrown as sdk::PluginError naming the plugin and its library (the message is
/// copied while the library is still loaded). A kind mismatch is a PluginError too.
template <class Interface>
std::shared_ptr<Interface> create_plugin(const RegisteredPlugin& plugin,
                                         std::shared_ptr<sdk::HostContext> ctx) {
  constexpr auto kind = sdk::kind_of<Interface>();
  const auto& d = plugin.descriptor;
  std::string origin =
      plugin.library_path.empty() ? plugin.library_name : plugin.library_path.string();
  if (d.kind() != kind)
    throw sdk::PluginError("plugin '" + d.name + "' from '" + origin + "' is of kind '" +
                           sdk::plugin_kind_name(d.kind()) + "', not '" +
                           sdk::plugin_kind_name(kind) + "'");
  std::unique_ptr<Interface> object;
  try {
    object = std::get<static_cast<std::size_t>(kind)>(d.factory)(*ctx);
  } catch (const std::exception& e) {
    throw sdk::PluginError("plugin '" + d.name + "' from '" + origin +
                           "' failed to construct: " + std::string(e.what()));
  } catch (...) {
    throw sdk::PluginError("plugin '" + d.name + "' from '" + origin +
                           "' failed to construct: unknown exception");
  }
  if (!object)
    throw sdk::PluginError("plugin '" + d.name + "' from '" + origin +
                           "' returned no object from its factory");
  // The deleter owns the library and the context: the object's code and its host services stay
  // valid for exactly as long as the object does.
  auto library = plugin.library;
  return std::shared_ptr<Interface>(object.release(), [library, ctx](Interface* p) { delete p; });
}

}  // namespace mr::core
