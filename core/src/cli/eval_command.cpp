// `metareward eval CONFIG [--model DIR] [--set K=V]... [--out DIR] [--iteration N]`: runs a run
// config's [evaluation] plugin on its models (in their roles, with its rubric and meta-judge
// strategy) without training, the way the loop evaluates after an iteration.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <thread>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "metareward/core/artifact_io.hpp"
#include "metareward/core/logging.hpp"
#include "metareward/core/run/run_session.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::core::cli {

namespace po = boost::program_options;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

/// `text` as a TOML basic string, so that any path survives the override parser.
std::string toml_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

/// The model named by roles.actor once `overrides` are applied (the schema default when unset):
/// the model that --model replaces.
std::string actor_model_of(const std::string& file, const std::vector<std::string>& overrides) {
  ConfigDocument doc = parse_config_file(file);
  apply_overrides(doc, overrides);
  if (auto roles = doc.root.find("roles"); roles != doc.root.end() && roles->second.is_table()) {
    const auto& table = roles->second.as_table();
    if (auto actor = table.find("actor"); actor != table.end() && actor->second.is_string())
      return actor->second.as_string();
  }
  for (const auto& [section, schema] : host_sections())
    if (section == "roles")
      for (const auto& spec : schema)
        if (spec.key == "actor") return spec.default_value.as_string();
  return "policy";
}

}  // namespace

int eval_command(const GlobalOptions& globals, const std::vector<std::string>& args) {
  po::options_description options("Options");
  options.add_options()("file", po::value<std::string>()->value_name("FILE"), "Run config (TOML).")(
      "model", po::value<std::string>()->value_name("DIR"),
      "Checkpoint of the actor's model (overrides models.<roles.actor>.path), e.g. a run's "
      "iter_2/model.")("set",
                       po::value<std::vector<std::string>>()->composing()->value_name("KEY=VALUE"),
                       "Override a config value, e.g. --set evaluation.prompts=100 (repeatable).")(
      "out", po::value<std::string>()->value_name("DIR"),
      "Output directory for metrics.json, the evaluator's rows and its cache (default: ./eval); "
      "an existing one is resumed: cached answers and verdicts are not asked for again.")(
      "iteration", po::value<int>()->default_value(0)->value_name("N"),
      "Iteration the models stand for (0 = seed models); selects the evaluation seed.");
  po::positional_options_description positional;
  positional.add("file", 1);
  po::variables_map vm;
  if (!parse_command_args("eval",
                          "FILE [--model DIR] [--set KEY=VALUE]... [--out DIR] [--iteration N]",
                          options, positional, args, vm))
    return 0;
  if (!vm.count("file")) throw UsageError("eval: missing the config FILE argument");
  const int iteration = vm["iteration"].as<int>();
  if (iteration < 0) throw UsageError("eval: --iteration must be >= 0");
  const std::string file = vm["file"].as<std::string>();

  std::vector<std::string> overrides =
      vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
  if (vm.count("model"))
    overrides.push_back("models." + actor_model_of(file, overrides) +
                        ".path=" + toml_string(vm["model"].as<std::string>()));

  PluginRegistry registry;
  const ResolvedConfig resolved = load_run_config(registry, globals, file, overrides);
  const bool has_evaluation =
      std::any_of(resolved.plugin_of.begin(), resolved.plugin_of.end(), [](const auto& entry) {
        return entry.first == "evaluation" || entry.first.rfind("evaluation.", 0) == 0;
      });
  if (!has_evaluation) {
    const auto names = registry.names(sdk::PluginKind::Evaluator);
    std::string available;
    for (const auto& n : names) available += (available.empty() ? "" : ", ") + n;
    throw sdk::ConfigError(file +
                           ": no [evaluation] table; `metareward eval` needs one whose "
                           "'type' names an evaluator plugin (available: " +
                           (available.empty() ? std::string("none loaded") : available) + ")");
  }

  const fs::path out_dir = vm.count("out") ? fs::path(vm["out"].as<std::string>()) : "eval";
  std::error_code ec;
  // Never write into a directory that holds something else (e.g. a mistyped --out); one with
  // an evaluation's cache is an interrupted (or finished) evaluation, resumed from its cache.
  if (fs::exists(out_dir, ec) &&
      (!fs::is_directory(out_dir, ec) ||
       (!fs::is_empty(out_dir, ec) && !fs::exists(out_dir / "metrics.json", ec) &&
        !fs::is_directory(out_dir / "cache", ec))))
    throw sdk::ConfigError("eval: output directory '" + out_dir.string() +
                           "' exists and holds no evaluation (no metrics.json or cache/); "
                           "choose another with --out DIR");
  fs::create_directories(out_dir, ec);
  if (ec) throw sdk::DataError("eval: cannot create '" + out_dir.string() + "': " + ec.message());

  // The same plugin objects, roles and evaluation seed as the run's evaluate stage.
  RunSession session(registry, resolved);
  session.create_text_plugins(/*with_optimizer=*/false);
  session.create_models();
  spdlog::info("evaluating (iteration {}) into {}", iteration, out_dir.string());
  json evaluation = json::object();
  for (const auto& [key, value] : session.evaluate(iteration, out_dir, out_dir / "cache", {}))
    evaluation[key] = value;
  const json document = {{"iteration", iteration}, {"evaluation", evaluation}};
  write_file_atomic(out_dir / "metrics.json", document.dump(2) + "\n");
  std::cout << document.dump(2) << "\n";
  return 0;
}

}  // namespace mr::core::cli
