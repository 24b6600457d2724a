// Preference losses, sequence log-probs and batching of the shared training loop.
#include <catch2/catch.hpp>

#include <cmath>

#include "metareward/sdk/error.hpp"
#include "metareward/training/training.hpp"
#include "tiny_model.hpp"

namespace training = mr::training;
using mr::sdk::TokenizedExample;
using mr::test::TinyCausalLm;

namespace {

torch::Tensor vec(std::vector<double> v, bool grad = false) {
  return torch::tensor(v, torch::kFloat64).set_requires_grad(grad);
}

double sigmoid(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}

training::PairLogps hand_case() {
  training::PairLogps l;
  l.policy_chosen = vec({-1.0}, true);
  l.policy_rejected = vec({-2.0}, true);
  l.reference_chosen = vec({-1.5});
  l.reference_rejected = vec({-1.5});
  l.chosen_tokens = vec({2.0});
  l.rejected_tokens = vec({5.0});
  return l;
}

}  // namespace

TEST_CASE("dpo loss: value, gradient and metrics on a hand-computed pair", "[optimizer][loss]") {
  // z = beta * ((-1 - -1.5) - (-2 - -1.5)) = 0.1 * (0.5 + 0.5) = 0.1; loss = log(1 + e^-0.1).
  const auto loss = training::dpo_loss(0.1);
  auto l = hand_case();
  auto r = loss.compute(l);
  REQUIRE(r.losses.numel() == 1);
  CHECK(r.losses.item<double>() == Approx(0.6443966600735709).epsilon(1e-14));
  r.losses.sum().backward();
  SECTION("d loss / d log pi(y_c) = -beta * sigma(-z), and the opposite for y_r") {
    CHECK(l.policy_chosen.grad().item<double>() == Approx(-0.1 * sigmoid(-0.1)).epsilon(1e-14));
    CHECK(l.policy_rejected.grad().item<double>() == Approx(0.1 * sigmoid(-0.1)).epsilon(1e-14));
  }
  SECTION("rewards are beta * (log pi - log pi_ref); margin and accuracy follow") {
    CHECK(r.metrics.at("rewards/chosen").item<double>() == Approx(0.05));
    CHECK(r.metrics.at("rewards/rejected").item<double>() == Approx(-0.05));
    CHECK(r.metrics.at("margin").item<double>() == Approx(0.1));
    CHECK(r.metrics.at("accuracy").item<double>() == 1.0);
  }
  SECTION("the id names the loss and beta (recorded in the resumable state)") {
    CHECK(loss.id == "dpo beta=0.1");
    CHECK(loss.needs_reference);
  }
}

TEST_CASE("dpo loss: a policy equal to the reference gives log 2 and zero reward",
          "[optimizer][loss]") {
  training::PairLogps l;
  l.policy_chosen = vec({-3.0, -7.0});
  l.policy_rejected = vec({-4.0, -1.0});
  l.reference_chosen = l.policy_chosen.clone();
  l.reference_rejected = l.policy_rejected.clone();
  l.chosen_tokens = vec({1, 1});
  l.rejected_tokens = vec({1, 1});
  const auto r = training::dpo_loss(0.5).compute(l);
  CHECK(torch::allclose(r.losses, torch::full({2}, std::log(2.0), torch::kFloat64)));
  CHECK(r.metrics.at("accuracy").sum().item<double>() == 0.0);  // margin 0 is not a win
}

TEST_CASE("dpo loss: invalid beta is a config error", "[optimizer][loss]") {
  CHECK_THROWS_AS(training::dpo_loss(0.0), mr::sdk::ConfigError);
  CHECK_THROWS_AS(training::dpo_loss(-1.0), mr::sdk::ConfigError);
  CHECK_THROWS_AS(training::rpo_loss(0.1, -0.5), mr::sdk::ConfigError);
}

TEST_CASE("rpo loss: DPO plus alpha times the chosen NLL per token", "[optimizer][loss]") {
  // Chosen: log pi = -1 over 2 tokens -> NLL/token = 0.5. loss = 0.64439666 + 0.7 * 0.5.
  const auto loss = training::rpo_loss(0.1, 0.7);
  auto l = hand_case();
  auto r = loss.compute(l);
  CHECK(r.losses.item<double>() == Approx(0.6443966600735709 + 0.35).epsilon(1e-14));
  CHECK(r.metrics.at("nll").item<double>() == Approx(0.5));
  CHECK(r.metrics.at("margin").item<double>() == Approx(0.1));  // DPO metrics kept
  r.losses.sum().backward();
  SECTION("the NLL term only adds -alpha/|y_c| to the chosen gradient") {
    CHECK(l.policy_chosen.grad().item<double>() ==
          Approx(-0.1 * sigmoid(-0.1) - 0.7 / 2.0).epsilon(1e-14));
    CHECK(l.policy_rejected.grad().item<double>() == Approx(0.1 * sigmoid(-0.1)).epsilon(1e-14));
  }
  CHECK(loss.id == "rpo beta=0.1 alpha=0.7");
  SECTION("alpha 0 is exactly DPO") {
    auto l0 = hand_case();
    CHECK(training::rpo_loss(0.1, 0.0).compute(l0).losses.item<double>() ==
          Approx(0.6443966600735709).epsilon(1e-14));
  }
}

TEST_CASE("collate: right padding, attention mask and response targets", "[optimizer][batch]") {
  TokenizedExample a{{1, 3, 9}, {10, 11}};  // length 5
  TokenizedExample b{{1, 4}, {12}};         // length 3
  const auto batch = training::collate({&a, &b}, torch::kCPU);
  CHECK(batch.input_ids.sizes() == torch::IntArrayRef({2, 5}));
  CHECK(torch::equal(batch.input_ids, torch::tensor({{1, 3, 9, 10, 11}, {1, 4, 12, 0, 0}})));
  CHECK(torch::equal(batch.attention_mask, torch::tensor({{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}})));
  SECTION("only positions whose next token is a response token are scored") {
    // a: positions 2, 3 predict 10, 11; b: position 1 predicts 12 (flat index 5 + 1).
    CHECK(torch::equal(batch.target_rows, torch::tensor({2, 3, 6})));
    CHECK(torch::equal(batch.target_ids, torch::tensor({10, 11, 12})));
    CHECK(torch::equal(batch.target_sequence, torch::tensor({0, 0, 1})));
    CHECK(batch.response_tokens == std::vector<std::int64_t>{2, 1});
    CHECK(batch.real_tokens == 8);
  }
}

TEST_CASE("sequence log-probs: sums of response-token log-softmax", "[optimizer][batch]") {
  TokenizedExample a{{1, 2}, {3, 0}};
  const auto batch = training::collate({&a}, torch::kCPU);
  const auto logits = torch::randn({1, 4, 5}, torch::kFloat64);
  const auto lsm = torch::log_softmax(logits, -1);
  const double expected = lsm[0][1][3].item<double>() + lsm[0][2][0].item<double>();
  CHECK(training::sequence_logps(logits, batch).item<double>() == Approx(expected).epsilon(1e-12));
  SECTION("wrong logits shape is a backend error naming the shapes") {
    CHECK_THROWS_WITH(training::sequence_logps(torch::zeros({1, 3, 5}), batch),
                      Catch::Contains("[1, 3, 5]"));
  }
}

TEST_CASE("dpo loss: prompt and padding positions carry no gradient", "[optimizer][loss]") {
  // Pair with a 4-token prompt; the rejected sequence is shorter, so it is padded.
  TokenizedExample chosen{{1, 3, 8, 9}, {10, 11, 12}};
  TokenizedExample rejected{{1, 3, 8, 9}, {13}};
  const auto batch = training::collate({&chosen, &rejected}, torch::kCPU);
  auto logits = torch::randn({2, 7, 16}, torch::kFloat64).set_requires_grad(true);
  const auto lp = training::sequence_logps(logits, batch);
  training::PairLogps l{lp.slice(0, 0, 1), lp.slice(0, 1, 2), vec({-5.0}),
                        vec({-4.0}),       vec({3.0}),        vec({1.0})};
  training::dpo_loss(0.1).compute(l).losses.sum().backward();
  const auto g = logits.grad().abs().sum(-1);  // [2, 7]: gradient mass per position
  for (int t = 0; t < 3; ++t) {
    CHECK(g[0][t].item<double>() == 0.0);  // prompt positions before the last prompt token
    CHECK(g[1][t].item<double>() == 0.0);
  }
  for (int t = 3; t < 6; ++t) CHECK(g[0][t].item<double>() > 0.0);   // predict 10, 11, 12
  CHECK(g[0][6].item<double>() == 0.0);                              // last token predicts nothing
  CHECK(g[1][3].item<double>() > 0.0);                               // predicts 13
  for (int t = 4; t < 7; ++t) CHECK(g[1][t].item<double>() == 0.0);  // after the end + padding
}

TEST_CASE("dpo loss: autograd gradient through the tiny model matches finite differences",
          "[optimizer][loss]") {
  TinyCausalLm model(11, /*dim=*/4, /*hidden=*/6);
  const auto pairs = mr::test::tiny_pairs(3);
  training::TrainingOptions opts;
  auto prepared = training::prepare_pairs(model, pairs, opts);
  REQUIRE(prepared.pairs.size() == 3);
  std::vector<const TokenizedExample*> seqs;
  for (const auto& p : prepared.pairs) seqs.push_back(&p.chosen);
  for (const auto& p : prepared.pairs) seqs.push_back(&p.rejected);
  const auto batch = training::collate(seqs, torch::kCPU);
  const auto loss_fn = training::dpo_loss(0.3);
  // A reference that is not the model, so the loss is away from log 2.
  const auto ref_c = vec({-20.0, -18.0, -25.0}), ref_r = vec({-22.0, -30.0, -21.0});
  auto loss_of = [&](TinyCausalLm& m) {
    const auto lp =
        training::sequence_logps(m.forward(batch.input_ids, batch.attention_mask), batch);
    training::PairLogps l{lp.slice(0, 0, 3), lp.slice(0, 3, 6), ref_c, ref_r,
                          vec({1, 1, 1}),    vec({1, 1, 1})};
    return loss_fn.compute(l).losses.mean();
  };
  loss_of(model).backward();
  auto params = model.parameters();
  std::mt19937_64 rng(3);
  const double h = 1e-6;
  int checked = 0;
  for (auto& p : params) {
    const auto flat = p.detach().view({-1});
    const auto grad = p.grad().view({-1});
    for (int k = 0; k < 4; ++k) {
      const auto i = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(flat.numel()));
      const double x = flat[i].item<double>();
      torch::NoGradGuard no_grad;
      flat[i] = x + h;
      const double up = loss_of(model).item<double>();
      flat[i] = x - h;
      const double down = loss_of(model).item<double>();
      flat[i] = x;
      const double numeric = (up - down) / (2 * h);
      INFO("parameter entry " << i << ": autograd " << grad[i].item<double>() << ", numeric "
                              << numeric);
      CHECK(grad[i].item<double>() == Approx(numeric).margin(1e-8).epsilon(1e-5));
      ++checked;
    }
  }
  CHECK(checked == 24);
}

TEST_CASE("fit_to_length: responses are cut from the right, prompts never", "[optimizer][batch]") {
  SECTION("short enough: kept") {
    TokenizedExample ex{{1, 2, 3}, {4, 5}};
    CHECK(training::fit_to_length(ex, 5) == training::Fit::Kept);
    CHECK(ex.response_ids.size() == 2);
  }
  SECTION("too long: response truncated to fill max_length") {
    TokenizedExample ex{{1, 2, 3}, {4, 5, 6, 7}};
    CHECK(training::fit_to_length(ex, 5) == training::Fit::Truncated);
    CHECK(ex.prompt_ids == std::vector<std::int64_t>{1, 2, 3});
    CHECK(ex.response_ids == std::vector<std::int64_t>{4, 5});
  }
  SECTION("prompt leaves no room for a response token: dropped, unchanged") {
    TokenizedExample ex{{1, 2, 3}, {4}};
    CHECK(training::fit_to_length(ex, 3) == training::Fit::Dropped);
    CHECK(ex.response_ids.size() == 1);
  }
  SECTION("empty response: dropped") {
    TokenizedExample ex{{1, 2}, {}};
    CHECK(training::fit_to_length(ex, 10) == training::Fit::Dropped);
  }
}
