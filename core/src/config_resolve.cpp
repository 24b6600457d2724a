// Validating a parsed config against the host schema and the plugins' schemas and filling
// defaults (config_write.cpp writes the result back as TOML). Every problem is collected first
// so that a user fixes a config in one round instead of one error per run.
#include <algorithm>
#include <optional>

#include "config_text.hpp"
#include "metareward/core/config_loader.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::core {

namespace {

using sdk::Array;
using sdk::ConfigError;
using sdk::ParamSpec;
using sdk::ParamType;
using sdk::PluginKind;
using sdk::Schema;
using sdk::SourceRef;
using sdk::Table;
using sdk::Value;

// The top-level tables that select one plugin with `type`: every kind of the SDK's kind table
// except the model backends (one [models.NAME] table each). An absent table gets the kind's
// default plugin; an optional kind (no default, the evaluator) is left out.
struct PluginSlot {
  const char* path;
  PluginKind kind;
  const char* default_type;
};

const std::vector<PluginSlot>& plugin_slots() {
  static const std::vector<PluginSlot> slots = [] {
    std::vector<PluginSlot> out;
    for (const auto& k : sdk::kPluginKinds)
      if (k.kind != PluginKind::ModelBackend)
        out.push_back({k.config_table, k.kind, k.default_plugin});
    return out;
  }();
  return slots;
}

const std::vector<std::string>& top_level_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out = {"run",        "prompts", "plugins",    "roles",
                                    "generation", "models",  "distributed"};
    for (const auto& slot : plugin_slots()) out.push_back(slot.path);
    out.push_back(kSeedStageTable);
    return out;
  }();
  return names;
}

// Far above any real run; keeps iteration counts within int.
constexpr std::int64_t kMaxIterations = 1000000;

const std::vector<std::string> kGenerationRoles = {"actor", "judge", "meta_judge"};

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out;
}

// "string \"7\"": the kind and a (shortened) literal, for "expected X, got Y" messages.
std::string describe_value(const Value& v) {
  std::string text = v.to_toml();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return std::string(sdk::kind_name(v.kind())) + " " + text;
}

// "; did you mean 'x'?" when a candidate is close to `word`, else "".
std::string hint(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best = did_you_mean(word, candidates);
  return best.empty() ? "" : "; did you mean '" + best + "'?";
}

// "an optimizer", "a judge_rubric".
std::string with_article(const std::string& noun) {
  bool vowel = !noun.empty() && std::string("aeiou").find(noun[0]) != std::string::npos;
  return (vowel ? "an " : "a ") + noun;
}

// One error, kept with its position so the report can list them in file order.
struct Issue {
  SourceRef where;
  std::string text;
};

class IssueList {
 public:
  explicit IssueList(std::string file) : file_(std::move(file)) {}

  void add(const SourceRef& where, const std::string& path, const std::string& message) {
    issues_.push_back({where, "[" + path + "] " + message});
  }
  bool empty() const { return issues_.empty(); }

  void throw_if_any() const {
    if (issues_.empty()) return;
    std::vector<Issue> sorted = issues_;
    // Positions in the config file first, in file order; then --set and defaults, as found.
    auto rank = [&](const Issue& i) { return i.where.file == file_ && i.where.line > 0 ? 0 : 1; };
    std::stable_sort(sorted.begin(), sorted.end(), [&](const Issue& a, const Issue& b) {
      if (rank(a) != rank(b)) return rank(a) < rank(b);
      if (rank(a) == 1) return false;
      if (a.where.line != b.where.line) return a.where.line < b.where.line;
      return a.where.column < b.where.column;
    });
    std::string message = std::to_string(sorted.size()) + " error(s) in " + file_ + ":";
    for (const auto& issue : sorted)
      message +=
          "\n" + (issue.where.file.empty() ? file_ : issue.where.describe()) + ": " + issue.text;
    throw ConfigError(message);
  }

 private:
  std::string file_;
  std::vector<Issue> issues_;
};

using detail::find_in;

class Resolver {
 public:
  Resolver(const ConfigDocument& doc, const PluginCatalog& catalog, const ResolveOptions& options)
      : doc_(doc), catalog_(catalog), options_(options), file_(doc.file.string()), issues_(file_) {}

  ResolvedConfig run() {
    iterations_ = declared_iterations();
    check_top_level();

    ResolvedConfig out;
    out.file = doc_.file;
    Table root;

    // Host sections; generation.* nest under one [generation] table.
    const Value* generation = section_value(doc_.root, "generation", "");
    Table generation_out;
    if (generation) check_unknown(*generation, "generation", kGenerationRoles, "", "keys");
    for (const auto& [path, schema] : host_sections()) {
      auto dot = path.find('.');
      const Value* given = nullptr;
      if (dot == std::string::npos) {
        given = section_value(doc_.root, path, "");
      } else if (generation && generation->is_table()) {
        given = section_value(generation->as_table(), path.substr(dot + 1), "generation");
      }
      Value table = resolve_table(path, given, schema, "", {});
      out.sections.emplace(path, sdk::Config(path, table.as_table(), iterations_or_one()));
      if (dot == std::string::npos)
        root.emplace(path, std::move(table));
      else
        generation_out.emplace(path.substr(dot + 1), std::move(table));
    }
    Value generation_value{std::move(generation_out)};
    if (generation) generation_value.set_source(generation->source());
    root.emplace("generation", std::move(generation_value));

    // Model backends: [models.<name>], at least one.
    const Value* models = section_value(doc_.root, "models", "");
    Table models_out;
    std::vector<std::string> model_names;
    if (models && models->is_table()) {
      for (const auto& [name, entry] : models->as_table()) {
        model_names.push_back(name);
        std::string path = detail::join_path("models", name);
        if (!entry.is_table()) {
          issues_.add(entry.source(), path,
                      "expected a table with a 'type' key (a model_backend plugin), got " +
                          describe_value(entry));
          continue;
        }
        if (auto resolved = resolve_plugin(path, PluginKind::ModelBackend, &entry, nullptr, out))
          models_out.emplace(name, std::move(*resolved));
      }
    }
    if (model_names.empty() && (!models || models->is_table())) {
      issues_.add(models ? models->source() : SourceRef{}, "models",
                  "no model is defined; add a [models.<name>] table whose 'type' names a "
                  "model_backend plugin (available: " +
                      available(PluginKind::ModelBackend) + ")");
    }
    Value models_value{std::move(models_out)};
    if (models) models_value.set_source(models->source());
    root.emplace("models", std::move(models_value));

    check_roles(root, model_names);

    for (const auto& slot : plugin_slots()) {
      const Value* given = section_value(doc_.root, slot.path, "");
      if (given == nullptr && (!options_.default_plugin_tables || slot.default_type == nullptr))
        continue;
      if (slot.kind == PluginKind::Evaluator && given != nullptr && is_evaluator_set(*given)) {
        // [evaluation.NAME] tables: several evaluators, each its own plugin and table.
        Table set;
        for (const auto& [name, entry] : given->as_table()) {
          const std::string path = detail::join_path(slot.path, name);
          if (auto resolved = resolve_plugin(path, slot.kind, &entry, nullptr, out))
            set.emplace(name, std::move(*resolved));
        }
        Value set_value{std::move(set)};
        set_value.set_source(given->source());
        root.emplace(slot.path, std::move(set_value));
        continue;
      }
      if (auto resolved = resolve_plugin(slot.path, slot.kind, given, slot.default_type, out))
        root.emplace(slot.path, std::move(*resolved));
    }

    // [seed_sft]: optional; an optimizer plugin's table plus the host's keys, trained once.
    if (const Value* given = section_value(doc_.root, kSeedStageTable, "")) {
      if (auto resolved = resolve_plugin(kSeedStageTable, PluginKind::Optimizer, given,
                                         kSeedStageDefaultType, out, &seed_stage_host_schema()))
        root.emplace(kSeedStageTable, std::move(*resolved));
    }

    issues_.throw_if_any();
    out.iterations = iterations_;
    out.root = std::move(root);
    return out;
  }

 private:
  // run.iterations as given (or its default) when valid, else 0: length checks of per-iteration
  // arrays are skipped when the count itself is broken (that error is reported on its own).
  int declared_iterations() {
    const Value* run = find_in(doc_.root, "run");
    if (run && !run->is_table()) return 0;
    const Value* iterations = run ? find_in(run->as_table(), "iterations") : nullptr;
    if (!iterations) {
      for (const auto& [path, schema] : host_sections())
        for (const auto& spec : schema)
          if (path == "run" && spec.key == "iterations")
            return static_cast<int>(spec.default_value.as_int());
      return 0;
    }
    if (!iterations->is_int() || iterations->as_int() < 1) return 0;  // reported by the schema
    if (iterations->as_int() > kMaxIterations) {
      issues_.add(
          iterations->source(), "run.iterations",
          iterations->to_toml() + " is too large (at most " + std::to_string(kMaxIterations) + ")");
      return 0;
    }
    return static_cast<int>(iterations->as_int());
  }
  int iterations_or_one() const { return iterations_ > 0 ? iterations_ : 1; }

  void check_top_level() {
    for (const auto& [key, value] : doc_.root) {
      const auto& names = top_level_names();
      if (std::find(names.begin(), names.end(), key) != names.end()) continue;
      std::string path = detail::toml_key(key);
      if (!value.is_table()) {
        // A common slip: a section key written before any [section] header.
        std::string owner;
        for (const auto& [section, schema] : host_sections())
          for (const auto& spec : schema)
            if (spec.key == key && owner.empty()) owner = section;
        if (!owner.empty()) {
          issues_.add(
              value.source(), path,
              "unknown top-level key '" + key + "'; it belongs in the [" + owner + "] section");
          continue;
        }
        issues_.add(value.source(), path,
                    "unknown top-level key '" + key + "'" + hint(key, names) +
                        " (valid sections: " + join(names) + ")");
        continue;
      }
      issues_.add(value.source(), path,
                  "unknown section '" + key + "'" + hint(key, names) +
                      " (valid sections: " + join(names) + ")");
    }
  }

  // The value of section `key` inside `table`, or nullptr when absent or not a table (the latter
  // is reported here).
  const Value* section_value(const Table& table,
                             const std::string& key,
                             const std::string& parent) {
    const Value* value = find_in(table, key);
    if (!value) return nullptr;
    if (!value->is_table()) {
      issues_.add(value->source(), detail::join_path(parent, key),
                  "expected a table, got " + describe_value(*value));
      return nullptr;
    }
    return value;
  }

  // Reports keys of `given` that are neither in `valid` nor in `extra`.
  void check_unknown(const Value& given,
                     const std::string& path,
                     const std::vector<std::string>& valid,
                     const std::string& owner,
                     const char* noun) {
    if (!given.is_table()) return;
    for (const auto& [key, value] : given.as_table()) {
      if (std::find(valid.begin(), valid.end(), key) != valid.end()) continue;
      issues_.add(value.source(), detail::join_path(path, key),
                  "unknown key '" + key + "'" + (owner.empty() ? "" : " for " + owner) +
                      hint(key, valid) + " (valid " + noun + ": " +
                      (valid.empty() ? "none" : join(valid)) + ")");
    }
  }

  // Validates `given` (may be null = absent) against `schema` and returns the table with every
  // schema key filled; keys in `extra` (e.g. `type`) are allowed and left to the caller.
  Value resolve_table(const std::string& path,
                      const Value* given,
                      const Schema& schema,
                      const std::string& owner,
                      const std::vector<std::string>& extra) {
    Table out;
    const Table empty;
    std::optional<Value> grouped;
    if (given) grouped = expand_grouped_keys(path, *given, schema);
    if (grouped) given = &*grouped;
    const Table& table = given ? given->as_table() : empty;
    SourceRef table_source = given ? given->source() : SourceRef{};
    for (const auto& spec : schema) {
      const Value* value = find_in(table, spec.key);
      if (value) {
        if (auto checked = check_value(spec, *value, detail::join_path(path, spec.key)))
          out.insert_or_assign(spec.key, std::move(*checked));
      } else if (spec.required) {
        issues_.add(table_source, detail::join_path(path, spec.key),
                    "missing required key '" + spec.key + "'" +
                        (owner.empty() ? "" : " for " + owner) + " (" +
                        sdk::param_type_name(spec.type) +
                        (spec.help.empty() ? "" : ": " + spec.help) + ")");
      } else {
        out.insert_or_assign(spec.key, spec.default_value);
      }
    }
    if (given) {
      std::vector<std::string> valid = extra;
      for (const auto& spec : schema) valid.push_back(spec.key);
      check_unknown(*given, path, valid, owner, "keys");
    }
    Value result{std::move(out)};
    result.set_source(table_source);
    return result;
  }

  // A group of keys sharing a prefix may be written as one inline table:
  // `lora = { r = 16, alpha = 32 }` is `lora = true, lora_r = 16, lora_alpha = 32` when the
  // schema has a bool `lora` and `lora_*` keys (the `lora` switch is only set when it exists).
  // Returns nullopt when `given` has no such table.
  std::optional<Value> expand_grouped_keys(const std::string& path,
                                           const Value& given,
                                           const Schema& schema) {
    if (!given.is_table()) return std::nullopt;
    const auto has_prefix = [&](const std::string& key) {
      for (const auto& spec : schema)
        if (spec.key.rfind(key + "_", 0) == 0) return true;
      return false;
    };
    bool any = false;
    for (const auto& [key, value] : given.as_table())
      any = any || (value.is_table() && has_prefix(key));
    if (!any) return std::nullopt;
    Table out;
    for (const auto& [key, value] : given.as_table())
      if (!(value.is_table() && has_prefix(key))) out.insert_or_assign(key, value);
    for (const auto& [key, value] : given.as_table()) {
      if (!(value.is_table() && has_prefix(key))) continue;
      // A named reference: clang before 16 cannot capture a structured binding in a lambda.
      const std::string& group = key;
      const bool has_switch = std::any_of(schema.begin(), schema.end(), [&](const ParamSpec& s) {
        return s.key == group && s.type == sdk::ParamType::Bool;
      });
      if (has_switch) {
        Value on(true);
        on.set_source(value.source());
        out.insert_or_assign(key, std::move(on));
      }
      for (const auto& [sub, sub_value] : value.as_table()) {
        const std::string flat = key + "_" + sub;
        if (out.count(flat) != 0) {
          issues_.add(
              sub_value.source(), detail::join_path(path, key + "." + sub),
              "'" + flat + "' is given twice (as " + key + "." + sub + " and as " + flat + ")");
          continue;
        }
        out.insert_or_assign(flat, sub_value);
      }
    }
    Value result{std::move(out)};
    result.set_source(given.source());
    return result;
  }

  std::optional<Value> check_value(const ParamSpec& spec,
                                   const Value& value,
                                   const std::string& path) {
    const char* type = sdk::param_type_name(spec.type);
    if (spec.type == ParamType::StringList) {
      if (value.is_string()) {  // One string = a list of one (`base_url = "http://..."`).
        Value list{std::vector<Value>{value}};
        list.set_source(value.source());
        return list;
      }
      if (!value.is_array()) {
        issues_.add(value.source(), path,
                    std::string("expected ") + type + ", got " + describe_value(value));
        return std::nullopt;
      }
      bool ok = true;
      const auto& items = value.as_array();
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (!check_scalar(spec, items[i], path, "element " + std::to_string(i + 1) + ": "))
          ok = false;
      }
      if (!ok) return std::nullopt;
      return value;
    }
    if (value.is_array()) {
      if (!spec.per_iteration) {
        issues_.add(value.source(), path,
                    std::string("expected ") + type + ", got " + describe_value(value) +
                        " (this key cannot be given per iteration)");
        return std::nullopt;
      }
      bool ok = true;
      Array checked;
      const auto& items = value.as_array();
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (auto element =
                check_scalar(spec, items[i], path, "iteration " + std::to_string(i + 1) + ": "))
          checked.push_back(std::move(*element));
        else
          ok = false;
      }
      if (iterations_ > 0 && items.size() < static_cast<std::size_t>(iterations_)) {
        issues_.add(value.source(), path,
                    "has " + std::to_string(items.size()) +
                        " per-iteration values but run.iterations is " +
                        std::to_string(iterations_));
        ok = false;
      }
      if (!ok) return std::nullopt;
      Value result{std::move(checked)};
      result.set_source(value.source());
      return result;
    }
    return check_scalar(spec, value, path, "");
  }

  // Checks one scalar (or one element of a list) against the spec's type and constraints;
  // returns it normalised (an integer given for a float becomes a float).
  std::optional<Value> check_scalar(const ParamSpec& spec,
                                    const Value& value,
                                    const std::string& path,
                                    const std::string& prefix) {
    bool type_ok = false;
    const char* wanted = sdk::param_type_name(spec.type);
    switch (spec.type) {
      case ParamType::Bool:
        type_ok = value.is_bool();
        break;
      case ParamType::Int:
        type_ok = value.is_int();
        break;
      case ParamType::Float:
        type_ok = value.is_number();
        break;
      case ParamType::String:
      case ParamType::StringList:
        type_ok = value.is_string();
        wanted = "string";
        break;
    }
    if (!type_ok) {
      issues_.add(value.source(), path,
                  prefix + "expected " + wanted + ", got " + describe_value(value));
      return std::nullopt;
    }
    if (spec.type == ParamType::Int || spec.type == ParamType::Float) {
      double x = value.as_float();
      // Written as negations so that nan fails every bound.
      bool bad = (spec.min && (spec.min_exclusive ? !(x > *spec.min) : !(x >= *spec.min))) ||
                 (spec.max && (spec.max_exclusive ? !(x < *spec.max) : !(x <= *spec.max)));
      if (bad) {
        issues_.add(value.source(), path,
                    prefix + value.to_toml() + " is out of range (" + spec.constraint_text() + ")");
        return std::nullopt;
      }
    }
    if (value.is_string() && !spec.choices.empty() &&
        std::find(spec.choices.begin(), spec.choices.end(), value.as_string()) ==
            spec.choices.end()) {
      std::string hint = did_you_mean(value.as_string(), spec.choices);
      issues_.add(value.source(), path,
                  prefix + value.to_toml() + " is not " + spec.constraint_text() +
                      (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
      return std::nullopt;
    }
    if (spec.type == ParamType::Float && value.is_int()) {
      Value normalised(value.as_float());
      normalised.set_source(value.source());
      return normalised;
    }
    return value;
  }

  std::string available(PluginKind kind) const {
    auto names = catalog_.names(kind);
    return names.empty() ? "none loaded" : join(names);
  }

  // Selects and validates the plugin of table `path`; records its section and plugin name.
  // With `host_keys` (a plugin table the host also reads, e.g. [seed_sft]) those keys are
  // validated too and kept out of the plugin's section, and no key may be per-iteration: the
  // table describes one training run.
  std::optional<Value> resolve_plugin(const std::string& path,
                                      PluginKind kind,
                                      const Value* given,
                                      const char* default_type,
                                      ResolvedConfig& out,
                                      const Schema* host_keys = nullptr) {
    const std::string kind_name = sdk::plugin_kind_name(kind);
    const std::string type_path = path + ".type";
    std::string name;
    Value type_value;
    const Value* type = given ? find_in(given->as_table(), "type") : nullptr;
    if (type) {
      if (!type->is_string()) {
        issues_.add(type->source(), type_path,
                    "expected string (the name of " + with_article(kind_name) + " plugin), got " +
                        describe_value(*type));
        return std::nullopt;
      }
      name = type->as_string();
      type_value = *type;
    } else if (default_type) {
      name = default_type;
      type_value = Value(name);
    } else {
      issues_.add(given ? given->source() : SourceRef{}, type_path,
                  "missing required key 'type' (the " + kind_name +
                      " plugin to use; available: " + available(kind) + ")");
      return std::nullopt;
    }

    const RegisteredPlugin* plugin = catalog_.find(name);
    if (!plugin || plugin->descriptor.kind() != kind) {
      SourceRef where = type ? type->source() : SourceRef{};
      if (plugin) {
        issues_.add(where, type_path,
                    "'" + name + "' is " +
                        with_article(sdk::plugin_kind_name(plugin->descriptor.kind())) +
                        " plugin, not " + with_article(kind_name) + " (available " + kind_name +
                        " plugins: " + available(kind) + ")");
      } else if (type) {
        std::string best = did_you_mean(name, catalog_.names(kind));
        issues_.add(where, type_path,
                    "unknown " + kind_name + " '" + name + "' (" +
                        (best.empty() ? "" : "did you mean '" + best + "'? ") +
                        "available: " + available(kind) + ")");
      } else {
        issues_.add(where, type_path,
                    "the default " + kind_name + " '" + name +
                        "' is not loaded; set 'type' to one of the available plugins (" +
                        available(kind) + ")");
      }
      return std::nullopt;
    }

    Schema schema = plugin->descriptor.schema;
    std::string owner = kind_name + " '" + name + "'";
    if (host_keys) {
      for (auto& spec : schema) spec.per_iteration = false;
      schema.insert(schema.begin(), host_keys->begin(), host_keys->end());
      owner = "[" + path + "] (" + owner + ")";
    }
    Value table = resolve_table(path, given, schema, owner, {"type"});
    Table plugin_values = table.as_table();
    if (host_keys)
      for (const auto& spec : *host_keys) plugin_values.erase(spec.key);
    out.sections.emplace(path, sdk::Config(path, std::move(plugin_values), iterations_or_one()));
    out.plugin_of.emplace(path, name);
    table.as_table().insert_or_assign("type", type_value);
    return table;
  }

  /// True when an [evaluation] table holds no `type` and only sub-tables ([evaluation.NAME]).
  static bool is_evaluator_set(const Value& given) {
    if (!given.is_table() || given.as_table().empty() || find_in(given.as_table(), "type"))
      return false;
    for (const auto& [name, entry] : given.as_table())
      if (!entry.is_table()) return false;
    return true;
  }

  // roles.* must name a [models.<name>] table.
  void check_roles(const Table& root, const std::vector<std::string>& model_names) {
    if (model_names.empty()) return;  // "no model is defined" already says it all
    const Table& roles = root.at("roles").as_table();
    for (const auto& role : {"actor", "judge", "meta_judge", "train"}) {
      const Value* value = find_in(roles, role);
      if (!value || !value->is_string()) continue;  // a type error was reported
      const std::string& model = value->as_string();
      if (model.empty() && std::string(role) == "train") continue;  // = the actor's model
      if (std::find(model_names.begin(), model_names.end(), model) != model_names.end()) continue;
      issues_.add(value->source(), std::string("roles.") + role,
                  "model '" + model + "' is not defined" + hint(model, model_names) +
                      " (defined models: " + join(model_names) + ")");
    }
    if (const Value* list = find_in(roles, "policy_models"); list && list->is_array())
      for (const Value& item : list->as_array()) {
        if (!item.is_string()) continue;  // a type error was reported
        const std::string& model = item.as_string();
        if (std::find(model_names.begin(), model_names.end(), model) != model_names.end()) continue;
        issues_.add(item.source(), "roles.policy_models",
                    "model '" + model + "' is not defined" + hint(model, model_names) +
                        " (defined models: " + join(model_names) + ")");
      }
  }

  const ConfigDocument& doc_;
  const PluginCatalog& catalog_;
  ResolveOptions options_;
  std::string file_;
  IssueList issues_;
  int iterations_ = 0;
};

}  // namespace

ResolvedConfig resolve_config(const ConfigDocument& doc,
                              const PluginCatalog& plugins,
                              const ResolveOptions& options) {
  return Resolver(doc, plugins, options).run();
}

const sdk::Config& ResolvedConfig::section(const std::string& path) const {
  auto it = sections.find(path);
  if (it == sections.end()) {
    std::vector<std::string> names;
    for (const auto& [name, config] : sections) names.push_back(name);
    throw ConfigError("no config section '" + path + "'" + hint(path, names) +
                      " (sections: " + join(names) + ")");
  }
  return it->second;
}

}  // namespace mr::core
