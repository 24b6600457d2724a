// The guard around calls into plugin code (plugin_call.hpp).
#include "metareward/core/plugin_call.hpp"

#include <cxxabi.h>

#include <cstdlib>
#include <exception>
#include <memory>
#include <typeinfo>

#include "metareward/sdk/error.hpp"

namespace mr::core {

namespace {

/// The demangled name of the type of the exception in flight ("std::out_of_range", "int").
std::string current_exception_type() {
  const std::type_info* type = abi::__cxa_current_exception_type();
  if (type == nullptr) return "unknown";
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(type->name(), nullptr, nullptr, &status), std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(type->name());
}

}  // namespace

PluginCall PluginCall::with_item(std::string item_text) const {
  PluginCall c = *this;
  c.item = std::move(item_text);
  return c;
}

PluginCall PluginCall::at(std::string stage_text) const {
  PluginCall c = *this;
  c.stage = std::move(stage_text);
  return c;
}

std::string PluginCall::describe() const {
  std::string s = kind + " '" + plugin + "'";
  if (!library.empty()) s += " (library " + library + ")";
  s += ", " + call + "()";
  if (!stage.empty()) s += " at stage " + stage;
  if (!item.empty()) s += ", on " + item;
  return s;
}

PluginCall plugin_call(const RegisteredPlugin& plugin, std::string call) {
  PluginCall c;
  c.plugin = plugin.descriptor.name;
  c.kind = sdk::plugin_kind_info(plugin.descriptor.kind()).label;
  c.library = plugin.library_path.empty() ? plugin.library_name : plugin.library_path.string();
  c.call = std::move(call);
  return c;
}

void rethrow_from_plugin(const PluginCall& site) {
  const std::string where = site.describe() + ": ";
  try {
    throw;
  } catch (const sdk::Interrupted&) {
    throw;
  } catch (const sdk::ConfigError& e) {
    throw sdk::ConfigError(where + e.what());
  } catch (const sdk::DataError& e) {
    throw sdk::DataError(where + e.what());
  } catch (const sdk::BackendError& e) {
    throw sdk::BackendError(where + e.what());
  } catch (const sdk::Error& e) {
    throw sdk::PluginError(where + e.what());
  } catch (const std::exception& e) {
    throw sdk::PluginError(where + current_exception_type() + ": " + e.what());
  } catch (...) {
    throw sdk::PluginError(where + "threw a non-standard exception of type '" +
                           current_exception_type() + "'");
  }
}

}  // namespace mr::core
