// Shared-prompt packing of preference pairs (TrainingOptions::share_prompt): collate_groups()'s
// packed layout and its fallbacks, and on the torch backend the same log-probs and the same DPO
// run as separate chosen/rejected rows.
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <vector>

#include "backend_test_util.hpp"
#include "metareward/sdk/trainable_model.hpp"
#include "metareward/torch_model/causal_lm.hpp"
#include "metareward/training/training.hpp"

namespace sdk = mr::sdk;
namespace tb = mr::torch_backend;
namespace fs = std::filesystem;
namespace training = mr::training;
using mr::test::BackendTempDir;

namespace {

std::vector<std::int64_t> values(const torch::Tensor& t) {
  const auto c = t.to(torch::kCPU, torch::kLong).contiguous();
  return {c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel()};
}

using Ids = std::vector<std::int64_t>;

// Pairs with long shared prompts and responses of different lengths (one differing in its first
// token only, which only the prompt's last position predicts).
std::vector<sdk::PreferencePair> pairs() {
  std::vector<sdk::PreferencePair> out;
  const char* prompts[] = {"Name the capital of France, please.", "What is 2+2? Answer briefly.",
                           "Which colour is the sky on a clear day?", "Say hi to the user."};
  const char* chosen[] = {"Paris", "4", "Blue, mostly", "Hi!"};
  const char* rejected[] = {"Rome, I think, or maybe Madrid", "5", "Green", "Xi!"};
  for (int i = 0; i < 4; ++i) {
    sdk::PreferencePair p;
    p.id = "p" + std::to_string(i);
    p.prompt_id = p.id;
    p.prompt = {{"user", prompts[i]}};
    p.chosen = chosen[i];
    p.rejected = rejected[i];
    out.push_back(p);
  }
  return out;
}

}  // namespace

TEST_CASE("collate_groups: one packed row per pair, the prompt once, each response a branch",
          "[optimizer][share_prompt]") {
  const sdk::TokenizedExample c0{{1, 2, 3}, {10, 11}}, r0{{1, 2, 3}, {20, 21, 22}};
  const sdk::TokenizedExample c1{{4, 5}, {30}}, r1{{4, 5}, {40, 41}};
  const auto sb = training::collate_groups({{&c0, &r0}, {&c1, &r1}}, torch::kCPU, true);
  REQUIRE(sb.branch_ids.defined());
  REQUIRE(sb.input_ids.sizes() == torch::IntArrayRef({2, 8}));
  CHECK(values(sb.input_ids) == Ids{1, 2, 3, 10, 11, 20, 21, 22, 4, 5, 30, 40, 41, 0, 0, 0});
  CHECK(values(sb.branch_ids) == Ids{0, 0, 0, 1, 1, 2, 2, 2, 0, 0, 1, 2, 2, -1, -1, -1});
  CHECK(values(sb.position_ids) == Ids{0, 1, 2, 3, 4, 3, 4, 5, 0, 1, 2, 2, 3, 0, 0, 0});
  CHECK(values(sb.attention_mask) == Ids{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0});
  // Sequences numbered as collate() of {c0, c1, r0, r1} numbers them: chosen first.
  CHECK(sb.response_tokens == Ids{2, 1, 3, 2});
  CHECK(sb.real_tokens == 5 + 3 + 6 + 4);  // The prompt counted with each response.
  // The last prompt position (2, and 8 + 1) predicts both responses' first tokens.
  CHECK(values(sb.target_rows) == Ids{2, 3, 2, 5, 6, 9, 9, 11});
  CHECK(values(sb.target_ids) == Ids{10, 11, 20, 21, 22, 30, 40, 41});
  CHECK(values(sb.target_sequence) == Ids{0, 0, 2, 2, 2, 1, 3, 3});
}

TEST_CASE("collate_groups: plain rows when off, for differing or empty prompts, and for SFT",
          "[optimizer][share_prompt]") {
  const sdk::TokenizedExample c0{{1, 2, 3}, {10, 11}}, r0{{1, 2, 3}, {20, 21, 22}};
  const sdk::TokenizedExample other{{1, 2, 9}, {20}}, empty_a{{}, {5, 6}}, empty_b{{}, {7}};
  const auto plain = training::collate({&c0, &r0}, torch::kCPU);
  auto same_as_plain = [&](const training::SequenceBatch& sb) {
    CHECK_FALSE(sb.branch_ids.defined());
    CHECK(values(sb.input_ids) == values(plain.input_ids));
    CHECK(values(sb.target_rows) == values(plain.target_rows));
    CHECK(values(sb.target_sequence) == values(plain.target_sequence));
  };
  same_as_plain(training::collate_groups({{&c0, &r0}}, torch::kCPU, false));
  CHECK_FALSE(training::collate_groups({{&c0, &r0}, {&c0, &other}}, torch::kCPU, true)
                  .branch_ids.defined());
  CHECK_FALSE(
      training::collate_groups({{&empty_a, &empty_b}}, torch::kCPU, true).branch_ids.defined());
  CHECK_FALSE(training::collate_groups({{&c0}, {&r0}}, torch::kCPU, true).branch_ids.defined());
  CHECK_THROWS_WITH(
      training::sequence_logps(torch::zeros({1, 8, 4}),
                               training::collate_groups({{&c0, &r0}}, torch::kCPU, true)),
      Catch::Contains("packed batch"));
}

TEST_CASE("share_prompt: the torch backend's packed log-probs equal separate rows",
          "[torch_backend][share_prompt]") {
  auto backend = mr::test::make_backend(mr::test::shared_tiny_model());
  auto& model = *backend->trainable();
  REQUIRE(model.supports_shared_prefix());
  training::TrainingOptions o;
  const auto prepared = training::prepare_pairs(model, pairs(), o);
  const auto shared = training::pair_logps(model, prepared.pairs, 3, true);
  const auto separate = training::pair_logps(model, prepared.pairs, 3, false);
  REQUIRE(shared.size() == separate.size());
  for (std::size_t i = 0; i < shared.size(); ++i) {
    INFO("pair " << i);
    CHECK(shared[i].first == Approx(separate[i].first).epsilon(1e-6).margin(1e-5));
    CHECK(shared[i].second == Approx(separate[i].second).epsilon(1e-6).margin(1e-5));
    CHECK(shared[i].first != Approx(shared[i].second).margin(1e-3));  // Not one response twice.
  }
}

TEST_CASE("share_prompt: DPO with packed pairs gives the run with separate rows",
          "[torch_backend][share_prompt][train]") {
  BackendTempDir tmp;
  auto train = [&](bool share, bool lora, const std::string& name) {
    auto backend = mr::test::make_backend(mr::test::shared_tiny_model());
    training::TrainingOptions o;
    o.learning_rate = lora ? 1e-2 : 1e-3;
    o.lr_schedule = training::LrSchedule::Constant;
    o.warmup_ratio = 0;
    o.epochs = 2;
    o.batch_size = 2;
    o.micro_batch_size = 2;
    o.lora = lora;
    o.lora_r = 4;
    o.lora_dropout = 0;
    o.seed = 5;
    o.share_prompt = share;
    sdk::TrainingJob job;
    job.output_dir = tmp.path() / name;
    std::vector<double> losses;
    job.on_step = [&](const sdk::StepMetrics& m) { losses.push_back(m.values.at("loss")); };
    training::train_preference(*backend->trainable(), pairs(), training::dpo_loss(0.1), o, job);
    return losses;
  };
  for (const bool lora : {false, true}) {
    INFO("lora " << lora);
    const std::string tag = lora ? "-lora" : "";
    const auto separate = train(false, lora, "separate" + tag);
    const auto shared = train(true, lora, "shared" + tag);
    REQUIRE(separate.size() == 4);
    REQUIRE(shared.size() == separate.size());
    CHECK(separate.front() != Approx(separate.back()).margin(1e-4));  // It trained.
    for (std::size_t i = 0; i < shared.size(); ++i)
      CHECK(shared[i] == Approx(separate[i]).epsilon(1e-5));
    auto a = tb::load_causal_lm(tmp.path() / ("separate" + tag));
    auto b = tb::load_causal_lm(tmp.path() / ("shared" + tag));
    double worst = 0;
    auto pa = a->named_parameters(), pb = b->named_parameters();
    for (auto& p : pa)
      worst = std::max(worst, (p.value() - pb[p.key()]).abs().max().item<double>());
    CHECK(worst < 1e-5);
  }
}
