// Tests of mr_torch_model: weight loading/saving, the KV cache against full forward passes,
// left padding, prefix expansion and row selection, errors, and a tiny memorisation run.
//
// One file (~640 lines): every case runs on the same tiny Llama/Qwen2 builders and reference
// forward pass defined at the top.
#include <time.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "metareward/sdk/error.hpp"
#include "metareward/torch_model/causal_lm.hpp"
#include "metareward/torch_model/checkpoint_files.hpp"
#include "model_test_util.hpp"

namespace fs = std::filesystem;
namespace tb = mr::torch_backend;
using Catch::Matchers::Contains;
using mr::test::TempDir;
using mr::test::tiny_config_json;

namespace {

constexpr double kTol = 1e-5;  // Relative float32 agreement of equivalent computations.

struct Variant {
  const char* name;
  std::string json;
};

// Llama with GQA (4 heads over 2 kv heads, untied) and Qwen2 (q/k/v biases, tied, 6 over 2).
std::vector<Variant> variants() {
  return {{"llama", tiny_config_json("LlamaForCausalLM", false, 0.3)},
          {"qwen2", tiny_config_json("Qwen2ForCausalLM", true, 0.3, 48, 6, 2)}};
}

tb::CausalLM make_model(const std::string& json, std::uint64_t seed = 5) {
  tb::CausalLM model(tb::parse_model_config_text(json, "tiny"));
  model->initialize(seed);
  if (model->config().qkv_bias) {
    // HF initializes biases to zero; give them values so the test covers them.
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters()) {
      if (p.key().find(".bias") != std::string::npos) p.value().uniform_(-0.5, 0.5);
    }
  }
  return model;
}

// Deterministic token ids [rows, len] in [3, 300).
torch::Tensor tokens(std::int64_t rows, std::int64_t len, std::int64_t salt = 0) {
  auto ids = torch::empty({rows, len}, torch::kLong);
  auto a = ids.accessor<std::int64_t, 2>();
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t i = 0; i < len; ++i) a[r][i] = 3 + (i * 37 + r * 101 + salt * 13 + 7) % 297;
  }
  return ids;
}

// Rows of `lengths` tokens (row r: tokens(1, len, r)), left-padded to the longest.
struct LeftPaddedBatch {
  torch::Tensor ids, mask;          ///< [rows, width]
  std::vector<torch::Tensor> seqs;  ///< Each row's tokens without padding.
};

LeftPaddedBatch left_padded_batch(const std::vector<std::int64_t>& lengths) {
  const auto rows = static_cast<std::int64_t>(lengths.size());
  const std::int64_t width = *std::max_element(lengths.begin(), lengths.end());
  LeftPaddedBatch b{
      torch::zeros({rows, width}, torch::kLong), torch::zeros({rows, width}, torch::kLong), {}};
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t len = lengths[static_cast<std::size_t>(r)];
    b.seqs.push_back(tokens(1, len, r)[0]);
    b.ids[r].narrow(0, width - len, len).copy_(b.seqs.back());
    b.mask[r].narrow(0, width - len, len).fill_(1);
  }
  return b;
}

torch::Tensor arange_pos(std::int64_t rows, std::int64_t from, std::int64_t to) {
  return torch::arange(from, to, torch::kLong).unsqueeze(0).expand({rows, to - from}).contiguous();
}

// Logits of one unpadded sequence [len] without a cache: [len, V].
torch::Tensor reference(tb::CausalLM& model, const torch::Tensor& seq) {
  const std::int64_t len = seq.size(0);
  return model->forward(seq.unsqueeze(0), torch::ones({1, len}, torch::kLong),
                        arange_pos(1, 0, len))[0];
}

// Largest absolute difference, relative to the scale of `b` (at least 1): float32 results of
// equivalent computations with different summation orders (gemv vs gemm, batch shapes) differ
// by a few ulps of the largest logit.
double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  const double scale = std::max(1.0, b.abs().max().item<double>());
  return (a - b).abs().max().item<double>() / scale;
}

}  // namespace

TEST_CASE("torch model: parameters carry HF names in parameter_specs order", "[torch_model]") {
  for (const auto& v : variants()) {
    DYNAMIC_SECTION(v.name) {
      tb::CausalLM model(tb::parse_model_config_text(v.json, "tiny"));
      auto params = model->named_parameters();
      auto specs = tb::parameter_specs(model->config());
      REQUIRE(params.size() == specs.size());
      for (std::size_t i = 0; i < specs.size(); ++i) {
        CHECK(params[i].key() == specs[i].name);
        CHECK(params[i].value().sizes().vec() == specs[i].shape);
      }
    }
  }
}

TEST_CASE("torch model: checkpoints load and save without changing a value", "[torch_model]") {
  TempDir dir;
  for (const auto& v : variants()) {
    DYNAMIC_SECTION(v.name) {
      std::ofstream(dir.path() / "config.json") << v.json;
      tb::init_random_checkpoint(dir.path() / "config.json", dir.path() / "init", 9);

      auto loaded = tb::load_causal_lm(dir.path() / "init");
      tb::CausalLM direct(tb::parse_model_config_text(v.json, "tiny"));
      direct->initialize(9);
      auto a = loaded->named_parameters();
      auto b = direct->named_parameters();
      REQUIRE(a.size() == b.size());
      for (std::size_t i = 0; i < a.size(); ++i) {
        INFO(a[i].key());
        CHECK(torch::equal(a[i].value(), b[i].value()));
      }
      CHECK(loaded->parameters().front().requires_grad());

      SECTION("save_checkpoint then load gives identical parameters and files") {
        std::ofstream(dir.path() / "init/tokenizer.json") << "{}";
        tb::SaveOptions options;
        options.copy_files_from = dir.path() / "init";
        tb::save_checkpoint(*loaded, dir.path() / "saved", options);
        CHECK(fs::exists(dir.path() / "saved/tokenizer.json"));
        CHECK(fs::exists(dir.path() / "saved/generation_config.json"));
        auto again = tb::load_causal_lm(dir.path() / "saved");
        auto c = again->named_parameters();
        for (std::size_t i = 0; i < a.size(); ++i) CHECK(torch::equal(a[i].value(), c[i].value()));
      }
      SECTION("bf16 checkpoints load as their float32 values; bf16 models compute close by") {
        tb::SaveOptions options;
        options.dtype = mr::safetensors::DType::kBF16;
        tb::save_checkpoint(*loaded, dir.path() / "bf16", options);
        auto f32 = tb::load_causal_lm(dir.path() / "bf16");
        auto w = f32->named_parameters()[0].value();
        CHECK(w.scalar_type() == torch::kFloat32);
        CHECK(torch::equal(w, a[0].value().to(torch::kBFloat16).to(torch::kFloat32)));
        tb::ModelOptions bf16_options;
        bf16_options.dtype = torch::kBFloat16;
        auto bf16 = tb::load_causal_lm(dir.path() / "bf16", bf16_options);
        torch::NoGradGuard no_grad;
        auto ids = tokens(2, 9);
        auto mask = torch::ones({2, 9}, torch::kLong);
        auto pos = arange_pos(2, 0, 9);
        auto ref = f32->forward(ids, mask, pos);
        auto low = bf16->forward(ids, mask, pos);
        CHECK(low.scalar_type() == torch::kFloat32);
        CHECK(max_diff(ref, low) < 0.15 * ref.abs().max().item<double>());
      }
    }
  }
}

TEST_CASE("torch model: mismatched checkpoints are rejected with the tensor names",
          "[torch_model]") {
  TempDir dir;
  const std::string llama = tiny_config_json("LlamaForCausalLM", false, 0.02);
  std::ofstream(dir.path() / "config.json") << llama;
  tb::init_random_checkpoint(dir.path() / "config.json", dir.path() / "ckpt", 1);

  SECTION("wrong shapes") {
    tb::CausalLM wider(tb::parse_model_config_text(
        tiny_config_json("LlamaForCausalLM", false, 0.02, 48, 4, 2), "w"));
    CHECK_THROWS_AS(tb::load_weights(*wider, dir.path() / "ckpt"), mr::sdk::BackendError);
    CHECK_THROWS_WITH(
        tb::load_weights(*wider, dir.path() / "ckpt"),
        Contains("wrong shape for") &&
            Contains("model.embed_tokens.weight (checkpoint [300, 32], model [300, 48])"));
  }
  SECTION("missing and unexpected tensors") {
    // A Qwen2 model wants q/k/v biases and no lm_head (tied) - the Llama checkpoint has neither.
    tb::CausalLM qwen(
        tb::parse_model_config_text(tiny_config_json("Qwen2ForCausalLM", true, 0.02), "q"));
    CHECK_THROWS_WITH(tb::load_weights(*qwen, dir.path() / "ckpt"),
                      Contains("missing 6 tensors: model.layers.0.self_attn.q_proj.bias") &&
                          Contains(dir.path().string()));
    tb::CausalLM tied(
        tb::parse_model_config_text(tiny_config_json("LlamaForCausalLM", true, 0.02), "t"));
    // Tied model: a checkpoint's lm_head.weight is ignored, as HF does.
    CHECK_NOTHROW(tb::load_weights(*tied, dir.path() / "ckpt"));
    tb::CausalLM biased(tb::parse_model_config_text(
        tiny_config_json("LlamaForCausalLM", false, 0.02, 32, 4, 2, R"(, "attention_bias": true)"),
        "b"));
    CHECK_THROWS_WITH(tb::load_weights(*biased, dir.path() / "ckpt"),
                      Contains("missing 8 tensors") && Contains("o_proj.bias"));
  }
  SECTION("an unknown architecture in config.json") {
    std::ofstream(dir.path() / "ckpt/config.json")
        << R"({"architectures": ["GPT2LMHeadModel"], "hidden_size": 32})";
    CHECK_THROWS_WITH(tb::load_causal_lm(dir.path() / "ckpt"),
                      Contains("unsupported architecture 'GPT2LMHeadModel'") &&
                          Contains("(supported: LlamaForCausalLM, Qwen2ForCausalLM)"));
  }
}

TEST_CASE("torch model: incremental decoding with the KV cache equals a full forward pass",
          "[torch_model]") {
  for (const auto& v : variants()) {
    DYNAMIC_SECTION(v.name) {
      auto model = make_model(v.json);
      c10::InferenceMode guard;
      const std::int64_t b = 2, t = 12;
      auto ids = tokens(b, t);
      auto mask = torch::ones({b, t}, torch::kLong);
      auto pos = arange_pos(b, 0, t);
      auto full = model->forward(ids, mask, pos);
      REQUIRE(full.sizes() == torch::IntArrayRef({b, t, 300}));
      CHECK(full.abs().max().item<double>() > 0.1);  // Not a degenerate model.

      // Capacity 8 < 12 also exercises the cache growing.
      auto cache = model->make_cache(b, 8);
      const std::vector<std::pair<std::int64_t, std::int64_t>> chunks = {
          {0, 5}, {5, 6}, {6, 9}, {9, 10}, {10, 11}, {11, 12}};
      for (auto [from, to] : chunks) {
        auto out = model->forward(ids.narrow(1, from, to - from), mask.narrow(1, 0, to),
                                  pos.narrow(1, from, to - from), &cache);
        INFO("positions " << from << ".." << to);
        CHECK(max_diff(out, full.narrow(1, from, to - from)) < kTol);
        CHECK(cache.length() == to);
      }
      CHECK(cache.capacity() >= 12);

      SECTION("a single row decoded one token at a time (the gemv path) matches too") {
        auto cache1 = model->make_cache(1, t);
        for (std::int64_t i = 0; i < t; ++i) {
          auto out = model->forward(ids.narrow(0, 1, 1).narrow(1, i, 1),
                                    mask.narrow(0, 1, 1).narrow(1, 0, i + 1),
                                    pos.narrow(0, 1, 1).narrow(1, i, 1), &cache1);
          CHECK(max_diff(out[0][0], full[1][i]) < kTol);
        }
      }
      SECTION("hidden_states + logits of the last position match too") {
        auto cache2 = model->make_cache(b, 16);
        auto h = model->hidden_states(ids, mask, pos, &cache2);
        CHECK(max_diff(model->logits(h.select(1, t - 1)), full.select(1, t - 1)) < kTol);
      }
    }
  }
}

TEST_CASE("torch model: a left-padded batch gives each row's unbatched logits", "[torch_model]") {
  for (const auto& v : variants()) {
    DYNAMIC_SECTION(v.name) {
      auto model = make_model(v.json);
      torch::NoGradGuard no_grad;
      const std::vector<std::int64_t> lengths = {7, 4, 10};
      const std::int64_t width = 10, rows = 3;
      auto [ids, mask, seqs] = left_padded_batch(lengths);
      auto pos = tb::position_ids_from_mask(mask);
      CHECK(torch::equal(pos[1], torch::tensor({0, 0, 0, 0, 0, 0, 0, 1, 2, 3}, torch::kLong)));

      SECTION("without a cache (training layout); padding rows stay finite") {
        auto batched = model->forward(ids, mask, pos);
        CHECK(torch::isfinite(batched).all().item<bool>());
        for (std::int64_t r = 0; r < rows; ++r) {
          const std::int64_t len = lengths[static_cast<std::size_t>(r)];
          CHECK(max_diff(batched[r].narrow(0, width - len, len), reference(model, seqs[r])) < kTol);
        }
      }
      SECTION("with a cache: padded prefill, then decoding steps") {
        auto cache = model->make_cache(rows, 16);
        auto out = model->forward(ids, mask, pos, &cache);
        auto next = torch::tensor({11, 22, 33}, torch::kLong).unsqueeze(1);
        auto last_pos = pos.select(1, width - 1).unsqueeze(1);
        std::vector<torch::Tensor> full = seqs;
        for (int step = 0; step < 3; ++step) {
          mask = torch::cat({mask, torch::ones({rows, 1}, torch::kLong)}, 1);
          last_pos = last_pos + 1;
          out = model->forward(next, mask, last_pos, &cache);
          for (std::int64_t r = 0; r < rows; ++r) {
            full[r] = torch::cat({full[r], next[r]});
            auto ref = reference(model, full[r]);
            CHECK(max_diff(out[r][0], ref[ref.size(0) - 1]) < kTol);
          }
          next = (next * 7 + 5) % 290 + 3;
        }
      }
    }
  }
}

TEST_CASE("torch model: long prefills attend in query blocks with unchanged results",
          "[torch_model]") {
  // 4 heads x 2100 keys: a full pass splits its 2100 queries into blocks (score tensor capped
  // at 2^24 floats); two cached halves of 1050 do not. Both must agree.
  auto model = make_model(variants()[0].json);
  c10::InferenceMode guard;
  const std::int64_t n = 2100, half = n / 2;
  auto ids = tokens(1, n);
  auto mask = torch::ones({1, n}, torch::kLong);
  auto pos = arange_pos(1, 0, n);
  auto full = model->hidden_states(ids, mask, pos);
  auto cache = model->make_cache(1, n);
  auto a = model->hidden_states(ids.narrow(1, 0, half), mask.narrow(1, 0, half),
                                pos.narrow(1, 0, half), &cache);
  auto b = model->hidden_states(ids.narrow(1, half, half), mask, pos.narrow(1, half, half), &cache);
  CHECK(max_diff(torch::cat({a, b}, 1), full) < kTol);
}

TEST_CASE("torch model: cache rows can be repeated for n samples and selected", "[torch_model]") {
  for (const auto& v : variants()) {
    DYNAMIC_SECTION(v.name) {
      auto model = make_model(v.json);
      c10::InferenceMode guard;
      SECTION("one prefilled prompt expanded to 3 rows equals 3 separate prefills") {
        auto prompt = tokens(1, 6);
        auto cache = model->make_cache(1, 12);
        model->forward(prompt, torch::ones({1, 6}, torch::kLong), arange_pos(1, 0, 6), &cache);
        cache.repeat_rows(3);
        REQUIRE(cache.batch_size() == 3);
        REQUIRE(cache.length() == 6);
        auto next = torch::tensor({{40}, {50}, {60}}, torch::kLong);
        auto mask = torch::ones({3, 7}, torch::kLong);
        auto out = model->forward(next, mask, torch::full({3, 1}, 6, torch::kLong), &cache);
        auto second = torch::tensor({{70}, {80}, {90}}, torch::kLong);
        auto out2 = model->forward(second, torch::ones({3, 8}, torch::kLong),
                                   torch::full({3, 1}, 7, torch::kLong), &cache);
        for (std::int64_t r = 0; r < 3; ++r) {
          auto seq = torch::cat({prompt[0], next[r], second[r]});
          auto ref = reference(model, seq);
          CHECK(max_diff(out[r][0], ref[6]) < kTol);
          CHECK(max_diff(out2[r][0], ref[7]) < kTol);
        }
      }
      SECTION("dropping finished rows keeps the remaining rows' results") {
        const std::int64_t rows = 3;
        auto ids = tokens(rows, 5);
        auto cache = model->make_cache(rows, 10);
        auto mask = torch::ones({rows, 5}, torch::kLong);
        model->forward(ids, mask, arange_pos(rows, 0, 5), &cache);
        auto step = torch::tensor({{101}, {102}, {103}}, torch::kLong);
        mask = torch::ones({rows, 6}, torch::kLong);
        model->forward(step, mask, torch::full({rows, 1}, 5, torch::kLong), &cache);
        // Row 1 finished; keep rows 2 and 0 (reordered).
        cache.select_rows(std::vector<std::int64_t>{2, 0});
        const std::vector<std::int64_t> kept = {2, 0};
        auto last = torch::tensor({{201}, {200}}, torch::kLong);
        auto out = model->forward(last, torch::ones({2, 7}, torch::kLong),
                                  torch::full({2, 1}, 6, torch::kLong), &cache);
        for (std::size_t i = 0; i < kept.size(); ++i) {
          const std::int64_t r = kept[i];
          auto seq = torch::cat({ids[r], step[r], last[static_cast<std::int64_t>(i)]});
          CHECK(max_diff(out[static_cast<std::int64_t>(i)][0], reference(model, seq)[6]) < kTol);
        }
        CHECK_THROWS_AS(cache.select_rows(std::vector<std::int64_t>{2}), mr::sdk::BackendError);
      }
    }
  }
}

TEST_CASE("torch model: chunked prefill equals a single pass over a left-padded batch",
          "[torch_model]") {
  for (const auto& v : variants()) {
    DYNAMIC_SECTION(v.name) {
      auto model = make_model(v.json);
      c10::InferenceMode guard;
      // Row 1's first chunks are all padding; the last chunk is shorter than the others.
      const std::vector<std::int64_t> lengths = {23, 9, 17};
      const std::int64_t width = 23, rows = 3;
      auto [ids, mask, seqs] = left_padded_batch(lengths);
      auto pos = tb::position_ids_from_mask(mask);
      auto single_cache = model->make_cache(rows, width + 1);
      auto single = model->hidden_states(ids, mask, pos, &single_cache).select(1, width - 1);

      // 15 row-tokens over 3 rows: chunks of 5, 5, 5, 5, 3 positions; 1: one position at a
      // time; the default budget: one chunk.
      for (const std::int64_t chunk_tokens :
           {std::int64_t{15}, std::int64_t{1}, tb::CausalLMImpl::kPrefillChunkTokens}) {
        INFO("chunk_tokens " << chunk_tokens);
        auto cache = model->make_cache(rows, width + 1);
        auto last = model->prefill(ids, mask, pos, cache, chunk_tokens);
        REQUIRE(last.sizes() == single.sizes());
        CHECK(cache.length() == width);
        CHECK(max_diff(model->logits(last), model->logits(single)) < kTol);
        // The cached keys/values of real tokens match; padding slots are never attended to.
        auto real = mask.to(torch::kFloat32).view({rows, 1, width, 1});
        for (std::int64_t l = 0; l < cache.num_layers(); ++l) {
          CHECK(max_diff(cache.keys(l).narrow(2, 0, width) * real,
                         single_cache.keys(l).narrow(2, 0, width) * real) < kTol);
          CHECK(max_diff(cache.values(l).narrow(2, 0, width) * real,
                         single_cache.values(l).narrow(2, 0, width) * real) < kTol);
        }
        // Decoding continues from the chunked cache as from each row's unbatched sequence.
        auto next = torch::tensor({{41}, {42}, {43}}, torch::kLong);
        auto out = model->forward(next, torch::cat({mask, torch::ones({rows, 1}, torch::kLong)}, 1),
                                  pos.select(1, width - 1).unsqueeze(1) + 1, &cache);
        for (std::int64_t r = 0; r < rows; ++r) {
          auto ref = reference(model, torch::cat({seqs[static_cast<std::size_t>(r)], next[r]}));
          CHECK(max_diff(out[r][0], ref[ref.size(0) - 1]) < kTol);
        }
      }
      auto cache = model->make_cache(rows, width);
      CHECK_THROWS_WITH(model->prefill(ids, mask, pos, cache, 0),
                        Contains("chunk_tokens must be >= 1, got 0"));
      CHECK_THROWS_WITH(model->prefill(ids, mask.narrow(1, 0, width - 1), pos, cache),
                        Contains("attention_mask must be [3, 23]"));
    }
  }
}

TEST_CASE("torch model: bad forward inputs raise BackendError", "[torch_model]") {
  auto model = make_model(variants()[0].json);
  c10::InferenceMode guard;
  auto ids = tokens(1, 4);
  auto mask = torch::ones({1, 4}, torch::kLong);
  auto pos = arange_pos(1, 0, 4);
  CHECK_THROWS_WITH(model->forward(ids, torch::ones({1, 3}, torch::kLong), pos),
                    Contains("attention_mask must be [1, 4]"));
  CHECK_THROWS_WITH(model->forward(ids.fill_(300), mask, pos),
                    Contains("token id 300 outside the vocabulary [0, 300)"));
  CHECK_THROWS_WITH(model->forward(ids.fill_(5), mask, arange_pos(1, 0, 3)),
                    Contains("position_ids [1, 3] must match input_ids [1, 4]"));
  auto cache = model->make_cache(2, 8);
  CHECK_THROWS_WITH(model->forward(ids, mask, pos, &cache),
                    Contains("the cache has 2 rows but the batch has 1"));
}

namespace {

// Golden cases checked against data/hf_reference.json, computed by tools/hf_reference.py (an
// independent float64 transcription of HF's eager forward) from checkpoints this file exports.
struct ReferenceCase {
  std::string name;
  std::string config;
  std::vector<std::int64_t> ids;
};

std::vector<ReferenceCase> reference_cases() {
  const std::string llama3_rope =
      R"(, "attention_bias": true, "rope_scaling": {"rope_type": "llama3", "factor": 4.0,)"
      R"( "low_freq_factor": 1.0, "high_freq_factor": 4.0,)"
      R"( "original_max_position_embeddings": 1024})";
  return {
      {"llama_gqa", tiny_config_json("LlamaForCausalLM", false, 0.3), {1, 45, 299, 7, 7, 120, 3}},
      {"qwen2_bias_tied",
       tiny_config_json("Qwen2ForCausalLM", true, 0.3, 48, 6, 2),
       {151 % 300, 2, 88, 64, 230, 9}},
      {"llama3_rope_bias",
       tiny_config_json("LlamaForCausalLM", true, 0.3, 32, 4, 1, llama3_rope),
       {5, 17, 250, 33, 99, 4, 187, 33}}};
}

// The case's model: init_random_checkpoint(seed 17), loaded, biases set to fixed non-zero values.
tb::CausalLM reference_model(const ReferenceCase& c, const fs::path& dir) {
  std::ofstream(dir / "config.json") << c.config;
  tb::init_random_checkpoint(dir / "config.json", dir / "ckpt", 17);
  auto model = tb::load_causal_lm(dir / "ckpt");
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters()) {
    if (p.key().find(".bias") != std::string::npos) {
      auto n = p.value().numel();
      p.value().copy_(0.3 * torch::sin(torch::arange(n, torch::kFloat32) * 0.7 + 1.0));
    }
  }
  return model;
}

}  // namespace

TEST_CASE("torch model: logits match the HF reference implementation", "[torch_model]") {
  const fs::path golden_path =
      fs::path(MR_SOURCE_DIR) / "tests/plugins/torch_model/data/hf_reference.json";
  std::ifstream in(golden_path);
  REQUIRE(in.good());
  const auto golden = nlohmann::json::parse(in);
  for (const auto& c : reference_cases()) {
    DYNAMIC_SECTION(c.name) {
      TempDir dir;
      auto model = reference_model(c, dir.path());
      const auto& expected_case = golden.at("cases").at(c.name);
      REQUIRE(expected_case.at("input_ids").get<std::vector<std::int64_t>>() == c.ids);
      const auto rows = expected_case.at("logits").get<std::vector<std::vector<double>>>();
      std::vector<double> flat;
      for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
      const auto n = static_cast<std::int64_t>(c.ids.size());
      auto expected = torch::tensor(flat, torch::kFloat64).view({n, 300});
      CHECK(expected.abs().max().item<double>() > 0.5);  // The golden logits are not trivial.

      torch::NoGradGuard no_grad;
      SECTION("one sequence") {
        auto ids = torch::tensor(c.ids, torch::kLong).unsqueeze(0);
        auto got = model->forward(ids, torch::ones({1, n}, torch::kLong), arange_pos(1, 0, n));
        CHECK(max_diff(got[0].to(torch::kFloat64), expected) < 1e-4);
      }
      SECTION("left-padded in a batch, decoded through the cache") {
        // Row 0: the case's sequence after 3 pads; row 1: another sequence.
        const std::int64_t width = n + 3;
        auto ids = torch::full({2, width}, 0, torch::kLong);
        ids[0].narrow(0, 3, n).copy_(torch::tensor(c.ids, torch::kLong));
        ids[1].copy_(tokens(1, width)[0]);
        auto mask = torch::ones({2, width}, torch::kLong);
        mask[0].narrow(0, 0, 3).fill_(0);
        auto pos = tb::position_ids_from_mask(mask);
        auto cache = model->make_cache(2, width);
        const std::int64_t prefill = 3 + n / 2;
        auto first = model->forward(ids.narrow(1, 0, prefill), mask.narrow(1, 0, prefill),
                                    pos.narrow(1, 0, prefill), &cache);
        std::vector<torch::Tensor> outs = {first[0].narrow(0, 3, prefill - 3)};
        for (std::int64_t i = prefill; i < width; ++i) {
          outs.push_back(model->forward(ids.narrow(1, i, 1), mask.narrow(1, 0, i + 1),
                                        pos.narrow(1, i, 1), &cache)[0]);
        }
        CHECK(max_diff(torch::cat(outs).to(torch::kFloat64), expected) < 1e-4);
      }
    }
  }
}

TEST_CASE("torch model: export the reference checkpoints", "[.][export_reference]") {
  // Hidden: MR_EXPORT_DIR=/tmp/ref mr_torch_model_tests "[export_reference]", then run
  // tools/hf_reference.py /tmp/ref > data/hf_reference.json.
  const char* out = std::getenv("MR_EXPORT_DIR");
  REQUIRE(out != nullptr);
  for (const auto& c : reference_cases()) {
    TempDir dir;
    auto model = reference_model(c, dir.path());
    tb::save_checkpoint(*model, fs::path(out) / c.name);
    std::ofstream(fs::path(out) / c.name / "input_ids.json") << nlohmann::json(c.ids).dump();
  }
}

TEST_CASE("torch model: a tiny model memorises a sequence and greedy decoding replays it",
          "[torch_model][train]") {
  const auto start = std::chrono::steady_clock::now();
  torch::manual_seed(0);
  auto model = make_model(tiny_config_json("LlamaForCausalLM", false, 0.02, 64, 4, 2), 21);
  const std::vector<std::int64_t> seq = {1,  17, 250, 33, 99,  4,   187, 33, 56,  250,
                                         12, 7,  7,   88, 299, 140, 3,   61, 205, 2};
  const auto n = static_cast<std::int64_t>(seq.size());
  auto ids = torch::tensor(seq, torch::kLong).unsqueeze(0);
  auto inputs = ids.narrow(1, 0, n - 1);
  auto targets = ids.narrow(1, 1, n - 1).reshape({-1});
  auto mask = torch::ones({1, n - 1}, torch::kLong);
  auto pos = arange_pos(1, 0, n - 1);

  model->train();
  torch::optim::Adam adam(model->parameters(), torch::optim::AdamOptions(1e-2));
  double loss_value = 0;
  for (int step = 0; step < 150; ++step) {
    auto logits = model->forward(inputs, mask, pos);
    auto loss = torch::nn::functional::cross_entropy(logits.reshape({-1, 300}), targets);
    adam.zero_grad();
    loss.backward();
    adam.step();
    loss_value = loss.item<double>();
  }
  model->eval();
  CHECK(loss_value < 0.05);

  c10::InferenceMode guard;
  auto cache = model->make_cache(1, n);
  std::vector<std::int64_t> generated = {seq[0]};
  auto next = torch::tensor({{seq[0]}}, torch::kLong);
  for (std::int64_t i = 0; i + 1 < n; ++i) {
    auto logits = model->forward(next, torch::ones({1, i + 1}, torch::kLong),
                                 torch::full({1, 1}, i, torch::kLong), &cache);
    next = logits.select(1, 0).argmax(-1, /*keepdim=*/true);
    generated.push_back(next.item<std::int64_t>());
  }
  CHECK(generated == seq);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(seconds < 20);
}

TEST_CASE("torch model: decode throughput at SmolLM2-135M shapes", "[.][bench]") {
  // Not run by ctest: `mr_torch_model_tests "[bench]"` prints prefill and decode speed of a
  // random SmolLM2-135M-shaped model (float32). MR_BENCH_THREADS sets torch's thread count;
  // MR_PROFILE_TRACE=<file> writes a chrome trace of the batch-1 decode steps. CPU time is
  // that of the calling thread (meaningful with 1 thread on a busy machine).
  if (const char* threads = std::getenv("MR_BENCH_THREADS"))
    torch::set_num_threads(std::atoi(threads));
  auto config =
      tb::parse_model_config(fs::path(MR_SOURCE_DIR) / "bench/configs/smollm2_135m.config.json");
  tb::CausalLM model(config);
  model->initialize(1);
  c10::InferenceMode guard;
  auto cpu_now = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  };
  auto wall_now = [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  for (std::int64_t batch : {1, 8, 32}) {
    const std::int64_t prompt = 64, steps = 32;
    auto cache = model->make_cache(batch, prompt + steps);
    auto ids = tokens(batch, prompt);
    const double w0 = wall_now(), c0 = cpu_now();
    auto h = model->hidden_states(ids, torch::ones({batch, prompt}, torch::kLong),
                                  arange_pos(batch, 0, prompt), &cache);
    auto next = model->logits(h.select(1, prompt - 1)).argmax(-1, true);
    const double w1 = wall_now(), c1 = cpu_now();
    {
      std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
      const char* trace = std::getenv("MR_PROFILE_TRACE");
      if (trace != nullptr && batch == 1) {
        profile = std::make_unique<torch::autograd::profiler::RecordProfile>(std::string(trace));
      }
      for (std::int64_t s = 0; s < steps; ++s) {
        h = model->hidden_states(next, torch::ones({batch, prompt + s + 1}, torch::kLong),
                                 torch::full({batch, 1}, prompt + s, torch::kLong), &cache);
        next = model->logits(h.select(1, 0)).argmax(-1, true);
      }
    }
    const double w2 = wall_now(), c2 = cpu_now();
    WARN("batch " << batch << ", threads " << torch::get_num_threads() << ": prefill "
                  << batch * prompt / (w1 - w0) << " tok/s (thread cpu " << (c1 - c0) * 1000
                  << " ms), decode " << batch * steps / (w2 - w1) << " tok/s, "
                  << 1000 * (w2 - w1) / steps << " ms/step wall, " << 1000 * (c2 - c1) / steps
                  << " ms/step thread cpu");
  }
}
