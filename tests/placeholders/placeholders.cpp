// Placeholder `torch` model backend and `dpo` optimizer: real schemas, factories that throw.
#include <memory>
#include <string>

#include "metareward/sdk/error.hpp"
#include "metareward/sdk/plugin.hpp"

namespace mr::plugins::test_placeholders {

namespace {

using sdk::ParamSpec;
using sdk::ParamType;

template <class Interface>
sdk::Factory<Interface> throwing_factory(const std::string& name) {
  return [name](sdk::HostContext&) -> std::unique_ptr<Interface> {
    throw sdk::PluginError("placeholder for tests: the real '" + name +
                           "' plugin is not built yet");
  };
}

[[maybe_unused]] sdk::Schema torch_schema() {
  return {
      ParamSpec::required_("path", ParamType::String,
                           "Hugging Face checkpoint directory (config.json, *.safetensors, "
                           "tokenizer.json)."),
      ParamSpec::string_("dtype", "float32", "Parameter and compute dtype.")
          .one_of({"float32", "bfloat16", "float16"}),
      ParamSpec::string_("device", "cpu", "libtorch device, e.g. \"cpu\" or \"cuda:0\"."),
      ParamSpec::string_("chat_template", "auto",
                         "Chat template; auto picks it from the tokenizer config.")
          .one_of({"auto", "llama3", "chatml", "plain"}),
      ParamSpec::int_("max_batch_size", 32, "Most sequences decoded together in one batch.")
          .range(1, std::nullopt),
      ParamSpec::int_("max_context", 0,
                      "Longest sequence (prompt + generation) in tokens; 0 = the model's "
                      "max_position_embeddings from config.json.")
          .range(0, std::nullopt),
  };
}

[[maybe_unused]] sdk::Schema dpo_schema() {
  return {
      ParamSpec::float_("beta", 0.1, "DPO temperature: strength of the implicit KL penalty.")
          .range(0.0, std::nullopt, /*lo_exclusive=*/true),
      ParamSpec::float_("learning_rate", 5e-6, "Peak learning rate (AdamW).")
          .range(0.0, std::nullopt, /*lo_exclusive=*/true),
      ParamSpec::string_("lr_schedule", "cosine", "Learning-rate decay after warm-up.")
          .one_of({"cosine", "linear", "constant"}),
      ParamSpec::float_("warmup_ratio", 0.1, "Share of the steps spent warming the rate up.")
          .range(0.0, 1.0),
      ParamSpec::int_("epochs", 1, "Passes over the preference pairs.").range(1, std::nullopt),
      ParamSpec::int_("batch_size", 32, "Pairs per optimizer step.").range(1, std::nullopt),
      ParamSpec::int_("micro_batch_size", 4,
                      "Pairs per forward/backward pass; gradients accumulate up to batch_size.")
          .range(1, std::nullopt),
      ParamSpec::float_("weight_decay", 0.0, "AdamW decoupled weight decay.")
          .range(0.0, std::nullopt),
      ParamSpec::float_("adam_beta1", 0.9, "AdamW first-moment decay.")
          .range(0.0, 1.0, false, true),
      ParamSpec::float_("adam_beta2", 0.999, "AdamW second-moment decay.")
          .range(0.0, 1.0, false, true),
      ParamSpec::float_("adam_eps", 1e-8, "AdamW denominator epsilon.")
          .range(0.0, std::nullopt, /*lo_exclusive=*/true),
      ParamSpec::float_("max_grad_norm", 1.0, "Gradient clipping norm; 0 turns clipping off.")
          .range(0.0, std::nullopt),
      ParamSpec::int_("max_length", 2048,
                      "Pairs longer than this many tokens (prompt + response) are truncated.")
          .range(1, std::nullopt),
      ParamSpec::float_("dropout", 0.0, "Dropout probability during training.").range(0.0, 1.0),
  };
}

// Built twice: MR_PLACEHOLDER_TORCH or MR_PLACEHOLDER_DPO selects the one plugin registered.
void register_placeholder(sdk::Registrar& r) {
#if defined(MR_PLACEHOLDER_TORCH)
  r.add<sdk::ModelBackend>("torch", "0.1.0",
                           "Causal LM on libtorch, loaded from a Hugging Face checkpoint",
                           torch_schema(), throwing_factory<sdk::ModelBackend>("torch"));
#elif defined(MR_PLACEHOLDER_DPO)
  r.add<sdk::Optimizer>("dpo", "0.1.0", "Direct Preference Optimization (DPO) with AdamW",
                        dpo_schema(), throwing_factory<sdk::Optimizer>("dpo"));
#else
#error "define MR_PLACEHOLDER_TORCH or MR_PLACEHOLDER_DPO"
#endif
}

}  // namespace

}  // namespace mr::plugins::test_placeholders

MR_PLUGIN("mr-test-placeholders", "0.1.0", mr::plugins::test_placeholders::register_placeholder)
