// Reading run configs: TOML text -> sdk::Value trees with source positions, `--set` overrides and
// the edit-distance suggestions used by every "unknown ..." message.
#include "metareward/core/config_loader.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <system_error>

#include <toml++/toml.h>

#include "config_text.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::core {

namespace {

using sdk::Array;
using sdk::ConfigError;
using sdk::SourceRef;
using sdk::Table;
using sdk::Value;

constexpr const char* kOverrideSource = "--set";

// Collects conversion problems so one parse reports every unsupported value at once.
struct ConvertErrors {
  std::vector<std::string> lines;
};

SourceRef source_of(const toml::node& node, const std::string& file) {
  const auto& begin = node.source().begin;
  return SourceRef{file, static_cast<int>(begin.line), static_cast<int>(begin.column)};
}

Value convert(const toml::node& node,
              const std::string& path,
              const std::string& file,
              ConvertErrors& errors) {
  Value out;
  switch (node.type()) {
    case toml::node_type::table: {
      Table table;
      for (auto&& [key, child] : *node.as_table()) {
        std::string name(key.str());
        table.emplace(name, convert(child, detail::join_path(path, name), file, errors));
      }
      out = Value(std::move(table));
      break;
    }
    case toml::node_type::array: {
      Array array;
      std::size_t index = 0;
      for (auto&& child : *node.as_array())
        array.push_back(convert(child, path + "[" + std::to_string(index++) + "]", file, errors));
      out = Value(std::move(array));
      break;
    }
    case toml::node_type::string:
      out = Value(std::string(node.as_string()->get()));
      break;
    case toml::node_type::integer:
      out = Value(static_cast<std::int64_t>(node.as_integer()->get()));
      break;
    case toml::node_type::floating_point:
      out = Value(node.as_floating_point()->get());
      break;
    case toml::node_type::boolean:
      out = Value(node.as_boolean()->get());
      break;
    default: {
      // Dates and times: the SDK's Value has no such kind and no setting needs one.
      SourceRef where = source_of(node, file);
      errors.lines.push_back(where.describe() + ": [" + path +
                             "] dates and times are not supported; write the value as a quoted "
                             "string");
      break;
    }
  }
  out.set_source(source_of(node, file));
  return out;
}

void set_source_recursive(Value& value, const SourceRef& source) {
  value.set_source(source);
  if (value.is_array()) {
    for (auto& element : value.as_array()) set_source_recursive(element, source);
  } else if (value.is_table()) {
    for (auto& [key, child] : value.as_table()) set_source_recursive(child, source);
  }
}

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  auto begin = s.find_first_not_of(ws);
  if (begin == std::string::npos) return "";
  auto end = s.find_last_not_of(ws);
  return s.substr(begin, end - begin + 1);
}

// Splits `a.b."c.d"` into its elements; a double-quoted element may contain dots.
std::vector<std::string> split_key_path(const std::string& key, const std::string& override_text) {
  auto bad = [&](const std::string& why) {
    return ConfigError("bad override '" + override_text + "': " + why);
  };
  std::vector<std::string> parts;
  std::size_t i = 0;
  while (true) {
    while (i < key.size() && (key[i] == ' ' || key[i] == '\t')) ++i;
    std::string part;
    if (i < key.size() && key[i] == '"') {
      auto close = key.find('"', i + 1);
      if (close == std::string::npos) throw bad("unterminated quoted key in '" + key + "'");
      part = key.substr(i + 1, close - i - 1);
      i = close + 1;
      while (i < key.size() && (key[i] == ' ' || key[i] == '\t')) ++i;
      if (part.empty()) throw bad("empty quoted key in '" + key + "'");
    } else {
      auto dot = key.find('.', i);
      part = trim(key.substr(i, dot == std::string::npos ? std::string::npos : dot - i));
      i = dot == std::string::npos ? key.size() : dot;
      if (part.empty()) throw bad("empty element in key path '" + key + "'");
    }
    parts.push_back(part);
    if (i >= key.size()) break;
    if (key[i] != '.') throw bad("expected '.' after a quoted key in '" + key + "'");
    ++i;
    if (i >= key.size()) throw bad("empty element in key path '" + key + "'");
  }
  return parts;
}

// `0.5`, `true`, `[1, 2]`, `"x"` and `{ a = 1 }` parse as TOML; anything else is a bare string.
Value parse_override_value(const std::string& text) {
  const SourceRef source{kOverrideSource, 0, 0};
  if (!text.empty()) {
    try {
      toml::table parsed = toml::parse("x = " + text, std::string_view(kOverrideSource));
      if (parsed.size() == 1 && parsed.contains("x")) {
        ConvertErrors errors;
        Value value = convert(*parsed.get("x"), "x", kOverrideSource, errors);
        if (errors.lines.empty()) {
          set_source_recursive(value, source);
          return value;
        }
      }
    } catch (const toml::parse_error&) {
      // Not TOML: fall through to the raw text.
    }
  }
  Value value(text);
  value.set_source(source);
  return value;
}

}  // namespace

ConfigDocument parse_config_text(const std::string& text, const std::string& name) {
  toml::table table;
  try {
    table = toml::parse(std::string_view(text), std::string_view(name));
  } catch (const toml::parse_error& e) {
    const auto& begin = e.source().begin;
    throw ConfigError(name + ":" + std::to_string(begin.line) + ":" + std::to_string(begin.column) +
                      ": TOML syntax error: " + std::string(e.description()));
  }
  ConvertErrors errors;
  Value root = convert(table, "", name, errors);
  if (!errors.lines.empty()) {
    std::string message = std::to_string(errors.lines.size()) + " error(s) in " + name + ":";
    for (const auto& line : errors.lines) message += "\n" + line;
    throw ConfigError(message);
  }
  ConfigDocument doc;
  doc.file = name;
  doc.root = std::move(root.as_table());
  return doc;
}

ConfigDocument parse_config_file(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec))
    throw ConfigError("cannot read config file '" + file.string() + "': no such file");
  if (std::filesystem::is_directory(file, ec))
    throw ConfigError("cannot read config file '" + file.string() + "': it is a directory");
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw ConfigError("cannot read config file '" + file.string() +
                      "': it cannot be opened (check its permissions)");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError("cannot read config file '" + file.string() + "': read error");
  ConfigDocument doc = parse_config_text(text.str(), file.string());
  doc.file = file;
  return doc;
}

void apply_overrides(ConfigDocument& doc, const std::vector<std::string>& overrides) {
  const SourceRef source{kOverrideSource, 0, 0};
  for (const auto& text : overrides) {
    auto eq = text.find('=');
    if (eq == std::string::npos)
      throw ConfigError("bad override '" + text + "': expected key.path=value");
    std::string key = trim(text.substr(0, eq));
    if (key.empty()) throw ConfigError("bad override '" + text + "': the key before '=' is empty");
    std::vector<std::string> parts = split_key_path(key, text);
    Value value = parse_override_value(trim(text.substr(eq + 1)));

    Table* table = &doc.root;
    std::string walked;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      walked = detail::join_path(walked, parts[i]);
      auto it = table->find(parts[i]);
      if (it == table->end()) {
        Value created{Table{}};
        created.set_source(source);
        it = table->emplace(parts[i], std::move(created)).first;
      } else if (!it->second.is_table()) {
        throw ConfigError("bad override '" + text + "': '" + walked + "' is " +
                          sdk::kind_name(it->second.kind()) + " " + it->second.to_toml() + " (" +
                          it->second.source().describe() + "), not a table");
      }
      table = &it->second.as_table();
    }
    (*table)[parts.back()] = std::move(value);
  }
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  std::size_t threshold = std::max<std::size_t>(2, word.size() / 3);
  std::string best;
  std::size_t best_distance = threshold + 1;
  std::vector<std::size_t> row, next;
  for (const auto& candidate : candidates) {
    // Levenshtein distance, two rows.
    row.resize(candidate.size() + 1);
    next.resize(candidate.size() + 1);
    for (std::size_t j = 0; j <= candidate.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= word.size(); ++i) {
      next[0] = i;
      for (std::size_t j = 1; j <= candidate.size(); ++j) {
        std::size_t substitute = row[j - 1] + (word[i - 1] == candidate[j - 1] ? 0 : 1);
        next[j] = std::min({row[j] + 1, next[j - 1] + 1, substitute});
      }
      std::swap(row, next);
    }
    std::size_t distance = row[candidate.size()];
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

}  // namespace mr::core
