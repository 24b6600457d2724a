// The training-side kernels of mr_torch_model: target_logprobs() (blocked logits recomputed in
// backward) against forward() + log_softmax, and the fused q/k/v and gate/up products' gradients
// against finite differences, with and without LoRA; fused storage that follows replaced
// parameters.
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "metareward/torch_model/causal_lm.hpp"
#include "model_test_util.hpp"

namespace tb = mr::torch_backend;
using mr::test::tiny_config_json;

namespace {

// Llama (GQA, untied) and Qwen2 (q/k/v biases, tied embeddings).
std::vector<std::pair<std::string, std::string>> variants() {
  return {{"llama", tiny_config_json("LlamaForCausalLM", false, 0.3)},
          {"qwen2", tiny_config_json("Qwen2ForCausalLM", true, 0.3, 48, 6, 2)}};
}

tb::CausalLM make_model(const std::string& json) {
  tb::CausalLM model(tb::parse_model_config_text(json, "tiny"));
  model->initialize(11);
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters())
    if (p.key().find(".bias") != std::string::npos) p.value().uniform_(-0.5, 0.5);
  return model;
}

// A rank-2 adapter without dropout whose lora_B is random, so that it changes the outputs.
void add_random_lora(tb::CausalLM& model) {
  tb::LoraConfig config;
  config.r = 2;
  config.dropout = 0;
  model->add_lora(config, 5);
  torch::NoGradGuard no_grad;
  for (auto& layer : model->lora_layers()) layer.b.uniform_(-0.3, 0.3);
}

// A right-padded batch of 3 rows and the positions that predict response tokens.
struct Batch {
  torch::Tensor ids, mask, pos, rows, targets, weights;
};

Batch make_batch() {
  const std::vector<std::int64_t> lengths = {9, 5, 7};
  const std::int64_t width = 9;
  Batch b;
  b.ids = torch::zeros({3, width}, torch::kLong);
  b.mask = torch::zeros({3, width}, torch::kLong);
  std::vector<std::int64_t> rows, targets;
  for (std::int64_t r = 0; r < 3; ++r) {
    for (std::int64_t i = 0; i < lengths[r]; ++i) {
      b.ids[r][i] = 3 + (i * 53 + r * 29 + 5) % 290;
      b.mask[r][i] = 1;
    }
    for (std::int64_t i = 1; i + 1 < lengths[r]; ++i) {  // Token 0 is the "prompt".
      rows.push_back(r * width + i);
      targets.push_back(b.ids[r][i + 1].item<std::int64_t>());
    }
  }
  b.pos = tb::position_ids_from_mask(b.mask);
  b.rows = torch::tensor(rows, torch::kLong);
  b.targets = torch::tensor(targets, torch::kLong);
  torch::manual_seed(3);
  b.weights = torch::randn({static_cast<std::int64_t>(rows.size())});
  return b;
}

torch::Tensor plain_logprobs(tb::CausalLMImpl& m, const Batch& b) {
  auto logits = m.forward(b.ids, b.mask, b.pos);
  auto lp = torch::log_softmax(logits.reshape({-1, logits.size(-1)}), -1);
  return lp.index_select(0, b.rows).gather(1, b.targets.unsqueeze(1)).squeeze(1);
}

std::vector<torch::Tensor> grads_of(std::vector<torch::Tensor>& params, const torch::Tensor& y) {
  for (auto& p : params) p.mutable_grad() = torch::Tensor();
  y.backward();
  std::vector<torch::Tensor> out;
  for (auto& p : params)
    out.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  return out;
}

}  // namespace

TEST_CASE("torch model: target_logprobs equals forward with log_softmax and its gradients",
          "[torch_model][train]") {
  const Batch b = make_batch();
  for (const auto& [name, json] : variants()) {
    for (const std::int64_t block : {0, 1, 4}) {
      DYNAMIC_SECTION(name << " block rows " << block) {
        auto model = make_model(json);
        auto params = model->trainable_parameters();
        const auto plain = plain_logprobs(*model, b);
        const auto plain_grads = grads_of(params, (plain * b.weights).sum());
        const auto blocked = model->target_logprobs(b.ids, b.mask, b.pos, b.rows, b.targets, block);
        REQUIRE(blocked.scalar_type() == torch::kFloat32);
        CHECK(torch::allclose(blocked, plain, 1e-5, 1e-5));
        const auto blocked_grads = grads_of(params, (blocked * b.weights).sum());
        for (std::size_t i = 0; i < params.size(); ++i) {
          INFO("parameter " << i);
          CHECK(torch::allclose(blocked_grads[i], plain_grads[i], 1e-4, 1e-5));
          CHECK(blocked_grads[i].abs().sum().item<double>() > 0);
        }
      }
    }
  }
}

TEST_CASE("torch model: gradients through the fused projections match finite differences",
          "[torch_model][train]") {
  const Batch b = make_batch();
  for (const bool lora : {false, true}) {
    for (const auto& [name, json] : variants()) {
      DYNAMIC_SECTION(name << (lora ? " with LoRA" : "")) {
        auto model = make_model(json);
        if (lora) {
          add_random_lora(model);
        }
        auto params = model->trainable_parameters();
        auto f = [&] {
          return (model->target_logprobs(b.ids, b.mask, b.pos, b.rows, b.targets) * b.weights)
              .sum();
        };
        const auto grads = grads_of(params, f());
        // Directional derivative along a random direction over every trainable tensor (so over
        // q/k/v and gate/up blocks of the fused storage, and over each adapter's slice).
        torch::manual_seed(9);
        std::vector<torch::Tensor> dir;
        double analytic = 0;
        for (std::size_t i = 0; i < params.size(); ++i) {
          // Scaled to each tensor's magnitude, so that one step moves every tensor alike.
          dir.push_back(torch::randn_like(params[i]) * params[i].abs().mean());
          analytic +=
              (grads[i].to(torch::kDouble) * dir[i].to(torch::kDouble)).sum().item<double>();
        }
        const double eps = 1e-3;  // Central differences agree to ~1e-3 from 3e-3 to 1e-4.
        auto shifted = [&](double s) {
          torch::NoGradGuard no_grad;
          for (std::size_t i = 0; i < params.size(); ++i) params[i].add_(dir[i], s);
          const double v = f().item<double>();
          for (std::size_t i = 0; i < params.size(); ++i) params[i].sub_(dir[i], s);
          return v;
        };
        const double numeric = (shifted(eps) - shifted(-eps)) / (2 * eps);
        INFO("analytic " << analytic << " numeric " << numeric);
        CHECK(std::abs(analytic) > 1.0);
        CHECK(numeric == Approx(analytic).epsilon(5e-3));
      }
    }
  }
}

TEST_CASE("torch model: fused projections follow parameters replaced with set_data",
          "[torch_model]") {
  const Batch b = make_batch();
  auto model = make_model(variants()[1].second);
  auto other = make_model(variants()[1].second);
  torch::NoGradGuard no_grad;
  const auto before = model->forward(b.ids, b.mask, b.pos);
  for (auto& p : model->named_parameters()) {
    const auto& key = p.key();
    if (key.find("k_proj") != std::string::npos || key.find("up_proj") != std::string::npos)
      p.value().set_data(p.value().clone() * 1.5);  // New storage, outside the fused one.
  }
  const auto after = model->forward(b.ids, b.mask, b.pos);
  CHECK_FALSE(torch::allclose(before, after, 1e-3, 1e-3));
  auto others = other->named_parameters();
  for (auto& p : model->named_parameters()) others[p.key()].copy_(p.value());
  CHECK(torch::allclose(after, other->forward(b.ids, b.mask, b.pos), 1e-6, 1e-6));
  // In-place updates after the re-fusion reach the product too.
  for (auto& p : model->named_parameters())
    if (p.key().find("v_proj.weight") != std::string::npos) p.value().mul_(0.5);
  for (auto& p : other->named_parameters())
    if (p.key().find("v_proj.weight") != std::string::npos) p.value().mul_(0.5);
  CHECK(torch::allclose(model->forward(b.ids, b.mask, b.pos), other->forward(b.ids, b.mask, b.pos),
                        1e-6, 1e-6));
}

namespace {

// Rows that each pack a prompt and its continuations (row 0: 2, row 1: 3), right-padded, and the
// same prompt + continuation sequences unpacked one per row; targets in the same order in both:
// every continuation token, predicted by the position before it in its own sequence.
struct PackedCase {
  torch::Tensor ids, branch, pos, rows, targets;  // Packed.
  Batch unpacked;                                 // rows/targets of the unpacked sequences.
};

PackedCase make_packed_case() {
  const std::vector<std::vector<std::int64_t>> prompts = {{5, 17, 40, 9}, {260, 3, 77, 8, 120, 44}};
  const std::vector<std::vector<std::vector<std::int64_t>>> continuations = {
      {{11, 12, 13}, {200, 201, 202, 203, 204}}, {{90, 91}, {30, 31, 32, 33}, {7}}};
  PackedCase c;
  std::int64_t packed_width = 0, unpacked_width = 0, sequences = 0;
  for (std::size_t g = 0; g < prompts.size(); ++g) {
    auto len = static_cast<std::int64_t>(prompts[g].size());
    for (const auto& cont : continuations[g]) {
      len += static_cast<std::int64_t>(cont.size());
      unpacked_width = std::max<std::int64_t>(
          unpacked_width, static_cast<std::int64_t>(prompts[g].size() + cont.size()));
      ++sequences;
    }
    packed_width = std::max(packed_width, len + 1);  // One padding column at least.
  }
  const auto groups = static_cast<std::int64_t>(prompts.size());
  c.ids = torch::zeros({groups, packed_width}, torch::kLong);
  c.branch = torch::full({groups, packed_width}, -1, torch::kLong);
  c.pos = torch::zeros({groups, packed_width}, torch::kLong);
  c.unpacked.ids = torch::zeros({sequences, unpacked_width}, torch::kLong);
  c.unpacked.mask = torch::zeros({sequences, unpacked_width}, torch::kLong);
  std::vector<std::int64_t> rows, targets, urows;
  std::int64_t seq = 0;
  for (std::int64_t g = 0; g < groups; ++g) {
    const auto& prompt = prompts[static_cast<std::size_t>(g)];
    const auto p = static_cast<std::int64_t>(prompt.size());
    for (std::int64_t t = 0; t < p; ++t) {
      c.ids[g][t] = prompt[static_cast<std::size_t>(t)];
      c.branch[g][t] = 0;
      c.pos[g][t] = t;
    }
    std::int64_t offset = p;
    std::int64_t k = 0;
    for (const auto& cont : continuations[static_cast<std::size_t>(g)]) {
      ++k;
      for (std::int64_t t = 0; t < p; ++t) {
        c.unpacked.ids[seq][t] = prompt[static_cast<std::size_t>(t)];
        c.unpacked.mask[seq][t] = 1;
      }
      for (std::size_t j = 0; j < cont.size(); ++j) {
        const auto jj = static_cast<std::int64_t>(j);
        c.ids[g][offset + jj] = cont[j];
        c.branch[g][offset + jj] = k;
        c.pos[g][offset + jj] = p + jj;
        c.unpacked.ids[seq][p + jj] = cont[j];
        c.unpacked.mask[seq][p + jj] = 1;
        rows.push_back(g * packed_width + (j == 0 ? p - 1 : offset + jj - 1));
        urows.push_back(seq * unpacked_width + p + jj - 1);
        targets.push_back(cont[j]);
      }
      offset += static_cast<std::int64_t>(cont.size());
      ++seq;
    }
  }
  c.rows = torch::tensor(rows, torch::kLong);
  c.targets = torch::tensor(targets, torch::kLong);
  c.unpacked.pos = tb::position_ids_from_mask(c.unpacked.mask);
  c.unpacked.rows = torch::tensor(urows, torch::kLong);
  c.unpacked.targets = c.targets;
  torch::manual_seed(4);
  c.unpacked.weights = torch::randn({static_cast<std::int64_t>(rows.size())});
  return c;
}

}  // namespace

TEST_CASE("torch model: branched_target_logprobs of packed rows equals the unpacked sequences",
          "[torch_model][train]") {
  const PackedCase c = make_packed_case();
  const Batch& u = c.unpacked;
  for (const auto& [name, json] : variants()) {
    for (const char* mode : {"plain", "lora", "checkpointing"}) {
      DYNAMIC_SECTION(name << " " << mode) {
        auto model = make_model(json);
        if (std::string(mode) == "lora") {
          add_random_lora(model);
        }
        model->set_gradient_checkpointing(std::string(mode) == "checkpointing");
        auto params = model->trainable_parameters();
        const auto plain = model->target_logprobs(u.ids, u.mask, u.pos, u.rows, u.targets);
        const auto plain_grads = grads_of(params, (plain * u.weights).sum());
        const auto packed =
            model->branched_target_logprobs(c.ids, c.branch, c.pos, c.rows, c.targets);
        REQUIRE(packed.sizes() == plain.sizes());
        // A continuation that saw another one's tokens would differ by far more than rounding.
        CHECK(torch::allclose(packed, plain, 1e-5, 1e-5));
        const auto packed_grads = grads_of(params, (packed * u.weights).sum());
        for (std::size_t i = 0; i < params.size(); ++i) {
          // Float rounding of differently shaped products: ~1e-5 of the tensor's largest
          // gradient (a continuation seeing another's tokens would differ by O(1) of it).
          const double diff = (packed_grads[i] - plain_grads[i]).abs().max().item<double>();
          const double scale = plain_grads[i].abs().max().item<double>();
          INFO("parameter " << i << " max diff " << diff << " of max " << scale);
          CHECK(scale > 0);
          CHECK(diff <= 5e-5 * scale);
        }
      }
    }
  }
}

TEST_CASE("torch model: branched_target_logprobs refuses inconsistent branch ids",
          "[torch_model][train]") {
  const PackedCase c = make_packed_case();
  auto model = make_model(variants()[0].second);
  CHECK_THROWS_WITH(
      model->branched_target_logprobs(c.ids, c.branch.narrow(1, 0, 3), c.pos, c.rows, c.targets),
      Catch::Contains("branch_ids") && Catch::Contains("must match input_ids"));
  auto bad = c.branch.clone();
  bad[0][1] = -2;
  CHECK_THROWS_WITH(model->branched_target_logprobs(c.ids, bad, c.pos, c.rows, c.targets),
                    Catch::Contains("branch ids must be >= -1"));
  CHECK_THROWS_WITH(
      model->branched_target_logprobs(c.ids, c.branch, c.pos, c.rows + 1000, c.targets),
      Catch::Contains("outside the batch's"));
}
