// Internal helpers shared by the config loader's parsing and validation files: how TOML keys and
// dotted paths are written in messages and in the resolved TOML text.
#pragma once

#include <string>

#include "metareward/sdk/config.hpp"

namespace mr::core::detail {

/// True when `key` can be written as a TOML bare key (A-Z a-z 0-9 _ -).
inline bool is_bare_key(const std::string& key) {
  if (key.empty()) return false;
  for (char c : key) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

/// `key` as written in TOML: bare when possible, else a quoted basic string.
inline std::string toml_key(const std::string& key) {
  return is_bare_key(key) ? key : sdk::Value(key).to_toml();
}

/// The dotted TOML path of `key` inside the table at `parent` ("" for the root).
inline std::string join_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? toml_key(key) : parent + "." + toml_key(key);
}

/// The value of `key` in `table`, or nullptr.
inline const sdk::Value* find_in(const sdk::Table& table, const std::string& key) {
  auto it = table.find(key);
  return it == table.end() ? nullptr : &it->second;
}

}  // namespace mr::core::detail
