// Tests of mr_model_files (no libtorch): config.json parsing, RoPE frequencies, the parameter
// list and deterministic random-init checkpoints.
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "metareward/safetensors/safetensors.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/torch_model/checkpoint_files.hpp"
#include "metareward/torch_model/model_config.hpp"
#include "model_test_util.hpp"

namespace fs = std::filesystem;
namespace tb = mr::torch_backend;
using Catch::Matchers::Contains;
using mr::test::TempDir;
using mr::test::tiny_config_json;

namespace {

std::string read_all(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

tb::ModelConfig parse(const std::string& text) {
  return tb::parse_model_config_text(text, "cfg.json");
}

}  // namespace

TEST_CASE("model config: HF config.json files parse with HF defaults", "[model_config]") {
  SECTION("SmolLM2-135M (Llama, GQA, tied)") {
    auto c =
        tb::parse_model_config(fs::path(MR_SOURCE_DIR) / "bench/configs/smollm2_135m.config.json");
    CHECK(c.architecture == tb::Architecture::kLlama);
    CHECK(c.hidden_size == 576);
    CHECK(c.num_hidden_layers == 30);
    CHECK(c.num_attention_heads == 9);
    CHECK(c.num_key_value_heads == 3);
    CHECK(c.head_dim == 64);
    CHECK(c.intermediate_size == 1536);
    CHECK(c.vocab_size == 49152);
    CHECK(c.rope_theta == 100000.0);
    CHECK(c.rms_norm_eps == 1e-5);
    CHECK(c.max_position_embeddings == 8192);
    CHECK(c.tie_word_embeddings);
    CHECK_FALSE(c.qkv_bias);
    CHECK(c.bos_token_id == 0);
    CHECK(c.eos_token_ids == std::vector<std::int64_t>{0});
    CHECK(c.torch_dtype == "bfloat16");
    CHECK(tb::parameter_count(c) == 134515008);  // The published SmolLM2-135M size.
  }
  SECTION("Qwen2.5-0.5B (q/k/v biases, no o_proj bias, tied)") {
    auto c =
        tb::parse_model_config(fs::path(MR_SOURCE_DIR) / "bench/configs/qwen2_5_0_5b.config.json");
    CHECK(c.architecture == tb::Architecture::kQwen2);
    CHECK(c.head_dim == 64);
    CHECK(c.num_key_value_heads == 2);
    CHECK(c.qkv_bias);
    CHECK_FALSE(c.o_bias);
    CHECK(c.rope_theta == 1000000.0);
    CHECK(c.rms_norm_eps == 1e-6);
    CHECK(c.tie_word_embeddings);
    auto specs = tb::parameter_specs(c);
    CHECK(specs.front().name == "model.embed_tokens.weight");
    CHECK(specs.back().name == "model.norm.weight");  // Tied: no lm_head.weight.
    CHECK(specs[2].name == "model.layers.0.self_attn.q_proj.bias");
    CHECK(specs[2].shape == std::vector<std::int64_t>{896});
  }
  SECTION("defaults: kv heads = heads, head_dim = hidden / heads, eos list, untied") {
    auto c =
        parse(R"({"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":128,
      "num_hidden_layers":2,"num_attention_heads":8,"vocab_size":100,"eos_token_id":[5,7],
      "attention_bias":true})");
    CHECK(c.num_key_value_heads == 8);
    CHECK(c.head_dim == 8);
    CHECK(c.max_position_embeddings == 2048);
    CHECK(c.rope_theta == 10000.0);
    CHECK_FALSE(c.tie_word_embeddings);
    CHECK(c.qkv_bias);
    CHECK(c.o_bias);
    CHECK(c.eos_token_ids == std::vector<std::int64_t>{5, 7});
    CHECK_FALSE(c.bos_token_id.has_value());
    CHECK(tb::parameter_specs(c).back().name == "lm_head.weight");
  }
}

TEST_CASE("model config: invalid configs are rejected with the file and the field",
          "[model_config]") {
  const std::string base =
      R"("hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":8,"vocab_size":100)";
  SECTION("an unknown architecture lists the supported ones") {
    CHECK_THROWS_AS(parse(R"({"architectures":["MistralForCausalLM"],)" + base + "}"),
                    mr::sdk::BackendError);
    CHECK_THROWS_WITH(parse(R"({"architectures":["MistralForCausalLM"],)" + base + "}"),
                      "unsupported architecture 'MistralForCausalLM' in cfg.json (supported: "
                      "LlamaForCausalLM, Qwen2ForCausalLM)");
  }
  SECTION("a missing required field") {
    CHECK_THROWS_WITH(parse(R"({"architectures":["LlamaForCausalLM"],"hidden_size":64})"),
                      "cfg.json: missing required field 'intermediate_size' (a positive integer)");
  }
  SECTION("mistyped and inconsistent fields") {
    CHECK_THROWS_WITH(
        parse(R"({"architectures":["LlamaForCausalLM"],)" + base + R"(,"num_key_value_heads":3})"),
        Contains("num_attention_heads (8) must be a multiple of num_key_value_heads (3)"));
    CHECK_THROWS_WITH(
        parse(R"({"architectures":["LlamaForCausalLM"],)" + base + R"(,"rms_norm_eps":"small"})"),
        Contains("field 'rms_norm_eps' must be a number"));
    CHECK_THROWS_WITH(
        parse(R"({"architectures":["LlamaForCausalLM"],)" + base + R"(,"hidden_act":"gelu"})"),
        Contains("unsupported hidden_act \"gelu\""));
    CHECK_THROWS_WITH(parse(R"({"architectures":["LlamaForCausalLM"],)" + base +
                            R"(,"rope_scaling":{"rope_type":"yarn","factor":4}})"),
                      Contains("unsupported rope_scaling type 'yarn'"));
    CHECK_THROWS_WITH(parse(R"({"architectures":["LlamaForCausalLM"],)" + base +
                            R"(,"rope_scaling":{"rope_type":"llama3","factor":8}})"),
                      Contains("requires the number 'rope_scaling.low_freq_factor'"));
    CHECK_THROWS_WITH(parse(R"({"architectures":["Qwen2ForCausalLM"],)" + base +
                            R"(,"use_sliding_window":true})"),
                      Contains("use_sliding_window = true is not supported"));
  }
  SECTION("malformed JSON") {
    CHECK_THROWS_WITH(parse("{"), Contains("cfg.json: malformed JSON"));
  }
}

TEST_CASE("model config: RoPE frequencies follow HF, including llama3 scaling", "[model_config]") {
  SECTION("default: theta^(-2i/d)") {
    auto c = parse(R"({"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":8,
      "num_hidden_layers":1,"num_attention_heads":4,"vocab_size":10,"rope_theta":10000})");
    auto f = tb::rope_inv_freq(c);
    REQUIRE(f.size() == 8);
    CHECK(f[0] == 1.0);
    CHECK(f[4] == Approx(0.01).epsilon(1e-12));  // 10000^(-8/16)
  }
  SECTION("llama3 (Llama-3.1 values): high frequencies kept, low divided, medium smoothed") {
    auto c =
        parse(R"({"architectures":["LlamaForCausalLM"],"hidden_size":4096,"intermediate_size":8,
      "num_hidden_layers":1,"num_attention_heads":32,"num_key_value_heads":8,"vocab_size":10,
      "rope_theta":500000.0,"rope_scaling":{"factor":8.0,"low_freq_factor":1.0,
      "high_freq_factor":4.0,"original_max_position_embeddings":8192,"rope_type":"llama3"}})");
    auto f = tb::rope_inv_freq(c);
    REQUIRE(f.size() == 64);
    // Expected values computed independently (Python, float64) from the HF formula.
    CHECK(f[0] == Approx(1.0).epsilon(1e-12));                     // wavelen 6.3 < 2048
    CHECK(f[28] == Approx(0.0032114459947525913).epsilon(1e-12));  // wavelen 1956 < 2048
    CHECK(f[29] == Approx(0.002166570763503359).epsilon(1e-12));   // medium: smoothed
    CHECK(f[30] == Approx(0.0013718935677611381).epsilon(1e-12));
    CHECK(f[34] == Approx(0.00017850781276799638).epsilon(1e-12));
    CHECK(f[35] == Approx(9.556212353964683e-05).epsilon(1e-12));  // wavelen 8219 > 8192: / 8
    CHECK(f[63] == Approx(3.068925988914511e-07).epsilon(1e-12));
  }
  SECTION("linear: every frequency divided by the factor") {
    auto c = parse(R"({"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":8,
      "num_hidden_layers":1,"num_attention_heads":4,"vocab_size":10,
      "rope_scaling":{"type":"linear","factor":2.0}})");
    CHECK(tb::rope_inv_freq(c)[0] == 0.5);
  }
}

TEST_CASE("model files: random-init checkpoints are deterministic and complete", "[model_files]") {
  TempDir dir;
  const fs::path config = dir.path() / "config.json";
  {
    std::ofstream out(config);
    out << tiny_config_json("LlamaForCausalLM", /*tied=*/false, 0.5);
  }
  const fs::path tokenizer = dir.path() / "tok";
  fs::create_directories(tokenizer);
  std::ofstream(tokenizer / "tokenizer.json") << R"({"model":{}})";
  std::ofstream(tokenizer / "tokenizer_config.json") << R"({"eos_token":"</s>"})";

  tb::init_random_checkpoint(config, dir.path() / "a", 11, tokenizer);
  tb::init_random_checkpoint(config, dir.path() / "b", 11);
  tb::init_random_checkpoint(config, dir.path() / "c", 12);

  SECTION("the same seed gives identical weights, another seed different ones") {
    CHECK(read_all(dir.path() / "a/model.safetensors") ==
          read_all(dir.path() / "b/model.safetensors"));
    CHECK(read_all(dir.path() / "a/model.safetensors") !=
          read_all(dir.path() / "c/model.safetensors"));
  }
  SECTION("every parameter is written with HF init statistics") {
    auto cfg = tb::parse_model_config(config);
    mr::safetensors::Reader reader(dir.path() / "a/model.safetensors");
    CHECK(reader.metadata().at("format") == "pt");
    const auto specs = tb::parameter_specs(cfg);
    REQUIRE(reader.tensors().size() == specs.size());
    for (const auto& spec : specs) {
      const auto& info = reader.at(spec.name);
      CHECK(info.shape == spec.shape);
      std::vector<float> v(static_cast<std::size_t>(info.numel()));
      std::memcpy(v.data(), reader.data(info).data(), info.nbytes());
      double sum = 0, sq = 0;
      for (float x : v) {
        sum += x;
        sq += static_cast<double>(x) * x;
      }
      const double mean = sum / static_cast<double>(v.size());
      const double stddev = std::sqrt(sq / static_cast<double>(v.size()) - mean * mean);
      if (spec.init == tb::ParameterSpec::Init::kOnes) {
        CHECK(mean == 1.0);
      } else if (spec.init == tb::ParameterSpec::Init::kZeros) {
        CHECK(sq == 0.0);
      } else if (v.size() >= 2048) {
        INFO(spec.name);
        CHECK(std::abs(mean) < 0.05);
        CHECK(stddev == Approx(0.5).epsilon(0.05));  // initializer_range of the tiny config
      }
    }
  }
  SECTION("config, generation config and tokenizer files are written") {
    auto written = tb::parse_model_config(dir.path() / "a/config.json");
    CHECK(written.torch_dtype == "float32");
    CHECK(written.hidden_size == 32);
    CHECK(read_all(dir.path() / "a/generation_config.json").find("\"eos_token_id\": 2") !=
          std::string::npos);
    CHECK(read_all(dir.path() / "a/tokenizer.json") == R"({"model":{}})");
    CHECK(fs::exists(dir.path() / "a/tokenizer_config.json"));
    CHECK_FALSE(fs::exists(dir.path() / "b/tokenizer.json"));
  }
  SECTION("re-initializing replaces the directory atomically, leaving no temporaries") {
    tb::init_random_checkpoint(config, dir.path() / "a", 12);
    CHECK(read_all(dir.path() / "a/model.safetensors") ==
          read_all(dir.path() / "c/model.safetensors"));
    CHECK_FALSE(fs::exists(dir.path() / "a/tokenizer.json"));
    std::vector<std::string> entries;
    for (const auto& e : fs::directory_iterator(dir.path())) entries.push_back(e.path().filename());
    std::sort(entries.begin(), entries.end());
    CHECK(entries == std::vector<std::string>{"a", "b", "c", "config.json", "tok"});
  }
  SECTION("bf16 output is the rounded float32 output") {
    tb::InitOptions options;
    options.seed = 11;
    options.dtype = mr::safetensors::DType::kBF16;
    tb::init_random_checkpoint(config, dir.path() / "d", options);
    mr::safetensors::Reader f32(dir.path() / "a/model.safetensors");
    mr::safetensors::Reader bf16(dir.path() / "d/model.safetensors");
    const auto& a = f32.at("model.embed_tokens.weight");
    const auto& d = bf16.at("model.embed_tokens.weight");
    REQUIRE(d.dtype == mr::safetensors::DType::kBF16);
    for (std::int64_t i = 0; i < 50; ++i) {
      float x;
      std::uint16_t y;
      std::memcpy(&x, f32.data(a).data() + 4 * i, 4);
      std::memcpy(&y, bf16.data(d).data() + 2 * i, 2);
      CHECK(tb::float_to_bf16(x) == y);
    }
    CHECK(tb::parse_model_config(dir.path() / "d/config.json").torch_dtype == "bfloat16");
  }
  SECTION("a tokenizer directory without tokenizer.json is an error and writes nothing") {
    CHECK_THROWS_WITH(tb::init_random_checkpoint(config, dir.path() / "e", 1, dir.path() / "c"),
                      Contains("has no tokenizer.json"));
    CHECK_FALSE(fs::exists(dir.path() / "e"));
  }
}

TEST_CASE("model files: bf16 rounding is round-to-nearest-even", "[model_files]") {
  CHECK(tb::float_to_bf16(1.0f) == 0x3f80);
  CHECK(tb::float_to_bf16(-2.0f) == 0xc000);
  // 1 + 2^-8 lies exactly between two bf16 values: ties go to the even mantissa (1.0).
  CHECK(tb::float_to_bf16(1.0f + 0x1.0p-8f) == 0x3f80);
  CHECK(tb::float_to_bf16(1.0f + 0x1.8p-8f) == 0x3f81);
}
