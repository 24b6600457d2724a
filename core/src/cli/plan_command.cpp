// `metareward plan`: validate a run config like `config check` and print its generation budget
// per iteration (prompts, actor / judge / meta-judge generations, maximum pairs) and its seed
// stage. No model is loaded; prompt and seed data files are read only to count.
#include <fstream>
#include <iostream>

#include "commands.hpp"
#include "metareward/core/prompt_pool.hpp"
#include "metareward/core/run/seed_stage.hpp"
#include "metareward/core/run_plan.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::core::cli {

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace {

/// Why the prompt files cannot give real slice sizes ("" when every file can be read).
std::string unreadable_prompt_files(const PromptPoolOptions& options) {
  if (options.files.empty()) return "prompts.files is empty";
  for (const auto& file : options.files) {
    std::error_code ec;
    if (!fs::exists(file, ec)) return "prompt file '" + file.string() + "' not found";
    if (!fs::is_regular_file(file, ec)) return "'" + file.string() + "' is not a regular file";
    if (!std::ifstream(file)) return "prompt file '" + file.string() + "' is not readable";
  }
  return "";
}

}  // namespace

int plan_command(const GlobalOptions& globals, const std::vector<std::string>& args) {
  po::options_description options("Options");
  options.add_options()("file", po::value<std::string>()->value_name("FILE"), "Run config (TOML).")(
      "set", po::value<std::vector<std::string>>()->composing()->value_name("KEY=VALUE"),
      "Override a config value before validation, e.g. --set run.iterations=2 "
      "(repeatable; VALUE is parsed as TOML, else taken as a string).")(
      "json", "Print the plan as one JSON document instead of a table.");
  po::positional_options_description positional;
  positional.add("file", 1);
  po::variables_map vm;
  if (!parse_command_args("plan", "FILE [--set KEY=VALUE]... [--json]", options, positional, args,
                          vm))
    return 0;
  if (!vm.count("file")) throw UsageError("plan: missing the config FILE argument");

  PluginRegistry registry;
  const ResolvedConfig resolved = load_run_config(
      registry, globals, vm["file"].as<std::string>(),
      vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{});

  // Real slice sizes when the prompt files are there; otherwise per_iteration, marked planned.
  const PromptPoolOptions pool_options = PromptPoolOptions::from_config(resolved);
  std::optional<std::vector<std::int64_t>> actual;
  std::string note = unreadable_prompt_files(pool_options);
  if (note.empty()) {
    const PromptPool pool = PromptPool::load(pool_options);
    actual.emplace();
    for (int t = 1; t <= resolved.iterations; ++t) actual->push_back(pool.slice_size(t));
    note = pool.stats().summary() + "; slice sizes read from the files";
  }
  // The seed stage's examples when its data file is there (a bad file is the run's error).
  std::optional<std::int64_t> seed_examples;
  std::string seed_note;
  if (resolved.plugin_of.count(kSeedStageTable)) {
    const fs::path data = seed_stage_data_file(resolved);
    std::error_code ec;
    if (!fs::is_regular_file(data, ec)) {
      seed_note = "data file '" + data.string() + "' not found";
    } else {
      try {
        const SeedStageData seed = load_seed_stage_data(resolved);
        seed_examples = static_cast<std::int64_t>(seed.examples.size());
        seed_note = seed.stats.summary();
      } catch (const sdk::DataError& e) {
        seed_note = e.what();
      }
    }
  }
  RunPlan plan = plan_run(resolved, actual, seed_examples);
  plan.prompts_note = note;
  plan.seed_note = seed_note;
  std::cout << (vm.count("json") ? format_plan_json(plan) : format_plan_table(plan));
  return 0;
}

}  // namespace mr::core::cli
