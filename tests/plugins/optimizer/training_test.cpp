// The shared training loop end to end on the tiny model: reference caching, learning, gradient
// accumulation, resume, state errors and data limits.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "metareward/sdk/error.hpp"
#include "metareward/training/training.hpp"
#include "test_host_context.hpp"
#include "tiny_model.hpp"

namespace fs = std::filesystem;
namespace training = mr::training;
using mr::sdk::StepMetrics;
using mr::sdk::TrainingJob;
using mr::test::TinyCausalLm;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(MR_BINARY_DIR) / "test-tmp" / "optimizer" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

/// A job writing under `dir` (state in dir/state, model in dir/out) that records every step.
TrainingJob job_in(const fs::path& dir, std::vector<StepMetrics>* steps = nullptr) {
  TrainingJob job;
  job.output_dir = dir / "out";
  job.state_dir = dir / "state";
  if (steps != nullptr) job.on_step = [steps](const StepMetrics& m) { steps->push_back(m); };
  return job;
}

training::TrainingOptions fast_options() {
  training::TrainingOptions o;
  o.learning_rate = 0.02;
  o.batch_size = 4;
  o.micro_batch_size = 2;
  o.warmup_ratio = 0.0;
  o.seed = 42;
  return o;
}

/// Mean DPO margin (policy minus reference log-ratio difference) and accuracy over `pairs`.
std::pair<double, double> margin_and_accuracy(const std::vector<std::pair<double, double>>& now,
                                              const std::vector<std::pair<double, double>>& ref) {
  double margin = 0, wins = 0;
  for (std::size_t i = 0; i < now.size(); ++i) {
    const double m = (now[i].first - ref[i].first) - (now[i].second - ref[i].second);
    margin += m;
    wins += m > 0 ? 1 : 0;
  }
  return {margin / static_cast<double>(now.size()), wins / static_cast<double>(now.size())};
}

std::vector<double> read_reference(const fs::path& state_dir, const std::string& key) {
  torch::serialize::InputArchive ar;
  ar.load_from((state_dir / training::kTrainerStateFile).string());
  torch::serialize::InputArchive data;
  ar.read("data", data);
  torch::Tensor t;
  data.read(key, t, /*is_buffer=*/true);
  t = t.contiguous();
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

}  // namespace

TEST_CASE("dpo training: the reference log-probs are computed once, from the initial model",
          "[optimizer][training]") {
  TinyCausalLm model(1);
  TinyCausalLm frozen = model.clone();
  const auto pairs = mr::test::tiny_pairs(10);
  auto opts = fast_options();
  opts.epochs = 2;
  const fs::path dir = fresh_dir("reference");
  std::vector<StepMetrics> steps;
  training::train_preference(model, pairs, training::dpo_loss(0.1), opts, job_in(dir, &steps));

  SECTION("one no-grad pass over the pairs, in micro-batches, before training") {
    CHECK(model.no_grad_forwards == 5);  // ceil(10 pairs / 2)
  }
  SECTION("the cached values equal a frozen copy's log-probs, not the trained model's") {
    const auto expected =
        training::pair_logps(frozen, training::prepare_pairs(frozen, pairs, opts).pairs, 3);
    const auto trained =
        training::pair_logps(model, training::prepare_pairs(model, pairs, opts).pairs, 3);
    const auto cached_c = read_reference(dir / "state", "reference_chosen");
    const auto cached_r = read_reference(dir / "state", "reference_rejected");
    REQUIRE(cached_c.size() == 10);
    double drift = 0;
    for (std::size_t i = 0; i < 10; ++i) {
      CHECK(cached_c[i] == Approx(expected[i].first).epsilon(1e-12));
      CHECK(cached_r[i] == Approx(expected[i].second).epsilon(1e-12));
      drift += std::abs(trained[i].first - cached_c[i]);
    }
    CHECK(drift > 1e-3);  // training moved the policy away from the cache
  }
  SECTION("at the first step the policy is the reference: zero rewards, loss log 2") {
    REQUIRE(!steps.empty());
    CHECK(steps[0].step == 1);
    CHECK(steps[0].values.at("rewards/chosen") == Approx(0.0).margin(1e-12));
    CHECK(steps[0].values.at("margin") == Approx(0.0).margin(1e-12));
    CHECK(steps[0].values.at("loss") == Approx(std::log(2.0)).epsilon(1e-12));
  }
}

TEST_CASE("dpo training: a few steps raise the chosen-over-rejected margin",
          "[optimizer][training]") {
  TinyCausalLm model(2);
  const auto pairs = mr::test::tiny_pairs(8);
  auto opts = fast_options();
  opts.learning_rate = 0.05;
  opts.epochs = 6;
  const auto prepared = training::prepare_pairs(model, pairs, opts);
  const auto before = training::pair_logps(model, prepared.pairs, 4);
  std::vector<StepMetrics> steps;
  const auto summary = training::train_preference(model, pairs, training::dpo_loss(0.1), opts,
                                                  job_in(fresh_dir("learn"), &steps));
  const auto after = training::pair_logps(model, prepared.pairs, 4);
  const auto [margin, accuracy] = margin_and_accuracy(after, before);
  CHECK(margin > 1.0);
  CHECK(accuracy >= 0.875);
  REQUIRE(steps.size() == 12);  // 6 epochs x 2 steps
  CHECK(steps.back().values.at("accuracy") >= 0.75);
  CHECK(steps.back().values.at("loss") < std::log(2.0) - 0.05);
  CHECK(summary.steps == 12);
  CHECK(summary.metrics.at("loss") < std::log(2.0));
  CHECK(summary.metrics.at("pairs") == 8);
  SECTION("every step reports the documented metrics") {
    for (const char* key : {"loss", "rewards/chosen", "rewards/rejected", "margin", "accuracy",
                            "logps/chosen", "logps/rejected", "grad_norm", "lr", "tokens_per_s"})
      CHECK(steps[3].values.count(key) == 1);
    CHECK(steps[3].step == 4);
  }
}

TEST_CASE("rpo training: the NLL term raises the chosen log-likelihood more than DPO",
          "[optimizer][training]") {
  const auto pairs = mr::test::tiny_pairs(8);
  auto opts = fast_options();
  opts.epochs = 4;
  auto chosen_logp = [&](const training::PreferenceLoss& loss, const std::string& name) {
    TinyCausalLm model(3);
    training::train_preference(model, pairs, loss, opts, job_in(fresh_dir(name)));
    double sum = 0;
    for (const auto& [c, r] :
         training::pair_logps(model, training::prepare_pairs(model, pairs, opts).pairs, 4))
      sum += c;
    return sum;
  };
  CHECK(chosen_logp(training::rpo_loss(0.1, 1.0), "rpo") >
        chosen_logp(training::dpo_loss(0.1), "rpo-dpo") + 1.0);
}

TEST_CASE("sft training: the loss on a small dataset goes close to zero", "[optimizer][sft]") {
  TinyCausalLm model(4, /*dim=*/8, /*hidden=*/32);
  std::vector<training::SftExample> examples;
  for (const auto& p : mr::test::tiny_pairs(4)) examples.push_back({p.id, p.prompt, p.chosen});
  auto opts = fast_options();
  opts.learning_rate = 0.05;
  opts.epochs = 60;
  opts.max_grad_norm = 0;
  std::vector<StepMetrics> steps;
  const auto summary = training::train_sft(model, examples, opts, job_in(fresh_dir("sft"), &steps));
  REQUIRE(steps.size() == 60);
  CHECK(steps.front().values.at("loss") > 2.0);
  CHECK(steps.back().values.at("loss") < 0.05);
  CHECK(summary.metrics.at("examples") == 4);
  SECTION("the loss is the mean response-token NLL: it matches the model's log-probs") {
    std::vector<training::PreparedPair> as_pairs;
    for (const auto& ex : examples) {
      training::PreparedPair p;
      p.chosen = p.rejected = model.tokenize(ex.prompt, ex.response, true);
      as_pairs.push_back(p);
    }
    double nll = 0, tokens = 0;
    for (std::size_t i = 0; i < as_pairs.size(); ++i) {
      nll -= training::pair_logps(model, as_pairs, 4)[i].first;
      tokens += static_cast<double>(as_pairs[i].chosen.response_ids.size());
    }
    CHECK(nll / tokens < 0.05);
  }
}

TEST_CASE("gradient accumulation: micro-batches do not change the update",
          "[optimizer][training]") {
  const auto pairs = mr::test::tiny_pairs(8);
  auto train_with = [&](int micro, bool balanced, const std::string& name) {
    TinyCausalLm model(5);
    auto opts = fast_options();
    opts.batch_size = 8;
    opts.micro_batch_size = micro;
    opts.length_balanced = balanced;
    opts.max_grad_norm = 0.5;  // clipping sees the accumulated gradient
    training::train_preference(model, pairs, training::dpo_loss(0.1), opts,
                               job_in(fresh_dir(name)));
    return model.parameters();
  };
  const auto full = train_with(8, false, "accum-8");
  const auto two_by_four = train_with(4, false, "accum-4");
  const auto uneven = train_with(3, false, "accum-3");
  const auto balanced = train_with(2, true, "accum-balanced");
  TinyCausalLm initial(5);
  CHECK(mr::test::max_difference(full, initial.parameters()) > 1e-3);  // it did train
  CHECK(mr::test::same_parameters(full, two_by_four, 1e-12));
  CHECK(mr::test::same_parameters(full, uneven, 1e-12));
  CHECK(mr::test::same_parameters(full, balanced, 1e-12));
}

TEST_CASE("sft gradient accumulation: token-mean over the whole step", "[optimizer][sft]") {
  std::vector<training::SftExample> examples;
  for (const auto& p : mr::test::tiny_pairs(6)) examples.push_back({p.id, p.prompt, p.rejected});
  auto train_with = [&](int micro, const std::string& name) {
    TinyCausalLm model(6);
    auto opts = fast_options();
    opts.batch_size = 6;
    opts.micro_batch_size = micro;
    training::train_sft(model, examples, opts, job_in(fresh_dir(name)));
    return model.parameters();
  };
  CHECK(
      mr::test::same_parameters(train_with(6, "sft-accum-6"), train_with(4, "sft-accum-4"), 1e-12));
}

TEST_CASE("resume: save, crash, load and continue equals uninterrupted training",
          "[optimizer][resume]") {
  const auto pairs = mr::test::tiny_pairs(10);
  auto opts = fast_options();
  opts.epochs = 2;  // 3 steps per epoch (4, 4, 2 pairs), 6 steps
  opts.save_every_steps = 2;
  opts.dropout = 0.2;  // dropout masks must also replay
  opts.warmup_ratio = 0.2;
  const double dropout = 0.2;

  TinyCausalLm uninterrupted(7, 8, 16, dropout);
  const fs::path dir_a = fresh_dir("resume-a");
  const auto summary_a = training::train_preference(uninterrupted, pairs, training::dpo_loss(0.1),
                                                    opts, job_in(dir_a));

  const fs::path dir_b = fresh_dir("resume-b");
  {
    TinyCausalLm crashing(7, 8, 16, dropout);
    auto job = job_in(dir_b);
    job.on_step = [](const StepMetrics& m) {
      if (m.step == 5) throw std::runtime_error("simulated crash");
    };
    CHECK_THROWS_WITH(
        training::train_preference(crashing, pairs, training::dpo_loss(0.1), opts, job),
        "simulated crash");
    CHECK_FALSE(crashing.training());  // back in eval mode after the exception
  }
  const auto info = training::read_trainer_state_info(dir_b / "state");
  CHECK(info.step == 4);  // saved at 2, 3 (end of epoch 1) and 4
  CHECK(info.total_steps == 6);
  CHECK(info.format_version == training::kTrainerStateVersion);
  CHECK(info.run == "dpo beta=0.1");
  CHECK_FALSE(fs::exists(dir_b / "out"));

  // The host restarts from the iteration's initial model.
  TinyCausalLm resumed(7, 8, 16, dropout);
  std::vector<StepMetrics> steps;
  const auto summary_b = training::train_preference(resumed, pairs, training::dpo_loss(0.1), opts,
                                                    job_in(dir_b, &steps));
  SECTION("only the remaining steps run, without a reference pass") {
    REQUIRE(steps.size() == 2);
    CHECK(steps[0].step == 5);
    CHECK(resumed.no_grad_forwards == 0);
  }
  SECTION("final parameters, saved model and epoch summary equal the uninterrupted run") {
    CHECK(mr::test::same_parameters(resumed.parameters(), uninterrupted.parameters(), 1e-12));
    CHECK(mr::test::same_parameters(TinyCausalLm::load_weights(dir_b / "out"),
                                    uninterrupted.parameters(), 1e-12));
    CHECK(summary_b.metrics.at("loss") == Approx(summary_a.metrics.at("loss")).epsilon(1e-12));
    CHECK(summary_b.steps == 6);
  }
  SECTION("a completed state only re-saves the model") {
    TinyCausalLm again(7, 8, 16, dropout);
    std::vector<StepMetrics> none;
    training::train_preference(again, pairs, training::dpo_loss(0.1), opts, job_in(dir_b, &none));
    CHECK(none.empty());
    CHECK(mr::test::same_parameters(again.parameters(), uninterrupted.parameters(), 1e-12));
  }
  SECTION("dropout changes the result (so the replay above is meaningful)") {
    TinyCausalLm no_dropout(7, 8, 16, 0.0);
    training::train_preference(no_dropout, pairs, training::dpo_loss(0.1), opts,
                               job_in(fresh_dir("resume-c")));
    CHECK(mr::test::max_difference(no_dropout.parameters(), uninterrupted.parameters()) > 1e-6);
  }
}

TEST_CASE("stop request: state saved at the step, sdk::Interrupted, resume finishes identically",
          "[optimizer][resume]") {
  const auto pairs = mr::test::tiny_pairs(10);
  auto opts = fast_options();
  opts.epochs = 2;  // 6 steps; save_every_steps stays 0: only the stop makes a mid-epoch save
  TinyCausalLm uninterrupted(7, 8, 16, 0.0);
  training::train_preference(uninterrupted, pairs, training::dpo_loss(0.1), opts,
                             job_in(fresh_dir("stop-a")));

  const fs::path dir = fresh_dir("stop-b");
  std::vector<StepMetrics> before;
  {
    TinyCausalLm stopped(7, 8, 16, 0.0);
    auto job = job_in(dir, &before);
    job.stop_requested = [&before] { return before.size() == 2; };
    CHECK_THROWS_AS(training::train_preference(stopped, pairs, training::dpo_loss(0.1), opts, job),
                    mr::sdk::Interrupted);
  }
  REQUIRE(before.size() == 2);  // the step in flight finished and was reported
  CHECK(training::read_trainer_state_info(dir / "state").step == 2);
  CHECK_FALSE(fs::exists(dir / "out"));

  TinyCausalLm resumed(7, 8, 16, 0.0);
  std::vector<StepMetrics> after;
  training::train_preference(resumed, pairs, training::dpo_loss(0.1), opts, job_in(dir, &after));
  REQUIRE(after.size() == 4);
  CHECK(after.front().step == 3);
  CHECK(mr::test::same_parameters(resumed.parameters(), uninterrupted.parameters(), 1e-12));

  SECTION("a stop requested after the last step changes nothing") {
    TinyCausalLm full(7, 8, 16, 0.0);
    auto job = job_in(fresh_dir("stop-c"));
    job.stop_requested = [] { return true; };
    opts.epochs = 1;
    opts.batch_size = 10;  // one step: nothing left to stop
    CHECK_NOTHROW(training::train_preference(full, pairs, training::dpo_loss(0.1), opts, job));
  }
}

TEST_CASE("resume: unusable states are refused with a clear error", "[optimizer][resume]") {
  const auto pairs = mr::test::tiny_pairs(6);
  const auto opts = fast_options();
  const fs::path dir = fresh_dir("refuse");
  {
    TinyCausalLm model(8);
    training::train_preference(model, pairs, training::dpo_loss(0.1), opts, job_in(dir));
  }
  auto refuses = [&](TinyCausalLm& model, const training::TrainingOptions& o,
                     const training::PreferenceLoss& loss, const fs::path& d) {
    const auto initial = model.clone().parameters();
    std::string message;
    try {
      training::train_preference(model, pairs, loss, o, job_in(d));
    } catch (const mr::sdk::DataError& e) {
      message = e.what();
    }
    CHECK(mr::test::same_parameters(model.parameters(), initial, 0.0));  // model untouched
    return message;
  };
  SECTION("parameters of another shape") {
    TinyCausalLm other(8, /*dim=*/6);
    const auto message = refuses(other, opts, training::dpo_loss(0.1), dir);
    CHECK_THAT(message, Catch::Contains("parameter 0 has shape [40, 8]") &&
                            Catch::Contains("[40, 6]") && Catch::Contains("delete"));
  }
  SECTION("another run: options or loss differ") {
    TinyCausalLm model(8);
    auto other = opts;
    other.learning_rate = 0.03;
    CHECK_THAT(refuses(model, other, training::dpo_loss(0.1), dir),
               Catch::Contains("belongs to another training run"));
    CHECK_THAT(refuses(model, opts, training::dpo_loss(0.2), dir), Catch::Contains("dpo beta=0.2"));
  }
  SECTION("another format version") {
    const fs::path d = fresh_dir("refuse-version");
    fs::create_directories(d / "state");
    torch::serialize::OutputArchive ar;
    ar.write("format", c10::IValue(std::string("metareward-trainer-state")));
    ar.write("format_version", c10::IValue(std::int64_t{99}));
    ar.save_to((d / "state" / training::kTrainerStateFile).string());
    TinyCausalLm model(8);
    CHECK_THAT(refuses(model, opts, training::dpo_loss(0.1), d),
               Catch::Contains("format version 99, this build reads version 1"));
  }
  SECTION("not a trainer state at all") {
    const fs::path d = fresh_dir("refuse-garbage");
    fs::create_directories(d / "state");
    std::ofstream(d / "state" / training::kTrainerStateFile) << "not a zip archive";
    TinyCausalLm model(8);
    CHECK_THAT(refuses(model, opts, training::dpo_loss(0.1), d),
               Catch::Contains("cannot read trainer state"));
  }
}

TEST_CASE("data limits: truncation and drops are counted, never silent", "[optimizer][training]") {
  // Prompts tokenize to len(text) + 4 tokens ("name a pet" 14, "sky color" 13, "say hi" 10),
  // responses to len(text) + 1.
  auto pairs = mr::test::tiny_pairs(3);
  auto opts = fast_options();
  opts.max_length = 14;
  mr::test::TestHostContext host(mr::sdk::Config{});
  TinyCausalLm model(9);
  const auto summary = training::train_preference(model, pairs, training::dpo_loss(0.1), opts,
                                                  job_in(fresh_dir("limits")), &host);
  CHECK(summary.metrics.at("pairs") == 2);
  CHECK(summary.metrics.at("pairs_dropped") == 1);    // "name a pet": no room for a response
  CHECK(summary.metrics.at("pairs_truncated") == 2);  // "sky color" (both), "say hi" (rejected)
  bool warned = false;
  for (const auto& [level, text] : host.recorder().messages())
    warned = warned || (level == mr::sdk::LogLevel::Warn &&
                        text.find("1 prompt_too_long") != std::string::npos);
  CHECK(warned);
  SECTION("nothing left to train on is a data error") {
    opts.max_length = 4;
    TinyCausalLm m(9);
    CHECK_THROWS_WITH(training::train_preference(m, pairs, training::dpo_loss(0.1), opts,
                                                 job_in(fresh_dir("limits-none"))),
                      Catch::Contains("all 3 were dropped (3 prompt_too_long)"));
    CHECK_THROWS_AS(training::train_preference(m, {}, training::dpo_loss(0.1), opts,
                                               job_in(fresh_dir("limits-empty"))),
                    mr::sdk::DataError);
  }
}

TEST_CASE("custom loss: a third-party reference-free loss only writes its formula",
          "[optimizer][training]") {
  // SimPO-like: length-normalised log-probs, no reference model.
  training::PreferenceLoss simpo;
  simpo.id = "simpo-test";
  simpo.needs_reference = false;
  simpo.compute = [](const training::PairLogps& l) {
    const auto m =
        2.0 * (l.policy_chosen / l.chosen_tokens - l.policy_rejected / l.rejected_tokens);
    training::PairLossResult r;
    r.losses = -torch::log_sigmoid(m - 0.5);
    r.metrics["normalised_margin"] = m.detach();
    return r;
  };
  TinyCausalLm model(10);
  std::vector<StepMetrics> steps;
  auto opts = fast_options();
  opts.epochs = 3;
  const fs::path dir = fresh_dir("custom");
  training::train_preference(model, mr::test::tiny_pairs(8), simpo, opts, job_in(dir, &steps));
  CHECK(model.no_grad_forwards == 0);  // no reference pass
  REQUIRE(steps.size() == 6);
  CHECK(steps.back().values.at("normalised_margin") > steps.front().values.at("normalised_margin"));
  CHECK(training::read_trainer_state_info(dir / "state").run == "simpo-test");
}

TEST_CASE("dpo training: a float32 model (the real backends' dtype) trains too",
          "[optimizer][training]") {
  TinyCausalLm model(13, 8, 16, 0.0, torch::kFloat32);
  const auto pairs = mr::test::tiny_pairs(8);
  auto opts = fast_options();
  opts.epochs = 4;
  const auto prepared = training::prepare_pairs(model, pairs, opts);
  const auto before = training::pair_logps(model, prepared.pairs, 4);
  training::train_preference(model, pairs, training::dpo_loss(0.1), opts,
                             job_in(fresh_dir("float32")));
  CHECK(model.parameters()[0].scalar_type() == torch::kFloat32);
  const auto [margin, accuracy] =
      margin_and_accuracy(training::pair_logps(model, prepared.pairs, 4), before);
  CHECK(margin > 0.5);
  CHECK(accuracy >= 0.75);
}

TEST_CASE("training: lora and gradient_checkpointing on a backend without them",
          "[optimizer][lora]") {
  const auto pairs = mr::test::tiny_pairs(4);
  training::TrainingOptions o;
  o.batch_size = 2;
  o.micro_batch_size = 1;
  SECTION("lora = true is refused before anything trains") {
    TinyCausalLm model(1);
    const auto before = model.parameters()[0].detach().clone();
    o.lora = true;
    CHECK_THROWS_WITH(training::train_preference(model, pairs, training::dpo_loss(0.1), o,
                                                 job_in(fresh_dir("no-lora"))),
                      Catch::Contains("does not support LoRA"));
    CHECK(torch::equal(model.parameters()[0], before));
  }
  SECTION("gradient_checkpointing = true trains without it (the default refuses it)") {
    TinyCausalLm model(1);
    o.gradient_checkpointing = true;
    std::vector<StepMetrics> steps;
    training::train_preference(model, pairs, training::dpo_loss(0.1), o,
                               job_in(fresh_dir("no-ckpt"), &steps));
    CHECK(steps.size() == 2);
  }
}
