// Value, ParamSpec and Config: the SDK's config data model (no TOML parser here; core parses).
#include "metareward/sdk/config.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "metareward/sdk/error.hpp"

namespace mr::sdk {

std::string SourceRef::describe() const {
  if (file.empty()) return "(default)";
  if (line <= 0) return file;
  std::string s = file + ":" + std::to_string(line);
  if (column > 0) s += ":" + std::to_string(column);
  return s;
}

const char* kind_name(Value::Kind kind) {
  switch (kind) {
    case Value::Kind::Null:
      return "nothing";
    case Value::Kind::Bool:
      return "boolean";
    case Value::Kind::Int:
      return "integer";
    case Value::Kind::Float:
      return "float";
    case Value::Kind::String:
      return "string";
    case Value::Kind::Array:
      return "array";
    case Value::Kind::Table:
      return "table";
  }
  return "unknown";
}

const char* param_type_name(ParamType type) {
  switch (type) {
    case ParamType::Bool:
      return "bool";
    case ParamType::Int:
      return "int";
    case ParamType::Float:
      return "float";
    case ParamType::String:
      return "string";
    case ParamType::StringList:
      return "string list";
  }
  return "unknown";
}

namespace {
[[noreturn]] void kind_mismatch(const Value& v, const char* wanted) {
  std::string where = v.source().file.empty() ? "" : v.source().describe() + ": ";
  throw ConfigError(where + "expected " + wanted + ", got " + kind_name(v.kind()) +
                    (v.is_null() ? "" : " " + v.to_toml()));
}

std::string format_double(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  // Shortest %g representation that round-trips.
  char buf[64];
  int prec = 1;
  for (; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  std::string s = buf;
  // %g switches to exponent form for 100 ("1e+02") and 5e-06; prefer plain decimals in the
  // everyday range so recorded configs read as written.
  double mag = std::fabs(d);
  if (s.find('e') != std::string::npos && mag >= 1e-4 && mag < 1e15) {
    int exponent = static_cast<int>(std::floor(std::log10(mag)));
    int decimals = std::max(0, prec - 1 - exponent);
    std::snprintf(buf, sizeof buf, "%.*f", decimals, d);
    if (std::strtod(buf, nullptr) == d) s = buf;
  }
  auto e = s.find('e');
  if (e != std::string::npos) {  // "5e-06" -> "5e-6", "1e+20" -> "1e20"
    std::string mantissa = s.substr(0, e), exp = s.substr(e + 1);
    std::string sign = (exp[0] == '-') ? "-" : "";
    if (exp[0] == '+' || exp[0] == '-') exp.erase(0, 1);
    exp.erase(0, std::min(exp.find_first_not_of('0'), exp.size() - 1));
    s = mantissa + "e" + sign + exp;
  }
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

bool is_bare_key(const std::string& k) {
  if (k.empty()) return false;
  for (char c : k)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}
}  // namespace

bool Value::as_bool() const {
  if (!is_bool()) kind_mismatch(*this, "boolean");
  return std::get<bool>(data_);
}
std::int64_t Value::as_int() const {
  if (!is_int()) kind_mismatch(*this, "integer");
  return std::get<std::int64_t>(data_);
}
double Value::as_float() const {
  if (is_int()) return static_cast<double>(std::get<std::int64_t>(data_));
  if (kind() != Kind::Float) kind_mismatch(*this, "float");
  return std::get<double>(data_);
}
const std::string& Value::as_string() const {
  if (!is_string()) kind_mismatch(*this, "string");
  return std::get<std::string>(data_);
}
const Array& Value::as_array() const {
  if (!is_array()) kind_mismatch(*this, "array");
  return std::get<Array>(data_);
}
const Table& Value::as_table() const {
  if (!is_table()) kind_mismatch(*this, "table");
  return std::get<Table>(data_);
}
Array& Value::as_array() {
  if (!is_array()) kind_mismatch(*this, "array");
  return std::get<Array>(data_);
}
Table& Value::as_table() {
  if (!is_table()) kind_mismatch(*this, "table");
  return std::get<Table>(data_);
}

std::string Value::to_toml() const {
  switch (kind()) {
    case Kind::Null:
      return "\"\"";
    case Kind::Bool:
      return std::get<bool>(data_) ? "true" : "false";
    case Kind::Int:
      return std::to_string(std::get<std::int64_t>(data_));
    case Kind::Float:
      return format_double(std::get<double>(data_));
    case Kind::String:
      return quote(std::get<std::string>(data_));
    case Kind::Array: {
      std::string s = "[";
      const auto& a = std::get<Array>(data_);
      for (std::size_t i = 0; i < a.size(); ++i) s += (i ? ", " : "") + a[i].to_toml();
      return s + "]";
    }
    case Kind::Table: {
      std::string s = "{ ";
      bool first = true;
      for (const auto& [k, v] : std::get<Table>(data_)) {
        s += (first ? "" : ", ") + (is_bare_key(k) ? k : quote(k)) + " = " + v.to_toml();
        first = false;
      }
      return s + (first ? "}" : " }");
    }
  }
  return "";
}

ParamSpec ParamSpec::bool_(std::string key, bool def, std::string help) {
  ParamSpec p;
  p.key = std::move(key);
  p.type = ParamType::Bool;
  p.default_value = Value(def);
  p.help = std::move(help);
  return p;
}
ParamSpec ParamSpec::int_(std::string key, std::int64_t def, std::string help) {
  ParamSpec p;
  p.key = std::move(key);
  p.type = ParamType::Int;
  p.default_value = Value(def);
  p.help = std::move(help);
  return p;
}
ParamSpec ParamSpec::float_(std::string key, double def, std::string help) {
  ParamSpec p;
  p.key = std::move(key);
  p.type = ParamType::Float;
  p.default_value = Value(def);
  p.help = std::move(help);
  return p;
}
ParamSpec ParamSpec::string_(std::string key, std::string def, std::string help) {
  ParamSpec p;
  p.key = std::move(key);
  p.type = ParamType::String;
  p.default_value = Value(std::move(def));
  p.help = std::move(help);
  return p;
}
ParamSpec ParamSpec::string_list(std::string key, std::vector<std::string> def, std::string help) {
  ParamSpec p;
  p.key = std::move(key);
  p.type = ParamType::StringList;
  Array a;
  for (auto& s : def) a.emplace_back(std::move(s));
  p.default_value = Value(std::move(a));
  p.help = std::move(help);
  return p;
}
ParamSpec ParamSpec::required_(std::string key, ParamType type, std::string help) {
  ParamSpec p;
  p.key = std::move(key);
  p.type = type;
  p.required = true;
  p.help = std::move(help);
  return p;
}
ParamSpec& ParamSpec::range(std::optional<double> lo,
                            std::optional<double> hi,
                            bool lo_exclusive,
                            bool hi_exclusive) {
  min = lo;
  max = hi;
  min_exclusive = lo_exclusive;
  max_exclusive = hi_exclusive;
  return *this;
}
ParamSpec& ParamSpec::one_of(std::vector<std::string> allowed) {
  choices = std::move(allowed);
  return *this;
}
ParamSpec& ParamSpec::per_iteration_allowed() {
  per_iteration = true;
  return *this;
}

std::string ParamSpec::constraint_text() const {
  auto num = [](double d) {
    std::ostringstream o;
    o << d;
    return o.str();
  };
  if (!choices.empty()) {
    std::string s = "one of: ";
    for (std::size_t i = 0; i < choices.size(); ++i) s += (i ? ", " : "") + choices[i];
    return s;
  }
  if (min && max)
    return num(*min) + (min_exclusive ? " < x " : " <= x ") + (max_exclusive ? "< " : "<= ") +
           num(*max);
  if (min) return std::string(min_exclusive ? "x > " : "x >= ") + num(*min);
  if (max) return std::string(max_exclusive ? "x < " : "x <= ") + num(*max);
  return "";
}

Config::Config(std::string path, Table values, int iterations)
    : path_(std::move(path)),
      values_(std::move(values)),
      iterations_(iterations < 1 ? 1 : iterations) {}

bool Config::has(std::string_view key) const {
  return values_.find(key) != values_.end();
}

const Value& Config::raw(std::string_view key) const {
  auto it = values_.find(key);
  if (it == values_.end())
    throw ConfigError("[" + path_ + "] no key '" + std::string(key) +
                      "' (a plugin asked for a key its schema does not declare)");
  return it->second;
}

const Value& Config::at_iteration(std::string_view key, int iteration) const {
  const Value& v = raw(key);
  if (!v.is_array() || v.as_array().empty() || v.as_array().front().is_array()) return v;
  // An array: either a per-iteration value or a string list. String lists are read with
  // get_string_list(); scalar getters on an array select the iteration.
  if (iteration <= 0) fail(key, "is given per iteration; an iteration number is needed to read it");
  const auto& a = v.as_array();
  if (static_cast<std::size_t>(iteration) > a.size())
    fail(key, "has " + std::to_string(a.size()) + " per-iteration values but iteration " +
                  std::to_string(iteration) + " was requested");
  return a[static_cast<std::size_t>(iteration) - 1];
}

bool Config::get_bool(std::string_view key, int iteration) const {
  return at_iteration(key, iteration).as_bool();
}
std::int64_t Config::get_int(std::string_view key, int iteration) const {
  return at_iteration(key, iteration).as_int();
}
double Config::get_float(std::string_view key, int iteration) const {
  return at_iteration(key, iteration).as_float();
}
std::string Config::get_string(std::string_view key, int iteration) const {
  return at_iteration(key, iteration).as_string();
}
std::vector<std::string> Config::get_string_list(std::string_view key) const {
  std::vector<std::string> out;
  for (const auto& v : raw(key).as_array()) out.push_back(v.as_string());
  return out;
}

void Config::fail(std::string_view key, const std::string& message) const {
  std::string where;
  auto it = values_.find(key);
  if (it != values_.end() && !it->second.source().file.empty())
    where = it->second.source().describe() + ": ";
  throw ConfigError(where + "[" + path_ + (path_.empty() ? "" : ".") + std::string(key) + "] " +
                    message);
}

}  // namespace mr::sdk
