// The packed inference layout (packed_linear.cpp): the product against a scalar fused
// multiply-add chain and a float64 reference for any number of rows, per-row results
// independent of the batch and the threads, packing as a lossless permutation, the row gather of
// a packed embedding matrix, what it refuses, and a model whose weights are packed: the same
// logits up to rounding, training calls refused until unpacked, the weights back bit for bit.
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "metareward/sdk/error.hpp"
#include "metareward/torch_model/causal_lm.hpp"
#include "metareward/torch_model/packed_linear.hpp"
#include "model_test_util.hpp"
#include "skip.hpp"

namespace tb = mr::torch_backend;

namespace {

double rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  const auto ref = b.to(torch::kFloat64);
  return (a.to(torch::kFloat64) - ref).abs().max().item<double>() /
         std::max(1.0, ref.abs().max().item<double>());
}

// What packed_linear documents, one output at a time: fmaf over the input features in order
// from 0, then + bias.
torch::Tensor fma_chain_reference(const torch::Tensor& x,  // [rows, in], contiguous
                                  const torch::Tensor& w,  // [out, in]
                                  const torch::Tensor& bias) {
  const auto rows = x.size(0), in = x.size(1), out = w.size(0);
  auto y = torch::empty({rows, out});
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < out; ++c) {
      float acc = 0.0f;
      for (std::int64_t k = 0; k < in; ++k) acc = std::fmaf(xp[r * in + k], wp[c * in + k], acc);
      yp[r * out + c] = bias.defined() ? acc + bias[c].item<float>() : acc;
    }
  return y;
}

std::map<std::string, torch::Tensor> parameter_copies(tb::CausalLMImpl& model) {
  std::map<std::string, torch::Tensor> copies;
  for (const auto& p : model.named_parameters()) copies[p.key()] = p.value().detach().clone();
  return copies;
}

}  // namespace

TEST_CASE("packed_linear is one fused multiply-add chain per output for any number of rows",
          "[torch_model][kernels][packed]") {
  if (!tb::packed_linear_supported()) MR_SKIP("this CPU has no AVX-512F: no packed weights here");
  c10::InferenceMode guard;
  torch::manual_seed(5);
  struct Shape {
    std::int64_t in, out;
  };
  // Blocks of 48 output features: exact multiples, one narrow last block (1, 5, 17, 33 wide),
  // a single narrow block; rows in tiles of 8 with every remainder, and past the 512-row chunk.
  for (const auto shape : {Shape{13, 5}, Shape{64, 49}, Shape{576, 960}, Shape{7, 100},
                           Shape{40, 61}, Shape{33, 48}, Shape{20, 113}}) {
    for (const bool with_bias : {false, true}) {
      for (const std::int64_t rows : {1, 2, 7, 8, 9, 15, 32, 64, 65, 600}) {
        if (rows == 600 && shape.out > 100) continue;  // The scalar reference is slow.
        DYNAMIC_SECTION("in " << shape.in << " out " << shape.out << " rows " << rows
                              << (with_bias ? " bias" : "")) {
          auto wide = torch::randn({rows, shape.in + 3});
          auto x = wide.narrow(1, 2, shape.in);  // A strided view, as the gate half of gate/up.
          const auto w = torch::randn({shape.out, shape.in});
          const auto b = with_bias ? torch::randn({shape.out}) : torch::Tensor();
          auto packed = w.clone();
          tb::pack_weight(packed);
          const auto y = tb::packed_linear(x, packed, b);
          REQUIRE(y.sizes() == torch::IntArrayRef({rows, shape.out}));
          CHECK(torch::equal(y, fma_chain_reference(x.contiguous(), w, b)));
          auto ref = torch::matmul(x.to(torch::kFloat64), w.to(torch::kFloat64).t());
          if (with_bias) ref = ref + b.to(torch::kFloat64);
          CHECK(rel_diff(y, ref) < 1e-5);
          // Each row alone gives the same bits as in the batch, so does a 3-D input, and so
          // does one thread instead of all.
          for (const std::int64_t r : {std::int64_t{0}, rows / 2, rows - 1})
            CHECK(torch::equal(tb::packed_linear(x.narrow(0, r, 1), packed, b), y.narrow(0, r, 1)));
          CHECK(torch::equal(tb::packed_linear(x.unsqueeze(1), packed, b).squeeze(1), y));
          const int threads = at::get_num_threads();
          at::set_num_threads(1);
          const auto one_thread = tb::packed_linear(x, packed, b);
          at::set_num_threads(threads);
          CHECK(torch::equal(one_thread, y));
        }
      }
    }
  }
}

TEST_CASE("pack_weight is a lossless permutation inside the weight's own storage",
          "[torch_model][kernels][packed]") {
  if (!tb::packed_linear_supported()) MR_SKIP("this CPU has no AVX-512F: no packed weights here");
  torch::manual_seed(6);
  for (const std::int64_t out : {1, 47, 48, 49, 100}) {
    DYNAMIC_SECTION("out " << out) {
      const std::int64_t in = 11;
      const auto w = torch::randn({out, in});
      auto packed = w.clone();
      const void* storage = packed.data_ptr();
      const auto version = packed._version();
      tb::pack_weight(packed);
      CHECK(packed.data_ptr() == storage);
      CHECK(packed._version() == version);
      // The documented layout: block b of up to 48 rows holds W's rows transposed.
      const float* p = packed.data_ptr<float>();
      for (std::int64_t row = 0; row < out; ++row) {
        const std::int64_t b = row / tb::kPackedPanelRows, j = row % tb::kPackedPanelRows;
        const std::int64_t width = std::min(tb::kPackedPanelRows, out - b * tb::kPackedPanelRows);
        for (std::int64_t k = 0; k < in; ++k)
          CHECK(p[b * tb::kPackedPanelRows * in + k * width + j] == w[row][k].item<float>());
      }
      if (out > 1) CHECK_FALSE(torch::equal(packed, w));
      // The gather of a packed embedding matrix gives W's rows.
      const auto ids = torch::tensor({out - 1, std::int64_t{0}, out / 2, out - 1}, torch::kLong);
      CHECK(torch::equal(tb::packed_weight_rows(packed, ids.view({2, 2})),
                         w.index_select(0, ids).view({2, 2, in})));
      CHECK_THROWS_AS(tb::packed_weight_rows(packed, torch::tensor({out}, torch::kLong)),
                      std::invalid_argument);
      CHECK_THROWS_AS(tb::packed_weight_rows(packed, torch::tensor({-1}, torch::kLong)),
                      std::invalid_argument);
      tb::unpack_weight(packed);
      CHECK(torch::equal(packed, w));
    }
  }
}

TEST_CASE("packed_linear refuses what it does not compute", "[torch_model][kernels][packed]") {
  const auto w = torch::randn({6, 8});
  CHECK_FALSE(tb::packable_weight(w.to(torch::kFloat64)));
  CHECK_FALSE(tb::packable_weight(w.t()));  // Not contiguous.
  CHECK_FALSE(tb::packable_weight(torch::randn({0, 8})));
  CHECK_FALSE(tb::packable_weight(torch::randn({6})));
  CHECK_FALSE(tb::packable_weight(torch::Tensor()));
  CHECK_THROWS_AS(tb::pack_weight(w.to(torch::kFloat64)), std::invalid_argument);
  if (!tb::packed_linear_supported()) {
    CHECK_FALSE(tb::packable_weight(w));
    CHECK_THROWS_AS(tb::pack_weight(w.clone()), std::invalid_argument);
    MR_SKIP("this CPU has no AVX-512F: the product itself is not tested here");
  }
  CHECK(tb::packable_weight(w));
  auto packed = w.clone();
  tb::pack_weight(packed);
  CHECK_THROWS_AS(tb::packed_linear(torch::randn({2, 7}), packed, {}), std::invalid_argument);
  CHECK_THROWS_AS(tb::packed_linear(torch::randn({2, 8}, torch::kFloat64), packed, {}),
                  std::invalid_argument);
  CHECK_THROWS_AS(tb::packed_linear(torch::randn({2, 8}), packed, torch::randn({5})),
                  std::invalid_argument);
  CHECK(tb::packed_linear(torch::randn({0, 8}), packed, {}).sizes() == torch::IntArrayRef({0, 6}));
}

TEST_CASE("torch model: packed inference weights give the same logits and come back bit for bit",
          "[torch_model][kernels][packed]") {
  if (!tb::packed_linear_supported()) MR_SKIP("this CPU has no AVX-512F: no packed weights here");
  // Tied (the embedding matrix is packed for the LM head) and untied; Qwen2 for q/k/v biases.
  for (const auto& [arch, tied] : std::vector<std::pair<std::string, bool>>{
           {"LlamaForCausalLM", true}, {"LlamaForCausalLM", false}, {"Qwen2ForCausalLM", false}}) {
    DYNAMIC_SECTION(arch << (tied ? " tied" : " untied")) {
      tb::CausalLM model(tb::parse_model_config_text(
          mr::test::tiny_config_json(arch, tied, 0.3, 64, 4, 2), "tiny"));
      model->initialize(4);
      model->eval();
      const auto before = parameter_copies(*model);
      const std::int64_t rows = 5, prompt = 7, steps = 3;
      const auto ids = torch::randint(0, 300, {rows, prompt}, torch::kLong);
      // Prefill, then greedy decode steps (the decode kernels' path).
      const auto decode = [&](const torch::Tensor& prompt_ids) {
        c10::InferenceMode guard;
        const auto n = prompt_ids.size(0);
        auto cache = model->make_cache(n, prompt + steps);
        auto mask = torch::ones({n, prompt}, torch::kLong);
        auto logits = model->forward(prompt_ids, mask, tb::position_ids_from_mask(mask), &cache);
        std::vector<torch::Tensor> out{logits};
        auto last = logits.select(1, prompt - 1);
        for (std::int64_t i = 0; i < steps; ++i) {
          auto next = last.argmax(-1).view({n, 1});
          mask = torch::cat({mask, torch::ones({n, 1}, torch::kLong)}, 1);
          last = model->forward(next, mask, mask.sum(1, true) - 1, &cache).select(1, 0);
          out.push_back(last.unsqueeze(1));
        }
        return torch::cat(out, 1);  // [n, prompt + steps, V]
      };
      const auto reference = decode(ids);
      REQUIRE(model->pack_inference_weights());
      CHECK(model->inference_weights_packed());
      CHECK(model->pack_inference_weights());  // Idempotent.
      const auto packed = decode(ids);
      CHECK(rel_diff(packed, reference) < 1e-4);
      // The argmax path is the same tokens (the logits differ by rounding only).
      CHECK(torch::equal(packed.argmax(-1), reference.argmax(-1)));
      for (std::int64_t r : {std::int64_t{0}, rows - 1}) {
        INFO("row " << r);
        CHECK(torch::equal(decode(ids.narrow(0, r, 1)), packed.narrow(0, r, 1)));
      }
      // Nothing that reads the parameters as weights, or records gradients, runs while packed.
      {
        auto mask = torch::ones({1, prompt}, torch::kLong);
        const auto pos = tb::position_ids_from_mask(mask);
        CHECK_THROWS_AS(model->forward(ids.narrow(0, 0, 1), mask, pos), mr::sdk::BackendError);
        torch::NoGradGuard no_grad;
        CHECK_THROWS_AS(
            model->target_logprobs(ids.narrow(0, 0, 1), mask, pos, torch::tensor({0}, torch::kLong),
                                   torch::tensor({5}, torch::kLong)),
            mr::sdk::BackendError);
        mr::test::TempDir dir;
        CHECK_THROWS_AS(tb::save_checkpoint(*model, dir.path() / "out"), mr::sdk::BackendError);
        CHECK_THROWS_AS(model->initialize(1), mr::sdk::BackendError);
      }
      model->unpack_inference_weights();
      CHECK_FALSE(model->inference_weights_packed());
      for (const auto& p : model->named_parameters()) {
        INFO(p.key());
        CHECK(torch::equal(p.value(), before.at(p.key())));
      }
      CHECK(torch::equal(decode(ids), reference));
      // A parameter holding a gradient (a step in flight) keeps the normal layout.
      auto param = model->parameters().front();
      param.mutable_grad() = torch::zeros_like(param);
      CHECK_FALSE(model->pack_inference_weights());
      CHECK_FALSE(model->inference_weights_packed());
      param.mutable_grad() = torch::Tensor();
      CHECK(model->pack_inference_weights());
    }
  }
}
