// The inference kernels of mr_torch_model (small_batch_linear.cpp, decode_kernels.cpp) against
// float64 references, their per-row results independent of the batch and of the thread count,
// the operands they refuse, and a model decoding a batch exactly as it decodes each row alone.
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <stdexcept>
#include <vector>

#include "decoder_layers.hpp"
#include "metareward/torch_model/causal_lm.hpp"
#include "metareward/torch_model/small_batch_linear.hpp"
#include "model_test_util.hpp"

namespace tb = mr::torch_backend;
namespace kernels = mr::torch_backend::detail;

namespace {

// Largest |a - b| relative to the largest |b| (at least 1).
double rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  const auto ref = b.to(torch::kFloat64);
  return (a.to(torch::kFloat64) - ref).abs().max().item<double>() /
         std::max(1.0, ref.abs().max().item<double>());
}

// HF's attention in float64: repeat_kv, scaled scores plus the additive mask, softmax.
torch::Tensor reference_attention(const torch::Tensor& q,  // [B, T, H, D]
                                  const torch::Tensor& k,  // [B, kv, S, D]
                                  const torch::Tensor& v,
                                  const torch::Tensor& bias,  // [B, 1, 1, T, S]
                                  double scale) {
  const auto b = q.size(0), t = q.size(1), heads = q.size(2), d = q.size(3);
  const auto rep = heads / k.size(1);
  auto kh = k.to(torch::kFloat64).repeat_interleave(rep, 1);  // [B, H, S, D]
  auto vh = v.to(torch::kFloat64).repeat_interleave(rep, 1);
  auto qh = q.to(torch::kFloat64).transpose(1, 2);  // [B, H, T, D]
  auto scores = torch::matmul(qh, kh.transpose(-1, -2)) * scale +
                bias.to(torch::kFloat64).view({b, 1, t, k.size(2)});
  auto out = torch::matmul(torch::softmax(scores, -1), vh);  // [B, H, T, D]
  return out.transpose(1, 2).reshape({b, t, heads * d});
}

}  // namespace

TEST_CASE("small_batch_linear equals a float64 product for every batch up to the limit",
          "[torch_model][kernels]") {
  if (!tb::cpu_has_avx2_fma()) {
    WARN("this CPU has no AVX2/FMA: small_batch_linear is never used here");
    CHECK_FALSE(tb::small_batch_linear_applies(torch::zeros({1, 8}), torch::zeros({4, 8}), {}));
    return;
  }
  c10::InferenceMode guard;
  torch::manual_seed(3);
  struct Shape {
    std::int64_t in, out;
  };
  // Every kernel this CPU runs (the default one, and AVX2 where the CPU also has AVX-512).
  std::vector<tb::SmallBatchIsa> isas;
  for (const auto isa : {tb::SmallBatchIsa::kAvx2Fma, tb::SmallBatchIsa::kAvx512}) {
    if (tb::cpu_runs(isa))
      isas.push_back(isa);
    else
      WARN("this CPU does not run the " << tb::isa_name(isa) << " kernel: not tested here");
  }
  REQUIRE(tb::cpu_runs(tb::small_batch_linear_isa()));
  // Input sizes with and without a tail of in % 8 or in % 16 features; output counts that leave
  // partial tiles and partial chunks.
  for (const auto isa : isas) {
    for (const auto shape :
         {Shape{13, 5}, Shape{64, 49}, Shape{576, 960}, Shape{7, 100}, Shape{40, 61}}) {
      for (const bool with_bias : {false, true}) {
        for (const std::int64_t rows : {1, 2, 3, 4, 5, 7, 8, 13, 32, 63, 64}) {
          DYNAMIC_SECTION(tb::isa_name(isa) << " in " << shape.in << " out " << shape.out
                                            << " rows " << rows << (with_bias ? " bias" : "")) {
            // x as a strided view (a slice of wider rows), as the gate half of gate/up.
            auto wide = torch::randn({rows, shape.in + 3});
            auto x = wide.narrow(1, 2, shape.in);
            auto w = torch::randn({shape.out, shape.in});
            auto b = with_bias ? torch::randn({shape.out}) : torch::Tensor();
            REQUIRE(tb::small_batch_linear_applies(x, w, b));
            const auto linear = [&](const torch::Tensor& in) {
              return tb::small_batch_linear(in, w, b, isa);
            };
            auto y = linear(x);
            REQUIRE(y.sizes() == torch::IntArrayRef({rows, shape.out}));
            auto ref = torch::matmul(x.to(torch::kFloat64), w.to(torch::kFloat64).t());
            if (with_bias) ref = ref + b.to(torch::kFloat64);
            CHECK(rel_diff(y, ref) < 1e-5);
            // Each row alone gives the same bits as in the batch.
            for (std::int64_t r = 0; r < rows; ++r)
              CHECK(torch::equal(linear(x.narrow(0, r, 1)), y.narrow(0, r, 1)));
            // So does a 3-D input, and one thread instead of all.
            CHECK(torch::equal(linear(x.unsqueeze(1)).squeeze(1), y));
            const int threads = at::get_num_threads();
            at::set_num_threads(1);
            const auto one_thread = linear(x);
            at::set_num_threads(threads);
            CHECK(torch::equal(one_thread, y));
            // The default kernel is this CPU's widest.
            if (isa == tb::small_batch_linear_isa())
              CHECK(torch::equal(tb::small_batch_linear(x, w, b), y));
          }
        }
      }
    }
  }
}

TEST_CASE("small_batch_linear refuses what it does not compute", "[torch_model][kernels]") {
  const auto w = torch::randn({6, 8});
  const auto x = torch::randn({2, 8});
  CHECK_FALSE(tb::small_batch_linear_applies(torch::randn({tb::kSmallBatchRows + 1, 8}), w, {}));
  CHECK_FALSE(tb::small_batch_linear_applies(x.to(torch::kFloat64), w.to(torch::kFloat64), {}));
  CHECK_FALSE(tb::small_batch_linear_applies(x, w.t().contiguous().t(), {}));  // Column-major.
  CHECK_FALSE(tb::small_batch_linear_applies(x, torch::randn({6, 9}), {}));
  CHECK_FALSE(tb::small_batch_linear_applies(x, w, torch::randn({5})));
  CHECK_FALSE(tb::small_batch_linear_applies(torch::randn({0, 8}), w, {}));
  {
    // A product autograd must record (grad mode on, a weight that requires grad).
    auto trained = w.clone().requires_grad_(true);
    CHECK_FALSE(tb::small_batch_linear_applies(x, trained, {}));
    torch::NoGradGuard no_grad;
    CHECK(tb::small_batch_linear_applies(x, trained, {}) == tb::cpu_has_avx2_fma());
  }
  CHECK_THROWS_AS(tb::small_batch_linear(torch::randn({tb::kSmallBatchRows + 1, 8}), w, {}),
                  std::invalid_argument);
  // A kernel this CPU does not run is refused, not executed.
  CHECK_THROWS_AS(tb::small_batch_linear(x, w, {}, tb::SmallBatchIsa::kNone),
                  std::invalid_argument);
  for (const auto isa : {tb::SmallBatchIsa::kAvx2Fma, tb::SmallBatchIsa::kAvx512})
    if (!tb::cpu_runs(isa) && tb::cpu_has_avx2_fma())
      CHECK_THROWS_AS(tb::small_batch_linear(x, w, {}, isa), std::invalid_argument);
}

TEST_CASE("decode attention equals HF's attention in float64", "[torch_model][kernels]") {
  c10::InferenceMode guard;
  torch::manual_seed(4);
  const std::int64_t b = 3, kv = 2, capacity = 12;
  // Head sizes of the generic loop (16, 10) and of the AVX-512 kernels (64, 128); 3 or 7 query
  // heads per kv head: one block of query rows, or blocks and a remainder.
  for (const std::int64_t d : {16, 10, 64, 128}) {
    for (const std::int64_t heads : {6, 14}) {
      for (const std::int64_t t : {1, 2, 4}) {
        DYNAMIC_SECTION("head_dim " << d << " heads " << heads << " new positions " << t) {
          const std::int64_t s = 9;
          // Keys and values as the KV cache returns them: the filled part of larger buffers.
          auto k = torch::randn({b, kv, capacity, d}).narrow(2, 0, s);
          auto v = torch::randn({b, kv, capacity, d}).narrow(2, 0, s);
          auto q = torch::randn({b, t, heads, d});
          // Row 0 sees everything, row 1 has 3 padding positions, row 2's first query sees
          // nothing (a padding query: a uniform average, not NaN).
          auto allowed = torch::ones({b, 1, 1, t, s}, torch::kBool);
          allowed.select(0, 1).narrow(-1, 0, 3).fill_(false);
          allowed.select(0, 2).select(2, 0).fill_(false);
          const auto bias = kernels::lowest_value_mask(allowed, torch::kFloat32);
          const double scale = 1.0 / std::sqrt(static_cast<double>(d));
          if (!kernels::decode_attention_applies(q, k, v, bias)) {
            CHECK_FALSE(tb::cpu_has_avx2_fma());
            return;
          }
          auto out = kernels::decode_attention(q, k, v, bias, scale);
          REQUIRE(out.sizes() == torch::IntArrayRef({b, t, heads * d}));
          CHECK(rel_diff(out, reference_attention(q, k, v, bias, scale)) < 1e-5);
          CHECK(torch::isfinite(out).all().template item<bool>());
          // Each row alone gives the same bits.
          for (std::int64_t r = 0; r < b; ++r)
            CHECK(torch::equal(
                kernels::decode_attention(q.narrow(0, r, 1), k.narrow(0, r, 1), v.narrow(0, r, 1),
                                          bias.narrow(0, r, 1), scale),
                out.narrow(0, r, 1)));
        }
      }
    }
  }
  SECTION("more positions than a decode step, float64 or a gradient to record are refused") {
    auto k = torch::randn({1, 2, 5, 8}), v = torch::randn({1, 2, 5, 8});
    auto bias = torch::zeros({1, 1, 1, kernels::kDecodeAttentionMaxPositions + 1, 5});
    CHECK_FALSE(kernels::decode_attention_applies(
        torch::randn({1, kernels::kDecodeAttentionMaxPositions + 1, 4, 8}), k, v, bias));
    auto bias1 = torch::zeros({1, 1, 1, 1, 5});
    CHECK_FALSE(kernels::decode_attention_applies(torch::randn({1, 1, 4, 8}, torch::kFloat64),
                                                  k.to(torch::kFloat64), v.to(torch::kFloat64),
                                                  bias1.to(torch::kFloat64)));
    CHECK_FALSE(kernels::decode_attention_applies(torch::randn({1, 1, 3, 8}), k, v, bias1));
  }
}

TEST_CASE("inference RMSNorm and RoPE equal the module ops", "[torch_model][kernels]") {
  torch::manual_seed(5);
  if (!kernels::inference_kernels_apply(torch::zeros({1}))) {
    CHECK_FALSE(tb::cpu_has_avx2_fma());
    return;
  }
  c10::InferenceMode guard;
  SECTION("RMSNorm") {
    for (const std::int64_t dim : {32, 13}) {
      auto x = torch::randn({3, 5, dim}) * 4;
      auto w = torch::randn({dim});
      const double eps = 1e-6;
      auto x64 = x.to(torch::kFloat64);
      auto ref = w.to(torch::kFloat64) * x64 * torch::rsqrt(x64.pow(2).mean(-1, true) + eps);
      auto out = kernels::inference_rms_norm(x, w, eps);
      REQUIRE(out.sizes() == x.sizes());
      CHECK(rel_diff(out, ref) < 1e-6);
    }
  }
  SECTION("SwiGLU in place, on the halves of the fused gate/up product") {
    for (const std::int64_t inter : {64, 21}) {  // Whole vectors, and a tail.
      auto fused = torch::randn({3, 5, 2 * inter}) * 6;
      // Large |gate| too: e^-g overflows or underflows there.
      fused.select(0, 0).select(0, 0).narrow(0, 0, 4).copy_(
          torch::tensor({-120.f, 95.f, -30.f, 0.f}));
      auto gate = fused.narrow(-1, 0, inter), up = fused.narrow(-1, inter, inter);
      const auto g64 = gate.to(torch::kFloat64), u64 = up.to(torch::kFloat64);
      const auto ref = g64 * torch::sigmoid(g64) * u64;
      const auto up_before = up.clone(), gate_before = gate.clone();
      if (!kernels::inference_swiglu_applies(gate, up)) {
        CHECK_FALSE(tb::small_batch_linear_isa() == tb::SmallBatchIsa::kAvx512);
        continue;
      }
      kernels::inference_swiglu_(gate, up);
      // Elementwise within a few float32 roundings (e^x within 2 ulp, then a division and a
      // product): a polynomial coefficient off in its third digit fails this.
      const auto err = (gate.to(torch::kFloat64) - ref).abs() / ref.abs().clamp_min(1e-30);
      const auto worst = err.flatten().argmax().item<std::int64_t>();
      INFO("largest relative error " << err.max().item<double>() << " at gate "
                                     << gate_before.flatten()[worst].item<double>() << " up "
                                     << up_before.flatten()[worst].item<double>());
      CHECK(err.max().item<double>() < 4e-7);
      CHECK(torch::isfinite(gate).all().template item<bool>());
      CHECK(torch::equal(up, up_before));
    }
    CHECK_FALSE(kernels::inference_swiglu_applies(torch::randn({2, 4}), torch::randn({2, 5})));
    CHECK_FALSE(kernels::inference_swiglu_applies(torch::randn({4, 2}).t(), torch::randn({2, 4})));
  }
  SECTION("RoPE, on a strided view as the q part of the fused q/k/v product") {
    const std::int64_t b = 2, t = 3, heads = 4, d = 8;
    auto fused = torch::randn({b, t, heads * d + 16});
    auto x = fused.narrow(2, 0, heads * d).view({b, t, heads, d});
    auto angles = torch::randn({b, t, 1, d / 2});
    auto emb = torch::cat({angles, angles}, -1);
    auto cos = emb.cos(), sin = emb.sin();
    auto out = kernels::inference_rope(x, cos, sin);
    REQUIRE(out.is_contiguous());
    CHECK(torch::equal(out, kernels::apply_rope(x, cos, sin)));
  }
}

TEST_CASE("torch model: a batch decodes each row exactly as the row alone",
          "[torch_model][kernels]") {
  // Rows of one prompt length (no padding), prompts short enough for the decode kernels: every
  // op on the way is per row, so batching must not change a single bit.
  tb::CausalLM model(tb::parse_model_config_text(
      mr::test::tiny_config_json("LlamaForCausalLM", false, 0.3), "tiny"));
  model->initialize(9);
  model->eval();
  c10::InferenceMode guard;
  const std::int64_t rows = 5, prompt = 3, steps = 4;
  auto ids = torch::randint(0, 300, {rows, prompt}, torch::kLong);
  const auto decode = [&](const torch::Tensor& prompt_ids) {
    const auto n = prompt_ids.size(0);
    auto cache = model->make_cache(n, prompt + steps);
    auto mask = torch::ones({n, prompt}, torch::kLong);
    auto logits = model->forward(prompt_ids, mask, tb::position_ids_from_mask(mask), &cache)
                      .select(1, prompt - 1);
    std::vector<torch::Tensor> out{logits};
    for (std::int64_t i = 0; i < steps; ++i) {
      auto next = logits.argmax(-1).view({n, 1});
      mask = torch::cat({mask, torch::ones({n, 1}, torch::kLong)}, 1);
      logits = model->forward(next, mask, mask.sum(1, true) - 1, &cache).select(1, 0);
      out.push_back(logits);
    }
    return torch::stack(out, 1);  // [n, steps + 1, V]
  };
  const auto together = decode(ids);
  for (std::int64_t r = 0; r < rows; ++r) {
    INFO("row " << r);
    const auto alone = decode(ids.narrow(0, r, 1));
    if (tb::cpu_has_avx2_fma())
      CHECK(torch::equal(alone, together.narrow(0, r, 1)));
    else  // BLAS's gemm and gemv round differently: only close.
      CHECK(rel_diff(alone, together.narrow(0, r, 1)) < 1e-5);
  }
}
