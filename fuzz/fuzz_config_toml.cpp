// libFuzzer harness: a run's TOML config through the host's whole config path: parse
// (toml++ -> sdk::Table), `--set` overrides, validation against the host schema and the real
// recipe plugins' schemas (plus stand-ins for the libtorch backend and optimizers), resolution,
// and the resolved TOML a run records, read back by the resume check (config_diff). Lines of the
// input starting with "#set " (TOML comments, so seeds stay valid configs) are also applied as
// `--set` overrides. Every problem must be an sdk::ConfigError (an sdk::Error); a resolved config
// must write TOML that parses again and differs from itself by nothing.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "fuzz_support.hpp"
#include "metareward/core/config_loader.hpp"
#include "metareward/core/plugin_registry.hpp"
#include "metareward/core/run/run_directory.hpp"
#include "metareward/sdk/error.hpp"
#include "recipe_plugins.hpp"

namespace {

using mr::sdk::ParamSpec;
using mr::sdk::ParamType;

// Schemas shaped like the plugins this build does not have (libtorch backend and optimizers, the
// openai backend, the testbed evaluator), with the keys the shipped configs use. No factories:
// the harness validates, it never constructs a plugin.
template <class Interface>
void stand_in(mr::sdk::Registrar& r, const char* name, mr::sdk::Schema schema) {
  r.add(mr::sdk::PluginDescriptor{name, "0", "stand-in", std::move(schema),
                                  mr::sdk::AnyFactory(mr::sdk::Factory<Interface>{})});
}

void register_stand_ins(mr::sdk::Registrar& r) {
  stand_in<mr::sdk::ModelBackend>(
      r, "torch",
      {ParamSpec::required_("path", ParamType::String, "Checkpoint directory."),
       ParamSpec::string_("dtype", "bfloat16", "Weight dtype.")
           .one_of({"float32", "bfloat16", "float16"}),
       ParamSpec::string_("chat_template", "auto", "Chat format."),
       ParamSpec::int_("max_batch_size", 16, "Batch size.").range(1, std::nullopt),
       ParamSpec::int_("max_seq_len", 4096, "Longest sequence.").range(1, std::nullopt)});
  stand_in<mr::sdk::ModelBackend>(
      r, "openai",
      {ParamSpec::string_list("launch", {}, "Server command line."),
       ParamSpec::string_("path", "", "Model directory."),
       ParamSpec::string_("base_url", "", "Server URL."),
       ParamSpec::int_("servers", 1, "Managed servers.").range(1, 64),
       ParamSpec::int_("concurrency", 8, "Requests in flight.").range(1, std::nullopt),
       ParamSpec::bool_("stop_during_training", false, "Stop servers while training.")});
  for (const char* name : {"dpo", "sft"})
    stand_in<mr::sdk::Optimizer>(
        r, name,
        {ParamSpec::float_("beta", 0.1, "DPO temperature.").range(0.0, std::nullopt, true),
         ParamSpec::float_("learning_rate", 5e-6, "Learning rate.")
             .range(0.0, std::nullopt, true)
             .per_iteration_allowed(),
         ParamSpec::string_("lr_schedule", "constant", "Schedule.")
             .one_of({"constant", "cosine", "linear"}),
         ParamSpec::float_("min_learning_rate", 0.0, "Floor.").range(0.0, std::nullopt),
         ParamSpec::int_("batch_size", 8, "Pairs per step.").range(1, std::nullopt),
         ParamSpec::float_("dropout", 0.0, "Dropout.").range(0.0, 1.0, false, true),
         ParamSpec::int_("epochs", 1, "Epochs per iteration.").range(1, std::nullopt),
         ParamSpec::int_("max_length", 2048, "Longest sequence.").range(1, std::nullopt),
         ParamSpec::string_list("stop_words", {}, "Words that end a response.")});
  stand_in<mr::sdk::Evaluator>(
      r, "testbed",
      {ParamSpec::required_("prompts", ParamType::String, "Held-out prompts."),
       ParamSpec::int_("max_prompts", 200, "Prompts evaluated.").range(1, std::nullopt),
       ParamSpec::int_("actor_max_new_tokens", 96, "Actor tokens.").range(1, std::nullopt),
       ParamSpec::int_("judge_max_new_tokens", 48, "Judge tokens.").range(1, std::nullopt),
       ParamSpec::int_("meta_judge_max_new_tokens", 32, "Meta-judge tokens.")
           .range(1, std::nullopt),
       ParamSpec::int_("judge_pairs", 50, "Judge pairs.").range(0, std::nullopt),
       ParamSpec::int_("batch_size", 64, "Batch size.").range(1, std::nullopt)});
}

const mr::core::PluginRegistry& registry() {
  static const mr::core::PluginRegistry* r = [] {
    auto* reg = new mr::core::PluginRegistry();  // lives for the process, like the host's
    reg->register_static(&mr::plugins::recipe::register_recipe_plugins, "mr-recipe");
    reg->register_static(&register_stand_ins, "fuzz-stand-ins");
    return reg;
  }();
  return *r;
}

std::vector<std::string> set_lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    if (text.compare(pos, 5, "#set ") == 0) out.push_back(text.substr(pos + 5, end - pos - 5));
    pos = end + 1;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  (void)registry();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(mr::fuzz::as_text(data, size));
  std::string resolved_text;
  try {
    auto doc = mr::core::parse_config_text(text, "fuzz.toml");
    mr::core::apply_overrides(doc, set_lines(text));
    const auto resolved = mr::core::resolve_config(doc, registry());
    resolved_text = resolved.to_toml();
    (void)mr::core::resolve_config(doc, registry(), mr::core::ResolveOptions{false});
  } catch (const mr::sdk::Error&) {
    return 0;  // the documented outcome: ConfigError naming file:line:col and the TOML path
  }
  // What a run records must read back (resume compares it with config_diff).
  try {
    (void)mr::core::parse_config_text(resolved_text, "config.resolved.toml");
  } catch (const mr::sdk::Error& e) {
    std::fprintf(stderr, "%s\n--- resolved ---\n%s\n", e.what(), resolved_text.c_str());
    MR_FUZZ_CHECK(false, "the resolved config does not parse again");
  }
  MR_FUZZ_CHECK(mr::core::config_diff(resolved_text, resolved_text).empty(),
                "config_diff of the resolved config with itself is not empty");
  return 0;
}
