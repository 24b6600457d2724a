/// @file config.hpp
/// Config values, plugin config schemas and the validated config a plugin receives.
/// The host parses TOML (toml++ lives in core only), validates it against the plugin's Schema and
/// hands the plugin a Config with every default filled in. Plugins never see a toml::table.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mr::sdk {

/// Where a value came from: a TOML file position, a `--set` override, or a schema default.
struct SourceRef {
  std::string file;  ///< TOML file path, "--set" for command-line overrides, empty for defaults.
  int line = 0;      ///< 1-based line, 0 when unknown.
  int column = 0;    ///< 1-based column, 0 when unknown.
  /// "file:line:column", "file:line", "--set" or "(default)".
  std::string describe() const;
};

class Value;
using Array = std::vector<Value>;
using Table = std::map<std::string, Value, std::less<>>;

/// A dynamically typed config value (the TOML data model without dates). Copyable, immutable in
/// practice once validated; safe to read from several threads.
class Value {
 public:
  enum class Kind { Null, Bool, Int, Float, String, Array, Table };

  Value() = default;
  Value(bool v) : data_(v) {}
  Value(int v) : data_(static_cast<std::int64_t>(v)) {}
  Value(std::int64_t v) : data_(v) {}
  Value(double v) : data_(v) {}
  Value(const char* v) : data_(std::string(v)) {}
  Value(std::string v) : data_(std::move(v)) {}
  Value(mr::sdk::Array v) : data_(std::move(v)) {}
  Value(mr::sdk::Table v) : data_(std::move(v)) {}

  Kind kind() const { return static_cast<Kind>(data_.index()); }
  bool is_null() const { return kind() == Kind::Null; }
  bool is_bool() const { return kind() == Kind::Bool; }
  bool is_int() const { return kind() == Kind::Int; }
  /// True for Float and Int (an integer literal is accepted where a float is expected).
  bool is_number() const { return kind() == Kind::Float || kind() == Kind::Int; }
  bool is_string() const { return kind() == Kind::String; }
  bool is_array() const { return kind() == Kind::Array; }
  bool is_table() const { return kind() == Kind::Table; }

  /// Typed accessors; throw mr::sdk::ConfigError naming the expected and actual kinds on mismatch.
  bool as_bool() const;
  std::int64_t as_int() const;
  double as_float() const;  ///< Accepts Int too.
  const std::string& as_string() const;
  const mr::sdk::Array& as_array() const;
  const mr::sdk::Table& as_table() const;
  mr::sdk::Array& as_array();
  mr::sdk::Table& as_table();

  /// Source position (empty for defaults and values built in code).
  const SourceRef& source() const { return source_; }
  void set_source(SourceRef s) { source_ = std::move(s); }

  /// TOML-like literal: `true`, `3`, `0.5`, `"text"` (escaped), `[1, 2]`, `{ a = 1 }`.
  std::string to_toml() const;

  /// Structural equality (ignores source positions).
  friend bool operator==(const Value& a, const Value& b) { return a.data_ == b.data_; }
  friend bool operator!=(const Value& a, const Value& b) { return !(a == b); }

 private:
  std::variant<std::monostate,
               bool,
               std::int64_t,
               double,
               std::string,
               mr::sdk::Array,
               mr::sdk::Table>
      data_;
  SourceRef source_;
};

/// Lowercase name of a value kind ("integer", "float", "string", ...), used in error messages.
const char* kind_name(Value::Kind kind);

/// The type a schema parameter accepts.
enum class ParamType { Bool, Int, Float, String, StringList };

/// Lowercase name of a ParamType ("bool", "int", "float", "string", "string list").
const char* param_type_name(ParamType type);

/// One configuration key a plugin (or the host) accepts. Build with the named constructors and
/// refine fluently: `ParamSpec::float_("rho", 0.0, "length-control tier width").range(0.0, 0.5,
/// false, true).per_iteration()`.
struct ParamSpec {
  std::string key;  ///< Key inside the plugin's table (no dots).
  ParamType type = ParamType::String;
  Value default_value;             ///< Null when `required`.
  bool required = false;           ///< Must be given by the user; no default.
  std::string help;                ///< One or two sentences for `plugins describe` and the docs.
  std::optional<double> min, max;  ///< Inclusive numeric bounds unless *_exclusive.
  bool min_exclusive = false, max_exclusive = false;
  std::vector<std::string> choices;  ///< Allowed strings (String/StringList), empty = any.
  /// May be given as an array indexed by iteration (`rho = [0.0, 0.32, 0.32, 0.4]`).
  bool per_iteration = false;

  static ParamSpec bool_(std::string key, bool def, std::string help);
  static ParamSpec int_(std::string key, std::int64_t def, std::string help);
  static ParamSpec float_(std::string key, double def, std::string help);
  static ParamSpec string_(std::string key, std::string def, std::string help);
  static ParamSpec string_list(std::string key, std::vector<std::string> def, std::string help);
  /// A key with no default that the user must set.
  static ParamSpec required_(std::string key, ParamType type, std::string help);

  ParamSpec& range(std::optional<double> lo,
                   std::optional<double> hi,
                   bool lo_exclusive = false,
                   bool hi_exclusive = false);
  ParamSpec& one_of(std::vector<std::string> allowed);
  ParamSpec& per_iteration_allowed();
  /// Human-readable constraint, e.g. "0 <= x < 0.5" or "one of: a, b"; empty when none.
  std::string constraint_text() const;
};

/// A plugin's full config schema, in declaration order (the order docs list them).
using Schema = std::vector<ParamSpec>;

/// A validated config table handed to a plugin (or a host section). Every schema key is present,
/// defaults filled in. Immutable; safe to read concurrently.
class Config {
 public:
  Config() = default;
  /// `path` is the TOML path of the table ("judge_rubric", "models.policy"); `iterations` is the
  /// number of iterations per-iteration arrays must cover.
  Config(std::string path, mr::sdk::Table values, int iterations);

  /// TOML path of this table, e.g. "pair_selection".
  const std::string& path() const { return path_; }
  /// Number of iterations of the run this config belongs to (>= 1).
  int iterations() const { return iterations_; }
  bool has(std::string_view key) const;
  /// The raw value (may be an array for a per-iteration key). Throws ConfigError if absent.
  const Value& raw(std::string_view key) const;
  const mr::sdk::Table& values() const { return values_; }

  /// Typed getters. `iteration` is 1-based; for a per-iteration key given as an array it selects
  /// that element, for a scalar it is ignored. Passing 0 for an array-valued key is an error.
  bool get_bool(std::string_view key, int iteration = 0) const;
  std::int64_t get_int(std::string_view key, int iteration = 0) const;
  double get_float(std::string_view key, int iteration = 0) const;
  std::string get_string(std::string_view key, int iteration = 0) const;
  std::vector<std::string> get_string_list(std::string_view key) const;

  /// Throws ConfigError "file:line: [path.key] message" — for semantic checks a schema cannot
  /// express (e.g. "rho must be < 0.5").
  [[noreturn]] void fail(std::string_view key, const std::string& message) const;

 private:
  const Value& at_iteration(std::string_view key, int iteration) const;
  std::string path_;
  mr::sdk::Table values_;
  int iterations_ = 1;
};

}  // namespace mr::sdk
