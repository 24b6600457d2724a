// Learning-rate schedule, step counts and the training options <-> config mapping.
#include <catch2/catch.hpp>

#include <cmath>

#include "metareward/sdk/error.hpp"
#include "metareward/training/training.hpp"
#include "test_host_context.hpp"
#include "training_keys.hpp"

namespace training = mr::training;
using training::LrSchedule;

namespace {

training::TrainingOptions schedule(LrSchedule kind, double warmup_ratio) {
  training::TrainingOptions o;
  o.learning_rate = 1.0;
  o.lr_schedule = kind;
  o.warmup_ratio = warmup_ratio;
  return o;
}

}  // namespace

TEST_CASE("lr schedule: linear warm-up then decay, at known steps", "[optimizer][schedule]") {
  // 10 steps, warmup_ratio 0.2 -> 2 warm-up steps; decay over the remaining 8.
  SECTION("cosine") {
    const auto o = schedule(LrSchedule::Cosine, 0.2);
    CHECK(training::warmup_steps(o, 10) == 2);
    CHECK(training::learning_rate_at(o, 0, 10) == Approx(0.5));  // first step already moves
    CHECK(training::learning_rate_at(o, 1, 10) == Approx(1.0));  // peak at the last warm-up step
    CHECK(training::learning_rate_at(o, 2, 10) == Approx(1.0));
    CHECK(training::learning_rate_at(o, 6, 10) == Approx(0.5));  // half-way through the decay
    CHECK(training::learning_rate_at(o, 9, 10) ==
          Approx(0.5 * (1 + std::cos(M_PI * 7.0 / 8.0))));  // 0.0380602
  }
  SECTION("linear") {
    const auto o = schedule(LrSchedule::Linear, 0.2);
    CHECK(training::learning_rate_at(o, 0, 10) == Approx(0.5));
    CHECK(training::learning_rate_at(o, 2, 10) == Approx(1.0));
    CHECK(training::learning_rate_at(o, 6, 10) == Approx(0.5));
    CHECK(training::learning_rate_at(o, 9, 10) == Approx(0.125));
  }
  SECTION("a min_learning_rate floor: Self-Rewarding's 1e-6 -> 1e-7") {
    auto o = schedule(LrSchedule::Linear, 0.0);
    o.learning_rate = 1e-6;
    o.min_learning_rate = 1e-7;
    // No warm-up: p = step / 10, so step 5 is half-way and the decay ends at the floor.
    CHECK(training::learning_rate_at(o, 0, 10) == Approx(1e-6));
    CHECK(training::learning_rate_at(o, 5, 10) == Approx(5.5e-7));
    CHECK(training::learning_rate_at(o, 9, 10) == Approx(1.9e-7));
    CHECK(training::learning_rate_at(o, 10, 10) == Approx(1e-7));
    o.lr_schedule = LrSchedule::Cosine;
    CHECK(training::learning_rate_at(o, 5, 10) == Approx(5.5e-7));
    CHECK(training::learning_rate_at(o, 10, 10) == Approx(1e-7));
    o.min_learning_rate = 2e-6;  // Above the peak: refused.
    CHECK_THROWS_AS(training::validate(o), mr::sdk::ConfigError);
  }
  SECTION("constant") {
    const auto o = schedule(LrSchedule::Constant, 0.2);
    CHECK(training::learning_rate_at(o, 0, 10) == Approx(0.5));
    CHECK(training::learning_rate_at(o, 5, 10) == Approx(1.0));
    CHECK(training::learning_rate_at(o, 9, 10) == Approx(1.0));
  }
  SECTION("no warm-up starts at the peak") {
    const auto o = schedule(LrSchedule::Cosine, 0.0);
    CHECK(training::warmup_steps(o, 10) == 0);
    CHECK(training::learning_rate_at(o, 0, 10) == Approx(1.0));
    CHECK(training::learning_rate_at(o, 5, 10) == Approx(0.5));
  }
  SECTION("a single step runs at the peak times its warm-up fraction") {
    const auto o = schedule(LrSchedule::Cosine, 0.1);
    CHECK(training::warmup_steps(o, 1) == 1);
    CHECK(training::learning_rate_at(o, 0, 1) == Approx(1.0));
  }
}

TEST_CASE("lr schedule: warm-up steps round up and explicit steps win", "[optimizer][schedule]") {
  auto o = schedule(LrSchedule::Cosine, 0.15);
  CHECK(training::warmup_steps(o, 10) == 2);  // ceil(1.5)
  o.warmup_ratio = 0.1;
  CHECK(training::warmup_steps(o, 30) == 3);  // not 4 from 0.1 * 30 = 3.0000000000000004
  CHECK(training::warmup_steps(o, 157) == 16);
  o.warmup_steps = 5;
  CHECK(training::warmup_steps(o, 30) == 5);
  CHECK(training::warmup_steps(o, 3) == 3);  // capped at the run
}

TEST_CASE("steps per epoch: the last batch of an epoch may be partial", "[optimizer][schedule]") {
  training::TrainingOptions o;
  o.batch_size = 32;
  CHECK(training::steps_per_epoch(64, o) == 2);
  CHECK(training::steps_per_epoch(65, o) == 3);
  CHECK(training::steps_per_epoch(1, o) == 1);
}

TEST_CASE("training options: read from a config built from the schema", "[optimizer][config]") {
  const auto schema = training::training_schema();
  SECTION("the schema lists the documented keys in order") {
    std::vector<std::string> keys;
    for (const auto& spec : schema) keys.push_back(spec.key);
    CHECK(keys == mr::test::training_keys());
  }
  SECTION("overrides reach the options; per-iteration arrays select by iteration") {
    const auto config = mr::test::config_from_schema(schema,
                                                     {{"learning_rate", mr::sdk::Array{1e-6, 3e-6}},
                                                      {"lr_schedule", "linear"},
                                                      {"batch_size", 8},
                                                      {"micro_batch_size", 2},
                                                      {"max_length", 512},
                                                      {"length_balanced", true}},
                                                     2);
    const auto o1 = training::options_from_config(config, 1);
    const auto o2 = training::options_from_config(config, 2);
    CHECK(o1.learning_rate == 1e-6);
    CHECK(o2.learning_rate == 3e-6);
    CHECK(o2.lr_schedule == LrSchedule::Linear);
    CHECK(o2.batch_size == 8);
    CHECK(o2.micro_batch_size == 2);
    CHECK(o2.max_length == 512);
    CHECK(o2.length_balanced);
    CHECK(o2.epochs == 1);          // default
    CHECK(o2.warmup_ratio == 0.1);  // default
  }
  SECTION("sft defaults differ only where documented") {
    const auto o =
        training::options_from_config(mr::test::config_from_schema(training::sft_schema()), 0);
    CHECK(o.learning_rate == 1e-5);
    CHECK(o.epochs == 3);
    CHECK(o.batch_size == 16);
    CHECK(o.micro_batch_size == 4);
  }
}

TEST_CASE("training options: out-of-range values built in code are config errors",
          "[optimizer][config]") {
  training::TrainingOptions o;
  CHECK_NOTHROW(training::validate(o));
  o.learning_rate = 0;
  CHECK_THROWS_WITH(training::validate(o), Catch::Contains("learning_rate must be > 0"));
  o = {};
  o.adam_beta2 = 1.0;
  CHECK_THROWS_AS(training::validate(o), mr::sdk::ConfigError);
  o = {};
  o.max_length = 1;
  CHECK_THROWS_WITH(training::validate(o), Catch::Contains("max_length"));
  CHECK_THROWS_WITH(training::parse_lr_schedule("step"),
                    Catch::Contains("cosine, linear, constant"));
}
