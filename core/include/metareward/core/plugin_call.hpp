/// @file plugin_call.hpp
/// The guard around every call into plugin code. An exception of any type thrown by a plugin
/// (a std::out_of_range from std::stod in a rubric's parse(), an sdk::DataError, `throw 42`)
/// leaves the guard as an sdk error whose message names the plugin, its kind and library, the
/// call, the stage and, where there is one, the item: the text is read right there, while the
/// plugin's library is certainly loaded (a plugin's own exception type has its vtable and
/// what() in that library).
#pragma once

#include <string>
#include <utility>

#include "metareward/core/plugin_registry.hpp"

namespace mr::core {

/// Who is called, from where, on what: everything an error message about the call names.
struct PluginCall {
  std::string plugin;   ///< "additive5".
  std::string kind;     ///< "judge rubric".
  std::string library;  ///< The library's path (or its name for in-process registrations).
  std::string call;     ///< The interface method: "parse".
  std::string stage;    ///< "judge, iteration 2"; empty outside a run.
  std::string item;     ///< "judgment 'p3/r1/j2'"; empty when the call is not about one item.

  /// The same call about another item (or at another stage).
  PluginCall with_item(std::string item_text) const;
  PluginCall at(std::string stage_text) const;
  /// "judge rubric 'additive5' (library /x/libmr_recipe.so), parse() at stage judge, iteration
  /// 2, on judgment 'p3/r1/j2'".
  std::string describe() const;
};

/// The call `call` of the plugin `plugin` (kind and library from its registration).
PluginCall plugin_call(const RegisteredPlugin& plugin, std::string call);

/// Rethrows the exception in flight as a host error naming `site`: sdk::Interrupted passes
/// unchanged; sdk::ConfigError, DataError, BackendError stay of their type; every other
/// sdk::Error and anything else (std::exception or not) becomes sdk::PluginError, with the C++
/// type of what was thrown for non-SDK exceptions. Call only inside a catch block.
[[noreturn]] void rethrow_from_plugin(const PluginCall& site);

/// Runs `f` (a call into plugin code) and rethrows whatever it throws with rethrow_from_plugin.
template <class F>
decltype(auto) guarded(const PluginCall& site, F&& f) {
  try {
    return std::forward<F>(f)();
  } catch (...) {
    rethrow_from_plugin(site);
  }
}

}  // namespace mr::core
