// Conformance of every registered optimizer (dpo, rpo, sft, ... and any third-party one; the
// registry of conformance_support.hpp), driven only through sdk::Optimizer::train on the tiny
// in-test TrainableModel (tests/plugins/optimizer/tiny_model.hpp):
//   - a run stopped after k steps (TrainingJob::stop_requested: state saved, sdk::Interrupted)
//     and resumed by a new optimizer object on a freshly loaded initial model ends with exactly
//     the weights, saved model, step losses and summary of an uninterrupted run;
//   - a fixed-seed run is deterministic (two runs, bitwise the same weights);
//   - the loss decreases on a separable toy set, and the model moves towards the chosen
//     responses.
// Built as its own executable (mr_optimizer_conformance_tests) because the model needs libtorch.
// libtorch first: glog (through c10) defines a CHECK macro that aborts; Catch2's CHECK, defined
// after the #undef, must be the one these tests use.
#include "tiny_model.hpp"
#undef CHECK

#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "conformance_support.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/sdk/optimizer.hpp"

namespace sdk = mr::sdk;
using namespace mr::test::conformance;
using mr::test::TinyCausalLm;

namespace {

std::vector<std::string> optimizer_names() {
  return names_of(sdk::PluginKind::Optimizer);
}

/// Skips (returning) the calling test in a build that registers no optimizer.
#define MR_SKIP_WITHOUT_OPTIMIZERS()                                                \
  do {                                                                              \
    if (optimizer_names().empty())                                                  \
      MR_SKIP("no optimizer is registered (the optimizers need MR_WITH_TORCH=ON)"); \
  } while (false)

/// Config of optimizer `name` for the tiny model: its schema defaults, with the shared training
/// loop's keys set where its schema declares them (a learning rate that learns in a few steps,
/// 4 pairs per step in micro-batches of 2, no warm-up), then `extra`.
sdk::Table tiny_values(const std::string& name, const sdk::Table& extra = {}) {
  sdk::Table wanted = {{"learning_rate", sdk::Value(0.02)},
                       {"warmup_ratio", sdk::Value(0.0)},
                       {"batch_size", sdk::Value(4)},
                       {"micro_batch_size", sdk::Value(2)},
                       {"epochs", sdk::Value(2)}};
  for (const auto& [key, value] : extra) wanted[key] = value;
  sdk::Table values;
  for (const auto& spec : descriptor(name).schema)
    if (auto it = wanted.find(spec.key); it != wanted.end()) values[spec.key] = it->second;
  return values;
}

/// The model's initial weights: what the host loads at the start of an iteration.
TinyCausalLm initial_model(double dropout) {
  return TinyCausalLm(/*seed=*/7, /*dim=*/8, /*hidden=*/16, dropout);
}

/// One train() call: its steps (as on_step reported them) and summary.
struct Trained {
  std::vector<sdk::StepMetrics> steps;
  sdk::TrainingSummary summary;
};

/// A job writing under `dir` (model to dir/out, state to dir/state) with seed `seed`.
sdk::TrainingJob job_in(const fs::path& dir,
                        std::vector<sdk::StepMetrics>& steps,
                        std::uint64_t seed = 99) {
  sdk::TrainingJob job;
  job.info.iteration = 1;
  job.info.total_iterations = 1;
  job.info.seed = seed;
  job.output_dir = dir / "out";
  job.state_dir = dir / "state";
  job.on_step = [&steps](const sdk::StepMetrics& m) { steps.push_back(m); };
  return job;
}

/// Trains `model` with a new object of optimizer `name` configured with `values`.
Trained train(const std::string& name,
              const sdk::Table& values,
              TinyCausalLm& model,
              const std::vector<sdk::PreferencePair>& pairs,
              const fs::path& dir,
              std::uint64_t seed = 99) {
  auto optimizer = make_instance<sdk::Optimizer>(name, values, 1, "optimizer");
  Trained t;
  t.summary = optimizer.plugin->train(model, pairs, job_in(dir, t.steps, seed));
  return t;
}

/// The "loss" of every step (each must report a finite one).
std::vector<double> losses(const std::vector<sdk::StepMetrics>& steps) {
  std::vector<double> out;
  for (const auto& s : steps) {
    INFO("step " << s.step);
    REQUIRE(s.values.count("loss") == 1);
    CHECK(std::isfinite(s.values.at("loss")));
    out.push_back(s.values.at("loss"));
  }
  return out;
}

double mean(const std::vector<double>& v, std::size_t from, std::size_t to) {
  double sum = 0;
  for (std::size_t i = from; i < to; ++i) sum += v[i];
  return sum / static_cast<double>(to - from);
}

/// Summed log-probability of `response` after `prompt` under `model` (no grad, eval mode).
double response_logp(TinyCausalLm& model,
                     const sdk::Conversation& prompt,
                     const std::string& response) {
  torch::NoGradGuard no_grad;
  model.set_training(false);
  const auto ex = model.tokenize(prompt, response, true);
  std::vector<std::int64_t> ids = ex.prompt_ids;
  ids.insert(ids.end(), ex.response_ids.begin(), ex.response_ids.end());
  const auto n = static_cast<std::int64_t>(ids.size());
  const auto input = torch::tensor(ids, torch::kLong).unsqueeze(0);
  const auto logp = torch::log_softmax(model.forward(input, torch::ones_like(input)), -1)[0];
  double sum = 0;
  for (auto t = static_cast<std::int64_t>(ex.prompt_ids.size()); t < n; ++t)
    sum += logp[t - 1][ids[static_cast<std::size_t>(t)]].item<double>();
  return sum;
}

/// Pairs whose chosen and rejected responses differ the same way everywhere (a short "yes" vs a
/// rambling "no no no"), over varied prompts.
std::vector<sdk::PreferencePair> separable_pairs() {
  std::vector<sdk::PreferencePair> pairs;
  for (const auto& p : mr::test::tiny_pairs(12)) {
    sdk::PreferencePair s = p;
    s.chosen = "yes";
    s.rejected = "no no no";
    pairs.push_back(std::move(s));
  }
  return pairs;
}

}  // namespace

TEST_CASE("optimizer conformance: registered optimizers exist", "[conformance][optimizer]") {
#ifndef MR_CONFORMANCE_HAVE_OPTIMIZERS
  MR_SKIP("the optimizer plugins are not built (MR_WITH_TORCH=OFF)");
#endif
  const auto names = optimizer_names();
  for (const char* expected : {"dpo", "rpo", "sft"})
    CHECK(std::find(names.begin(), names.end(), expected) != names.end());
}

TEST_CASE("optimizer conformance: schema defaults validate", "[conformance][optimizer]") {
  MR_SKIP_WITHOUT_OPTIMIZERS();
  auto name = GENERATE(from_range(optimizer_names()));
  INFO("optimizer " << origin(name));
  check_schema(name);
  CHECK_NOTHROW(make_default<sdk::Optimizer>(name));
}

TEST_CASE("optimizer conformance: stop, save, load and resume equals an uninterrupted run",
          "[conformance][optimizer][resume]") {
  MR_SKIP_WITHOUT_OPTIMIZERS();
  auto name = GENERATE(from_range(optimizer_names()));
  // With dropout the resumed run must also replay the dropout masks.
  auto dropout = GENERATE(0.0, 0.2);
  // Stop after the first step, at an epoch boundary (3 steps per epoch) and mid-epoch.
  auto stop_after = GENERATE(std::size_t{1}, std::size_t{3}, std::size_t{4});
  INFO("optimizer " << origin(name) << ", dropout " << dropout << ", stopped after step "
                    << stop_after);
  // 10 pairs, 4 per step: 3 steps per epoch (4, 4, 2 pairs), 2 epochs.
  const auto pairs = mr::test::tiny_pairs(10);
  const auto values = tiny_values(name, {{"dropout", sdk::Value(dropout)}});

  TempDir uninterrupted_dir("optimizer_resume_a");
  TinyCausalLm uninterrupted = initial_model(dropout);
  const Trained full = train(name, values, uninterrupted, pairs, uninterrupted_dir.path());
  const auto full_losses = losses(full.steps);
  REQUIRE(full.steps.size() > stop_after);
  CHECK(full.summary.steps == static_cast<std::int64_t>(full.steps.size()));

  TempDir dir("optimizer_resume_b");
  std::vector<sdk::StepMetrics> before;
  {
    // The first process: stopped once `stop_after` steps have finished.
    TinyCausalLm stopped = initial_model(dropout);
    auto optimizer = make_instance<sdk::Optimizer>(name, values, 1, "optimizer");
    auto job = job_in(dir.path(), before);
    job.stop_requested = [&before, stop_after] { return before.size() >= stop_after; };
    CHECK_THROWS_AS(optimizer.plugin->train(stopped, pairs, job), sdk::Interrupted);
  }
  REQUIRE(before.size() == stop_after);             // the step in flight finished and was reported
  CHECK_FALSE(fs::is_empty(dir.path() / "state"));  // the resumable state was saved
  CHECK_FALSE(fs::exists(dir.path() / "out"));      // no finished model yet

  // A new process: a new optimizer object, the iteration's initial model loaded again, the same
  // job directories.
  TinyCausalLm resumed = initial_model(dropout);
  const Trained rest = train(name, values, resumed, pairs, dir.path());

  SECTION("only the steps after the stop run again, with the uninterrupted run's losses") {
    REQUIRE(rest.steps.size() == full.steps.size() - stop_after);
    const auto rest_losses = losses(rest.steps);
    for (std::size_t i = 0; i < rest.steps.size(); ++i) {
      INFO("resumed step " << rest.steps[i].step);
      CHECK(rest.steps[i].step == full.steps[stop_after + i].step);
      CHECK(rest_losses[i] == full_losses[stop_after + i]);
    }
  }
  SECTION("final weights and the saved model are bitwise those of the uninterrupted run") {
    CHECK(mr::test::max_difference(resumed.parameters(), uninterrupted.parameters()) == 0.0);
    CHECK(mr::test::max_difference(TinyCausalLm::load_weights(dir.path() / "out"),
                                   TinyCausalLm::load_weights(uninterrupted_dir.path() / "out")) ==
          0.0);
    CHECK(mr::test::max_difference(TinyCausalLm::load_weights(dir.path() / "out"),
                                   uninterrupted.parameters()) == 0.0);
    // ... and training did move them (the comparison is not between two untouched models).
    CHECK(mr::test::max_difference(uninterrupted.parameters(),
                                   initial_model(dropout).parameters()) > 1e-4);
  }
  SECTION("the summary equals the uninterrupted run's") {
    CHECK(rest.summary.steps == full.summary.steps);
    REQUIRE(full.summary.metrics.count("loss") == 1);
    REQUIRE(rest.summary.metrics.count("loss") == 1);
    CHECK(rest.summary.metrics.at("loss") == full.summary.metrics.at("loss"));
  }
}

TEST_CASE("optimizer conformance: a fixed-seed run is deterministic",
          "[conformance][optimizer][determinism]") {
  MR_SKIP_WITHOUT_OPTIMIZERS();
  auto name = GENERATE(from_range(optimizer_names()));
  auto dropout = GENERATE(0.0, 0.2);
  INFO("optimizer " << origin(name) << ", dropout " << dropout);
  const auto pairs = mr::test::tiny_pairs(10);
  const auto values = tiny_values(name, {{"dropout", sdk::Value(dropout)}});
  TempDir a("optimizer_determinism_a"), b("optimizer_determinism_b");
  TinyCausalLm first = initial_model(dropout), second = initial_model(dropout);
  const Trained one = train(name, values, first, pairs, a.path(), /*seed=*/5);
  const Trained two = train(name, values, second, pairs, b.path(), /*seed=*/5);
  CHECK(mr::test::max_difference(first.parameters(), initial_model(dropout).parameters()) > 1e-4);
  CHECK(mr::test::max_difference(first.parameters(), second.parameters()) == 0.0);
  CHECK(mr::test::max_difference(TinyCausalLm::load_weights(a.path() / "out"),
                                 TinyCausalLm::load_weights(b.path() / "out")) == 0.0);
  CHECK(losses(one.steps) == losses(two.steps));
  CHECK(one.summary.steps == two.summary.steps);
}

TEST_CASE("optimizer conformance: the loss decreases on a separable toy set",
          "[conformance][optimizer][learning]") {
  MR_SKIP_WITHOUT_OPTIMIZERS();
  auto name = GENERATE(from_range(optimizer_names()));
  INFO("optimizer " << origin(name));
  const auto pairs = separable_pairs();
  // 12 pairs, 4 per step: 3 steps per epoch, 8 epochs.
  const auto values =
      tiny_values(name, {{"learning_rate", sdk::Value(0.05)}, {"epochs", sdk::Value(8)}});
  TinyCausalLm model = initial_model(0.0);
  double margin_before = 0;
  for (const auto& p : pairs)
    margin_before +=
        response_logp(model, p.prompt, p.chosen) - response_logp(model, p.prompt, p.rejected);
  TempDir dir("optimizer_learning");
  const Trained run = train(name, values, model, pairs, dir.path());
  const auto loss = losses(run.steps);
  REQUIRE(loss.size() >= 8);
  const std::size_t quarter = loss.size() / 4;
  const double first = mean(loss, 0, quarter),
               last = mean(loss, loss.size() - quarter, loss.size());
  INFO("mean loss of the first " << quarter << " steps " << first << ", of the last " << last);
  CHECK(last < 0.75 * first);
  CHECK(loss.back() < loss.front());
  REQUIRE(run.summary.metrics.count("loss") == 1);
  CHECK(run.summary.metrics.at("loss") < loss.front());

  SECTION("the trained model prefers the chosen responses more than before") {
    double margin_after = 0;
    for (const auto& p : pairs)
      margin_after +=
          response_logp(model, p.prompt, p.chosen) - response_logp(model, p.prompt, p.rejected);
    INFO("summed log-prob margin chosen - rejected: before " << margin_before << ", after "
                                                             << margin_after);
    CHECK(margin_after > margin_before + 1.0);
  }
}
