// The model session shared by the model commands and `serve` (model_session.hpp).
#include "model_session.hpp"

#include <algorithm>
#include <thread>

#include "metareward/core/distributed/process_group.hpp"
#include "metareward/core/logging.hpp"
#include "metareward/core/run/guarded_plugins.hpp"

namespace mr::core::cli {

namespace po = boost::program_options;
namespace fs = std::filesystem;

void add_model_options(po::options_description& options) {
  options.add_options()("model", po::value<std::string>()->value_name("DIR"),
                        "Model checkpoint directory (HF layout).")(
      "adapter", po::value<std::string>()->value_name("DIR"),
      "LoRA adapter (PEFT layout, e.g. a run's iter_T/adapter) merged into the model's weights "
      "when it loads; sets models.policy.adapter.")(
      "backend", po::value<std::string>()->default_value("torch")->value_name("NAME"),
      "Model backend plugin.")(
      "set", po::value<std::vector<std::string>>()->composing()->value_name("KEY=VALUE"),
      "Override a config value, e.g. --set models.policy.dtype=bfloat16 or "
      "--set optimizer.beta=0.2 (repeatable).")("seed", po::value<std::int64_t>()->default_value(1),
                                                "Seed (run.seed).")(
      "threads", po::value<int>()->default_value(0), "Intra-op threads (0 = all cores).");
}

std::string required(const po::variables_map& vm,
                     const std::string& command,
                     const std::string& key) {
  if (!vm.count(key)) throw UsageError(command + ": --" + key + " is required");
  return vm[key].as<std::string>();
}

void open_session(ModelSession& s,
                  const std::string& command,
                  const GlobalOptions& globals,
                  const po::variables_map& vm,
                  const std::string& optimizer_name) {
  resolve_session(s, command, globals, vm, optimizer_name);
  create_session_plugins(s);
}

void resolve_session(ModelSession& s,
                     const std::string& command,
                     const GlobalOptions& globals,
                     const po::variables_map& vm,
                     const std::string& optimizer_name) {
  const std::string model = required(vm, command, "model");
  s.optimizer_name = optimizer_name;
  s.seed = static_cast<std::uint64_t>(std::max<std::int64_t>(0, vm["seed"].as<std::int64_t>()));
  const int threads = vm["threads"].as<int>();
  s.threads =
      threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Ranks of one machine (train-dpo / sft under a launcher) share its cores, as in `run`.
  s.threads = std::max(1, s.threads / read_world_env().local_world_size);

  sdk::Table policy;
  policy["type"] = sdk::Value(vm["backend"].as<std::string>());
  policy["path"] = sdk::Value(model);
  // The backend merges it at load; validated by the backend's schema like any --set key.
  if (vm.count("adapter")) policy["adapter"] = sdk::Value(vm["adapter"].as<std::string>());
  sdk::Table models;
  models["policy"] = sdk::Value(std::move(policy));
  sdk::Table run;
  run["iterations"] = sdk::Value(1);
  run["seed"] = sdk::Value(static_cast<std::int64_t>(s.seed));
  ConfigDocument doc;
  doc.file = command;
  doc.root["run"] = sdk::Value(std::move(run));
  doc.root["models"] = sdk::Value(std::move(models));
  if (!optimizer_name.empty()) {
    sdk::Table optimizer;
    optimizer["type"] = sdk::Value(optimizer_name);
    doc.root["optimizer"] = sdk::Value(std::move(optimizer));
  }
  if (vm.count("set")) apply_overrides(doc, vm["set"].as<std::vector<std::string>>());

  load_search_path(s.registry, globals);
  ResolveOptions options;
  options.default_plugin_tables = false;  // Only the tables built above are needed.
  s.resolved = resolve_config(doc, s.registry, options);
}

void create_session_plugins(ModelSession& s) {
  const RegisteredPlugin* backend = s.registry.find(s.resolved.plugin_of.at("models.policy"));
  auto backend_ctx = std::make_shared<PluginHostContext>(
      "models.policy", s.resolved.section("models.policy"), s.seed, fs::path(), s.threads);
  // Guarded: a backend failure names the plugin, its library and the call.
  s.backend =
      guard_plugin(create_plugin<sdk::ModelBackend>(*backend, backend_ctx), *backend, nullptr);
  if (!s.optimizer_name.empty()) {
    const RegisteredPlugin* opt = s.registry.find(s.resolved.plugin_of.at("optimizer"));
    auto opt_ctx = std::make_shared<PluginHostContext>(
        opt->descriptor.name, s.resolved.section("optimizer"), s.seed, fs::path(), s.threads);
    s.optimizer = guard_plugin(create_plugin<sdk::Optimizer>(*opt, opt_ctx), *opt, nullptr);
  }
}

}  // namespace mr::core::cli
