// The run directory's layout and the structural config diff (run_directory.hpp).
#include "metareward/core/run/run_directory.hpp"

#include <algorithm>
#include <sstream>
#include <vector>

#include <toml++/toml.h>
#include <nlohmann/json.hpp>

#include "metareward/core/artifact_io.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::core {

namespace fs = std::filesystem;

fs::path RunDirectory::iteration(int t) const {
  return root_ / ("iter_" + std::to_string(t));
}

fs::path RunDirectory::metrics(int t) const {
  return t == 0 ? iteration(0) / kEval / kMetrics : iteration(t) / kMetrics;
}

bool RunDirectory::holds_run() const {
  std::error_code ec;
  return fs::exists(config_record(), ec);
}

bool RunDirectory::holds_only_interrupted_start() const {
  const std::string leftover = std::string(kConfigRecord) + ".tmp";
  std::error_code ec;
  bool any = false;
  for (const auto& e : fs::directory_iterator(root_, ec)) {
    if (e.path().filename().string().rfind(leftover, 0) != 0) return false;
    any = true;
  }
  return any && !ec;
}

namespace {

/// Why `file`, present, does not mark its stage complete ("" when it does): it must be a JSON
/// object holding `key` (and, for an iteration's record, "iteration" = t). A file truncated or
/// overwritten by something else must not make --resume skip the stage.
std::string marker_problem(const fs::path& file, const char* key, int t) {
  std::string text;
  try {
    text = read_file_text(file);
  } catch (const sdk::DataError&) {
    return "cannot be read";
  }
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded()) return "is not valid JSON";
  if (!doc.is_object()) return "is not a JSON object";
  if (key != nullptr && !doc.contains(key)) return std::string("has no \"") + key + "\"";
  if (t > 0 && !(doc.at("iteration").is_number_integer() && doc.at("iteration").get<int>() == t))
    return "does not record iteration " + std::to_string(t);
  return "";
}

}  // namespace

std::string RunDirectory::completion_problem(int t) const {
  std::error_code ec;
  if (!fs::exists(metrics(t), ec)) return "";
  return marker_problem(metrics(t), t > 0 ? "iteration" : nullptr, t);
}

std::string RunDirectory::seed_stage_problem() const {
  std::error_code ec;
  if (!fs::exists(seed_stage_metrics(), ec)) return "";
  return marker_problem(seed_stage_metrics(), "seed_sft", 0);
}

bool RunDirectory::complete(int t) const {
  std::error_code ec;
  return fs::exists(metrics(t), ec) && completion_problem(t).empty();
}

int RunDirectory::first_incomplete(int iterations) const {
  int t = 1;
  while (t <= iterations && complete(t)) ++t;
  return t;
}

bool RunDirectory::seed_stage_complete() const {
  std::error_code ec;
  return fs::exists(seed_stage_metrics(), ec) && seed_stage_problem().empty();
}

namespace {

/// "x.tmp", "x.tmp.123" (write_file_atomic, the checkpoint writers), and anything a directory
/// artifact's writer names "model.tmp*" / "adapter.tmp*".
bool is_temporary(const std::string& name) {
  for (const char* dir : {RunDirectory::kModel, RunDirectory::kAdapter})
    if (name.rfind(std::string(dir) + ".tmp", 0) == 0) return true;
  const auto pos = name.find(".tmp");
  return pos != std::string::npos && (pos + 4 == name.size() || name[pos + 4] == '.');
}

}  // namespace

namespace {

std::vector<fs::path> remove_temporaries_in(const fs::path& dir, bool files_only) {
  std::vector<fs::path> removed;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!is_temporary(e.path().filename().string())) continue;
    std::error_code type;
    if (files_only && !e.is_regular_file(type)) continue;
    std::error_code rm;
    fs::remove_all(e.path(), rm);
    removed.push_back(e.path());
  }
  return removed;
}

}  // namespace

std::vector<fs::path> RunDirectory::remove_stale_temporaries(int t) const {
  return remove_temporaries_in(iteration(t), /*files_only=*/false);
}

std::vector<fs::path> RunDirectory::remove_stale_root_temporaries() const {
  return remove_temporaries_in(root_, /*files_only=*/true);
}

std::vector<fs::path> RunDirectory::remove_rebuildable_models(int latest) const {
  std::vector<fs::path> removed;
  for (const auto& [t, path] : iteration_dirs(/*with_seed=*/true)) {
    if (t >= latest) break;
    std::error_code ec;
    const fs::path model = path / kModel;
    if (!fs::is_directory(path / kAdapter, ec) || !fs::exists(model, ec)) continue;
    fs::remove_all(model, ec);
    if (ec)
      throw sdk::DataError("cannot remove the merged model '" + model.string() +
                           "' (run.keep_merged_models = false): " + ec.message());
    removed.push_back(model);
  }
  return removed;
}

std::map<int, fs::path> RunDirectory::iteration_dirs(bool with_seed) const {
  std::map<int, fs::path> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    if (!entry.is_directory(ec)) continue;
    const auto t = iteration_number(entry.path().filename().string());
    if (t && (*t > 0 || with_seed)) out[*t] = entry.path();
  }
  return out;
}

std::optional<int> RunDirectory::iteration_number(const std::string& name) {
  if (name.rfind("iter_", 0) != 0) return std::nullopt;
  const std::string digits = name.substr(5);
  if (digits.empty() || digits.size() > 6 || (digits[0] == '0' && digits.size() > 1))
    return std::nullopt;
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return std::stoi(digits);
}

namespace {

/// One leaf of a config: the table it sits in and its "key = value" text.
struct Leaf {
  std::string table;
  std::string line;
};

std::string value_text(const toml::node& node) {
  std::ostringstream out;
  node.visit([&](const auto& v) { out << v; });
  return out.str();
}

/// Every value of `table` by its full dotted path; sub-tables recurse (arrays, arrays of tables
/// included, are one value).
void flatten(const toml::table& table, const std::string& path, std::map<std::string, Leaf>& out) {
  for (const auto& [key, node] : table) {
    const std::string name(key.str());
    const std::string full = path.empty() ? name : path + "." + name;
    if (const toml::table* sub = node.as_table()) {
      flatten(*sub, full, out);
      continue;
    }
    out[full] = {path, name + " = " + value_text(node)};
  }
}

std::map<std::string, Leaf> leaves(const std::string& text) {
  std::map<std::string, Leaf> out;
  try {
    flatten(toml::parse(text), "", out);
  } catch (const toml::parse_error&) {
    out["(not valid TOML)"] = {"", text};
  }
  return out;
}

}  // namespace

std::string config_diff(const std::string& recorded, const std::string& current) {
  const auto a = leaves(recorded), b = leaves(current);
  std::map<std::string, std::vector<std::string>> by_table;
  for (const auto& [path, leaf] : a) {
    auto it = b.find(path);
    if (it == b.end()) {
      by_table[leaf.table].push_back("- " + leaf.line);
    } else if (it->second.line != leaf.line) {
      by_table[leaf.table].push_back("- " + leaf.line);
      by_table[leaf.table].push_back("+ " + it->second.line);
    }
  }
  for (const auto& [path, leaf] : b)
    if (!a.count(path)) by_table[leaf.table].push_back("+ " + leaf.line);
  std::string out;
  for (const auto& [table, lines] : by_table) {
    out += (table.empty() ? std::string("(top level)") : "[" + table + "]") + "\n";
    for (const auto& l : lines) out += "  " + l + "\n";
  }
  return out;
}

}  // namespace mr::core
