// The mr-optimizers plugins (dpo, rpo): registration, schemas, construction from config and
// Optimizer::train on the tiny model.
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>

#include "metareward/sdk/error.hpp"
#include "metareward/training/training.hpp"
#include "preference_optimizer.hpp"
#include "test_host_context.hpp"
#include "tiny_model.hpp"
#include "training_keys.hpp"

namespace fs = std::filesystem;
namespace sdk = mr::sdk;
namespace training = mr::training;
namespace optimizers = mr::plugins::optimizers;
using mr::test::TinyCausalLm;

namespace {

class Collector : public sdk::Registrar {
 public:
  void add(sdk::PluginDescriptor d) override { plugins.emplace(d.name, std::move(d)); }
  std::map<std::string, sdk::PluginDescriptor> plugins;
};

std::unique_ptr<sdk::Optimizer> create(const sdk::PluginDescriptor& d, sdk::HostContext& ctx) {
  return std::get<sdk::Factory<sdk::Optimizer>>(d.factory)(ctx);
}

}  // namespace

TEST_CASE("optimizer plugins: dpo and rpo register with their schemas", "[optimizer][plugin]") {
  Collector c;
  optimizers::register_optimizer_plugins(c);
  REQUIRE(c.plugins.size() == 3);  // dpo, rpo and sft (sft_optimizer.hpp).
  const auto& dpo = c.plugins.at("dpo");
  CHECK(dpo.kind() == sdk::PluginKind::Optimizer);
  SECTION("dpo: beta then the training keys, with the paper's defaults") {
    std::map<std::string, sdk::Value> defaults;
    std::vector<std::string> keys;
    for (const auto& spec : dpo.schema) {
      keys.push_back(spec.key);
      defaults[spec.key] = spec.default_value;
      CHECK(mr::test::check_value(spec, spec.default_value).empty());
      CHECK_FALSE(spec.help.empty());
    }
    CHECK(keys == mr::test::keys_then_training({"beta"}));
    CHECK(defaults["beta"] == sdk::Value(0.1));
    CHECK(defaults["learning_rate"] == sdk::Value(5e-6));
    CHECK(defaults["lr_schedule"] == sdk::Value("cosine"));
    CHECK(defaults["warmup_ratio"] == sdk::Value(0.1));
    CHECK(defaults["epochs"] == sdk::Value(1));
    CHECK(defaults["batch_size"] == sdk::Value(32));
    CHECK(defaults["micro_batch_size"] == sdk::Value(4));
    CHECK(defaults["weight_decay"] == sdk::Value(0.0));
    CHECK(defaults["adam_beta1"] == sdk::Value(0.9));
    CHECK(defaults["adam_beta2"] == sdk::Value(0.999));
    CHECK(defaults["adam_eps"] == sdk::Value(1e-8));
    CHECK(defaults["max_grad_norm"] == sdk::Value(1.0));
    CHECK(defaults["max_length"] == sdk::Value(2048));
    CHECK(defaults["dropout"] == sdk::Value(0.0));
  }
  SECTION("range checks reject out-of-range values") {
    auto spec_of = [&](const std::string& key) {
      for (const auto& s : dpo.schema)
        if (s.key == key) return s;
      FAIL("no key " << key);
      return sdk::ParamSpec{};
    };
    CHECK_FALSE(mr::test::check_value(spec_of("beta"), 0.0).empty());
    CHECK_FALSE(mr::test::check_value(spec_of("learning_rate"), 0.0).empty());
    CHECK_FALSE(mr::test::check_value(spec_of("warmup_ratio"), 1.5).empty());
    CHECK_FALSE(mr::test::check_value(spec_of("epochs"), 0).empty());
    CHECK_FALSE(mr::test::check_value(spec_of("lr_schedule"), "step").empty());
    CHECK_FALSE(mr::test::check_value(spec_of("max_grad_norm"), -1.0).empty());
    CHECK(mr::test::check_value(spec_of("max_grad_norm"), 0.0).empty());
  }
  SECTION("rpo adds alpha (1.0, as in the paper)") {
    const auto& rpo = c.plugins.at("rpo");
    REQUIRE(rpo.schema.size() == dpo.schema.size() + 1);
    CHECK(rpo.schema[1].key == "alpha");
    CHECK(rpo.schema[1].default_value == sdk::Value(1.0));
  }
}

TEST_CASE("optimizer plugins: train() runs the loop with the config and job",
          "[optimizer][plugin]") {
  Collector c;
  optimizers::register_optimizer_plugins(c);
  const auto& dpo = c.plugins.at("dpo");
  // Iteration 2 of 2 uses the second learning rate; constant schedule makes lr observable.
  mr::test::TestHostContext ctx(
      mr::test::config_from_schema(dpo.schema,
                                   {{"learning_rate", sdk::Array{0.01, 0.03}},
                                    {"lr_schedule", "constant"},
                                    {"warmup_ratio", 0.0},
                                    {"batch_size", 4},
                                    {"micro_batch_size", 2},
                                    {"beta", 0.2}},
                                   2, "optimizer"));
  auto optimizer = create(dpo, ctx);
  TinyCausalLm model(12);
  const fs::path dir = fs::path(MR_BINARY_DIR) / "test-tmp" / "optimizer" / "plugin";
  fs::remove_all(dir);
  sdk::TrainingJob job;
  job.info.iteration = 2;
  job.info.total_iterations = 2;
  job.info.seed = 99;
  job.output_dir = dir / "out";
  job.state_dir = dir / "state";
  std::vector<sdk::StepMetrics> steps;
  job.on_step = [&steps](const sdk::StepMetrics& m) { steps.push_back(m); };
  const auto summary = optimizer->train(model, mr::test::tiny_pairs(8), job);

  CHECK(summary.steps == 2);
  REQUIRE(steps.size() == 2);
  CHECK(steps[1].values.at("lr") == Approx(0.03));
  CHECK(fs::exists(dir / "out" / "weights.pt"));
  CHECK(training::read_trainer_state_info(dir / "state").run == "dpo beta=0.2");
  CHECK(std::isfinite(summary.metrics.at("loss")));
  SECTION("the host's logger receives the progress lines") {
    bool logged = false;
    for (const auto& [level, text] : ctx.recorder().messages())
      logged = logged || text.find("step 2/2") != std::string::npos;
    CHECK(logged);
  }
}

TEST_CASE("optimizer plugins: construction rejects values the schema cannot",
          "[optimizer][plugin]") {
  Collector c;
  optimizers::register_optimizer_plugins(c);
  // validate = false hands the plugin a value the host would have rejected.
  mr::test::TestHostContext ctx(mr::test::config_from_schema(
      c.plugins.at("dpo").schema, {{"beta", sdk::Array{0.1, -1.0}}}, 2, "optimizer", false));
  CHECK_THROWS_WITH(create(c.plugins.at("dpo"), ctx),
                    Catch::Contains("[optimizer] iteration 2") && Catch::Contains("beta"));
}
