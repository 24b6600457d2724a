/// @file config_test_catalog.hpp
/// A hand-made PluginCatalog for config tests: descriptors with realistic schemas and no
/// factories, so config validation is tested without loading any plugin library.
#pragma once

#include <algorithm>
#include <functional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "metareward/sdk/error.hpp"

#include "metareward/core/config_loader.hpp"
#include "metareward/core/plugin_registry.hpp"

namespace mr::test {

/// Fake catalog: model_backend torch, fake; judge_rubric additive5, likert10; meta_judge
/// pairwise_elo; pair_selection length_control; optimizer dpo; evaluator oracle. Names in `omit`
/// are left out.
class FakeCatalog : public core::PluginCatalog {
 public:
  explicit FakeCatalog(std::set<std::string> omit = {}) {
    using sdk::ParamSpec;
    using sdk::ParamType;
    add(sdk::Factory<sdk::ModelBackend>{}, "torch",
        {ParamSpec::required_("path", ParamType::String, "Checkpoint directory."),
         ParamSpec::string_("dtype", "bfloat16", "Weight dtype.")
             .one_of({"float32", "bfloat16", "float16"}),
         ParamSpec::int_("max_seq_len", 4096, "Longest sequence.").range(1, std::nullopt)},
        omit);
    add(sdk::Factory<sdk::ModelBackend>{}, "fake",
        {ParamSpec::int_("vocab", 32, "Vocabulary size.").range(2, std::nullopt)}, omit);
    add(sdk::Factory<sdk::JudgeRubric>{}, "additive5",
        {ParamSpec::string_("template",
                            "Review the user's question and the response.\n"
                            "Award points additively.\n"
                            "Score: <points>\n",
                            "Judge prompt template."),
         ParamSpec::float_("max_score", 5.0, "Highest score.").range(0.0, std::nullopt, true)},
        omit);
    add(sdk::Factory<sdk::JudgeRubric>{}, "likert10", {}, omit);
    add(sdk::Factory<sdk::MetaJudgeStrategy>{}, "pairwise_elo",
        {ParamSpec::float_("prior", 0.01, "Pseudo-wins each way.").range(0.0, std::nullopt, true),
         ParamSpec::bool_("both_orders", true, "Run each battle in both orders.")},
        omit);
    add(sdk::Factory<sdk::PairSelectionPolicy>{}, "length_control",
        {ParamSpec::float_("rho", 0.0, "Length-control tier width.")
             .range(0.0, 0.5, false, true)
             .per_iteration_allowed(),
         ParamSpec::int_("max_chosen_chars", 0, "Cap on the chosen length; 0 = none.")
             .range(0, std::nullopt)
             .per_iteration_allowed(),
         ParamSpec::string_("length_unit", "chars", "How length is measured.")
             .one_of({"chars", "tokens"})},
        omit);
    add(sdk::Factory<sdk::Optimizer>{}, "dpo",
        {ParamSpec::float_("beta", 0.1, "DPO temperature.").range(0.0, std::nullopt, true),
         ParamSpec::float_("lr", 5e-6, "Learning rate.")
             .range(0.0, std::nullopt, true)
             .per_iteration_allowed(),
         ParamSpec::int_("epochs", 1, "Epochs per iteration.").range(1, std::nullopt),
         ParamSpec::string_list("stop_words", {}, "Words that end a response.")},
        omit);
    add(sdk::Factory<sdk::Evaluator>{}, "oracle",
        {ParamSpec::required_("prompts", ParamType::String, "Held-out prompts file."),
         ParamSpec::int_("max_prompts", 200, "Prompts evaluated.").range(1, std::nullopt)},
        omit);
  }

  const core::RegisteredPlugin* find(std::string_view name) const override {
    for (const auto& p : plugins_)
      if (p.descriptor.name == name) return &p;
    return nullptr;
  }

  std::vector<std::string> names(sdk::PluginKind kind) const override {
    std::vector<std::string> out;
    for (const auto& p : plugins_)
      if (p.descriptor.kind() == kind) out.push_back(p.descriptor.name);
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  template <class Interface>
  void add(sdk::Factory<Interface> factory,
           const std::string& name,
           sdk::Schema schema,
           const std::set<std::string>& omit) {
    if (omit.count(name)) return;
    core::RegisteredPlugin plugin;
    plugin.descriptor =
        sdk::PluginDescriptor{name, "1.0.0", "test plugin " + name, std::move(schema),
                              sdk::AnyFactory(std::move(factory))};
    plugin.library_name = "config-tests";
    plugins_.push_back(std::move(plugin));
  }

  std::vector<core::RegisteredPlugin> plugins_;
};

/// Parses `text` as "cfg.toml" and resolves it against a FakeCatalog.
inline core::ResolvedConfig resolve_text(const std::string& text,
                                         const std::vector<std::string>& overrides = {}) {
  auto doc = core::parse_config_text(text, "cfg.toml");
  core::apply_overrides(doc, overrides);
  return core::resolve_config(doc, FakeCatalog());
}

/// The message of the sdk::ConfigError `fn` throws; fails the test if it throws nothing else.
inline std::string config_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const sdk::ConfigError& e) {
    return e.what();
  }
  FAIL("expected a ConfigError, but nothing was thrown");
  return "";
}

/// The ConfigError message resolving `text` (with `overrides`) produces.
inline std::string resolve_error(const std::string& text,
                                 const std::vector<std::string>& overrides = {}) {
  return config_error([&] { resolve_text(text, overrides); });
}

/// The smallest valid config: one model, everything else default.
inline const char* kMinimalModels = "[models.policy]\ntype = \"fake\"\n";

}  // namespace mr::test
