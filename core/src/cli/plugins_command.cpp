// `metareward plugins list|describe`: what is loaded, and each plugin's config schema (as text or
// as the Markdown config reference in docs/config_reference.md).
#include <algorithm>
#include <cctype>
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "metareward/core/config_loader.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::core::cli {

namespace po = boost::program_options;

namespace {

/// Where a plugin of `kind` is selected in a run config.
std::string config_table_of(sdk::PluginKind kind) {
  return sdk::plugin_kind_info(kind).config_table;
}

std::string default_text(const sdk::ParamSpec& p) {
  if (p.required) return "(required)";
  if (p.default_value.is_null()) return "";
  return p.default_value.to_toml();
}

/// Defaults too long (prompt templates) or awkward (backticks, pipes) for a table cell are
/// shown in full after the table instead.
bool default_is_long(const sdk::ParamSpec& p) {
  const std::string d = default_text(p);
  return d.size() > 40 || d.find_first_of("`|") != std::string::npos;
}

/// The default as a reader wants to see it: a string's own text, other values as TOML.
std::string default_display(const sdk::ParamSpec& p) {
  return p.default_value.is_string() ? p.default_value.as_string() : p.default_value.to_toml();
}

std::string constraint_text(const sdk::ParamSpec& p) {
  std::string c = p.constraint_text();
  if (p.per_iteration) c += c.empty() ? "per iteration" : "; per iteration";
  return c;
}

std::string origin_of(const RegisteredPlugin& p) {
  std::string s = p.library_name;
  if (!p.library_version.empty()) s += " " + p.library_version;
  if (!p.library_path.empty()) s += " (" + p.library_path.string() + ")";
  return s;
}

/// Text table: one row per key (key, type, default, constraint) with its help indented below.
void print_schema_text(std::ostream& out, const sdk::Schema& schema) {
  if (schema.empty()) {
    out << "  (no config keys besides `type`)\n";
    return;
  }
  std::size_t wk = 3, wt = 4, wd = 7;
  for (const auto& p : schema) {
    wk = std::max(wk, p.key.size());
    wt = std::max(wt, std::string(sdk::param_type_name(p.type)).size());
    wd = std::max(wd, default_is_long(p) ? 11 : default_text(p).size());
  }
  auto row = [&](const std::string& k, const std::string& t, const std::string& d,
                 const std::string& c) {
    std::string line = "  " + k + std::string(wk - k.size() + 2, ' ') + t +
                       std::string(wt - t.size() + 2, ' ') + d +
                       std::string(wd - d.size() + 2, ' ') + c;
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  };
  row("KEY", "TYPE", "DEFAULT", "CONSTRAINT");
  for (const auto& p : schema) {
    const bool long_default = default_is_long(p);
    row(p.key, sdk::param_type_name(p.type), long_default ? "(see below)" : default_text(p),
        constraint_text(p));
    if (!p.help.empty()) out << "      " << p.help << "\n";
    if (long_default) {
      out << "      default:\n";
      std::istringstream lines(default_display(p));
      for (std::string line; std::getline(lines, line);)
        out << (line.empty() ? "" : "        " + line) << "\n";
    }
  }
}

/// A Markdown table cell: pipes escaped, line breaks folded and, outside `code` spans, what
/// Markdown would read as an HTML tag ("<name>") or emphasis ("*") escaped.
std::string cell(const std::string& text) {
  std::string out;
  bool code = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const char next = i + 1 < text.size() ? text[i + 1] : '\0';
    if (c == '`') code = !code;
    if (c == '|')
      out += "\\|";
    else if (c == '\n')
      out += ' ';
    else if (!code && c == '<' &&
             (std::isalpha(static_cast<unsigned char>(next)) || next == '/' || next == '!' ||
              next == '?'))
      out += "&lt;";
    else if (!code && c == '*')
      out += "\\*";
    else
      out += c;
  }
  return out;
}

void print_schema_markdown(std::ostream& out, const sdk::Schema& schema) {
  if (schema.empty()) {
    out << "No config keys besides `type`.\n";
    return;
  }
  out << "| Key | Type | Default | Constraint | Description |\n"
      << "|---|---|---|---|---|\n";
  for (const auto& p : schema) {
    const std::string def = default_text(p);
    out << "| `" << p.key << "` | " << sdk::param_type_name(p.type) << " | "
        << (p.required           ? "*required*"
            : def.empty()        ? ""
            : default_is_long(p) ? "see below"
                                 : cell("`" + def + "`"))
        << " | " << cell(constraint_text(p)) << " | " << cell(p.help) << " |\n";
  }
  for (const auto& p : schema) {
    if (p.required || !default_is_long(p)) continue;
    const std::string text = default_display(p);
    // A fence longer than any backtick run inside the text.
    std::size_t run = 0, longest = 0;
    for (char c : text) longest = std::max(longest, run = c == '`' ? run + 1 : 0);
    const std::string fence(std::max<std::size_t>(3, longest + 1), '`');
    out << "\nDefault `" << p.key << "`:\n\n"
        << fence << "text\n"
        << text << (text.empty() || text.back() != '\n' ? "\n" : "") << fence << "\n";
  }
}

void describe_text(std::ostream& out, const RegisteredPlugin& p) {
  const auto& d = p.descriptor;
  const auto kind = d.kind();
  out << d.name << " (" << sdk::plugin_kind_name(kind) << " plugin, version " << d.version << ")\n"
      << "  " << d.description << "\n"
      << "  library: " << origin_of(p) << "\n"
      << "  select with: [" << config_table_of(kind) << "] type = \"" << d.name << "\"\n\n";
  print_schema_text(out, d.schema);
}

/// `heading` is the Markdown heading prefix ("##" alone, "####" inside the reference).
void describe_markdown(std::ostream& out, const RegisteredPlugin& p, const std::string& heading) {
  const auto& d = p.descriptor;
  out << heading << " `" << d.name << "`\n\n"
      << d.description << "\n\n"
      << "Kind `" << sdk::plugin_kind_name(d.kind()) << "`, version " << d.version
      << ". Select it with `type = \"" << d.name << "\"` in `[" << config_table_of(d.kind())
      << "]`.\n\n";
  print_schema_markdown(out, d.schema);
}

/// The full config reference: host sections, then every plugin grouped by kind. Deterministic
/// and free of machine paths, so that docs/config_reference.md can be compared byte for byte.
void config_reference(std::ostream& out, const PluginRegistry& registry) {
  out << "# Configuration reference\n\n"
      << "<!-- Generated by `metareward plugins describe --all --markdown` (`make docs`). Do not "
         "edit by hand. -->\n\n"
      << "A run is described by one TOML file. It holds the host's own sections (below) and one "
         "table per plugin kind, whose `type` key selects the plugin: `[judge_rubric]`, "
         "`[meta_judge]`, `[pair_selection]`, `[optimizer]`, and one `[models.<name>]` table per "
         "model, each with `type` naming a model backend. The optional `[evaluation]` table "
         "selects an evaluator plugin that measures the models before the first iteration and "
         "after each one (no table: no evaluation; it has no default plugin). Every key not given "
         "takes its default. "
         "Any key can be overridden on the command line with `--set section.key=value` (e.g. "
         "`--set pair_selection.rho=[0.0,0.3,0.3,0.4]`). Keys marked *per iteration* also "
         "accept an array with one value per iteration.\n\n"
      << "Check a file with `metareward config check FILE`; `metareward config show FILE` prints "
         "it with every default filled in.\n\n"
      << "## Host sections\n\n";
  for (const auto& [section, schema] : host_sections()) {
    out << "### `[" << section << "]`\n\n";
    print_schema_markdown(out, schema);
    out << "\n";
  }
  out << "### `[" << kSeedStageTable << "]`\n\n"
      << "Optional: the seed stage, iteration 0 of `metareward run`, fine-tunes the actor's model "
         "once before iteration 1 (the paper's SFT on judge-format EFT data); iteration 1 starts "
         "from its checkpoint `iter_0/model`. `type` selects an optimizer plugin (default `"
      << kSeedStageDefaultType
      << "`), whose keys (below, under optimizer) the table takes too, one value each (no "
         "per-iteration arrays). The host's own keys:\n\n";
  print_schema_markdown(out, seed_stage_host_schema());
  out << "\n";
  out << "## Plugins\n";
  for (const auto& kind_info : sdk::kPluginKinds) {
    const sdk::PluginKind kind = kind_info.kind;
    out << "\n### " << sdk::plugin_kind_name(kind) << "\n\n";
    const auto names = registry.names(kind);
    if (names.empty()) {
      out << "*(none built)*\n";
      continue;
    }
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (i) out << "\n";
      describe_markdown(out, *registry.find(names[i]), "####");
    }
  }
}

std::vector<std::string> all_names(const PluginRegistry& registry) {
  std::vector<std::string> names;
  for (const auto* p : registry.all()) names.push_back(p->descriptor.name);
  return names;
}

}  // namespace

int plugins_list(const GlobalOptions& globals, const std::vector<std::string>& args) {
  po::options_description options("Options");
  po::positional_options_description positional;
  po::variables_map vm;
  if (!parse_command_args("plugins list", "", options, positional, args, vm)) return 0;

  PluginRegistry registry;
  load_search_path(registry, globals);
  std::ostream& out = std::cout;
  out << "Plugin search path:\n";
  for (const auto& dir : plugin_search_path(globals.plugin_dirs)) {
    std::error_code ec;
    out << "  " << dir.string() << (std::filesystem::is_directory(dir, ec) ? "" : " (missing)")
        << "\n";
  }
  for (const auto& kind_info : sdk::kPluginKinds) {
    const sdk::PluginKind kind = kind_info.kind;
    out << "\n" << sdk::plugin_kind_name(kind) << ":\n";
    const auto names = registry.names(kind);
    if (names.empty()) {
      out << "  (none found)\n";
      continue;
    }
    std::size_t width = 0;
    for (const auto& n : names) width = std::max(width, n.size());
    for (const auto& n : names) {
      const RegisteredPlugin& p = *registry.find(n);
      out << "  " << n << std::string(width - n.size() + 2, ' ') << p.descriptor.version << "  "
          << p.descriptor.description << "\n"
          << "  " << std::string(width + 2, ' ') << "from " << origin_of(p) << "\n";
    }
  }
  return 0;
}

int plugins_describe(const GlobalOptions& globals, const std::vector<std::string>& args) {
  po::options_description options("Options");
  options.add_options()("name", po::value<std::string>()->value_name("NAME"), "Plugin name.")(
      "all", "Describe the host sections and every plugin (needs --markdown).")(
      "markdown", "Print Markdown (the format of docs/config_reference.md).");
  po::positional_options_description positional;
  positional.add("name", 1);
  po::variables_map vm;
  if (!parse_command_args("plugins describe", "NAME [--markdown] | --all --markdown", options,
                          positional, args, vm))
    return 0;
  const bool all = vm.count("all") > 0, markdown = vm.count("markdown") > 0;
  if (all == (vm.count("name") > 0))
    throw UsageError("plugins describe: give either a plugin NAME or --all");
  if (all && !markdown)
    throw UsageError("plugins describe: --all needs --markdown (it prints the config reference)");

  PluginRegistry registry;
  load_search_path(registry, globals);
  if (all) {
    config_reference(std::cout, registry);
    return 0;
  }
  const std::string name = vm["name"].as<std::string>();
  const RegisteredPlugin* plugin = registry.find(name);
  if (plugin == nullptr) {
    const std::string suggestion = did_you_mean(name, all_names(registry));
    throw UsageError("unknown plugin '" + name + "'" +
                     (suggestion.empty() ? "" : "; did you mean '" + suggestion + "'?") +
                     " (`metareward plugins list` shows the plugins found)");
  }
  if (markdown)
    describe_markdown(std::cout, *plugin, "##");
  else
    describe_text(std::cout, *plugin);
  return 0;
}

}  // namespace mr::core::cli
