/// @file model_config.cpp
/// config.json parsing and validation, RoPE frequencies, parameter list.
#include "metareward/torch_model/model_config.hpp"

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numbers>
#include <sstream>

#include "metareward/sdk/error.hpp"

namespace mr::torch_backend {
namespace {

using mr::sdk::BackendError;
using mr::sdk::detail::concat;
using json = nlohmann::json;

// Upper bounds of config.json dimensions, far above any real model (hidden 16k, vocab 256k,
// 126 layers) and low enough that every tensor shape product fits in int64.
constexpr std::int64_t kMaxDimension = std::int64_t{1} << 24;
constexpr std::int64_t kMaxLayers = std::int64_t{1} << 16;

class Fields {
 public:
  Fields(const json& j, const std::string& source) : j_(j), source_(source) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw BackendError(concat(source_, ": ", what));
  }

  const json* get(const char* key) const {
    auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }

  // An integer field; integral floats (e.g. 32768.0) are accepted as HF's json does.
  std::optional<std::int64_t> opt_int(const char* key) const {
    const json* v = get(key);
    if (v == nullptr) return std::nullopt;
    if (v->is_number_integer()) return v->get<std::int64_t>();
    if (v->is_number_float()) {
      double d = v->get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) {
        return static_cast<std::int64_t>(d);
      }
    }
    fail(concat("field '", key, "' must be an integer, got ", v->dump()));
  }

  std::int64_t positive_int(const char* key, std::optional<std::int64_t> fallback) const {
    auto v = opt_int(key);
    if (!v) {
      if (!fallback) fail(concat("missing required field '", key, "' (a positive integer)"));
      v = fallback;
    }
    if (*v <= 0) fail(concat("field '", key, "' must be a positive integer, got ", *v));
    return *v;
  }

  // A model dimension: positive and at most `limit`, so that products of dimensions (q_dim,
  // tensor sizes) cannot overflow and a hostile file cannot make the parameter list endless.
  std::int64_t dimension(const char* key,
                         std::optional<std::int64_t> fallback,
                         std::int64_t limit) const {
    const std::int64_t v = positive_int(key, fallback);
    if (v > limit)
      fail(concat("field '", key, "' is implausibly large: ", v, " (at most ", limit, ")"));
    return v;
  }

  double number(const char* key, double fallback) const {
    const json* v = get(key);
    if (v == nullptr) return fallback;
    if (!v->is_number()) fail(concat("field '", key, "' must be a number, got ", v->dump()));
    return v->get<double>();
  }

  bool boolean(const char* key, bool fallback) const {
    const json* v = get(key);
    if (v == nullptr) return fallback;
    if (!v->is_boolean()) fail(concat("field '", key, "' must be true or false, got ", v->dump()));
    return v->get<bool>();
  }

  std::vector<std::int64_t> int_or_list(const char* key) const {
    const json* v = get(key);
    std::vector<std::int64_t> out;
    if (v == nullptr) return out;
    auto one = [&](const json& x) {
      if (!x.is_number_integer()) {
        fail(concat("field '", key, "' must be an integer or a list of integers, got ", v->dump()));
      }
      out.push_back(x.get<std::int64_t>());
    };
    if (v->is_array()) {
      for (const auto& x : *v) one(x);
    } else {
      one(*v);
    }
    return out;
  }

 private:
  const json& j_;
  const std::string& source_;
};

RopeScaling parse_rope_scaling(const json& j, const Fields& f) {
  RopeScaling rs;
  auto it = j.find("rope_scaling");
  if (it == j.end() || it->is_null()) return rs;
  if (!it->is_object()) f.fail(concat("field 'rope_scaling' must be an object or null"));
  auto type_it = it->find("rope_type");
  if (type_it == it->end()) type_it = it->find("type");
  if (type_it != it->end() && !type_it->is_string()) {
    f.fail("field 'rope_scaling.rope_type' must be a string");
  }
  rs.type = type_it == it->end() ? "default" : type_it->get<std::string>();
  auto need = [&](const char* key) -> double {
    auto k = it->find(key);
    if (k == it->end() || !k->is_number()) {
      f.fail(
          concat("rope_scaling type '", rs.type, "' requires the number 'rope_scaling.", key, "'"));
    }
    return k->get<double>();
  };
  if (rs.type == "default") {
    return rs;
  } else if (rs.type == "linear") {
    rs.factor = need("factor");
  } else if (rs.type == "llama3") {
    rs.factor = need("factor");
    rs.low_freq_factor = need("low_freq_factor");
    rs.high_freq_factor = need("high_freq_factor");
    double original = need("original_max_position_embeddings");
    if (original <= 0 || original != std::floor(original)) {
      f.fail("rope_scaling.original_max_position_embeddings must be a positive integer");
    }
    rs.original_max_position_embeddings = static_cast<std::int64_t>(original);
    if (!(rs.high_freq_factor > rs.low_freq_factor) || rs.low_freq_factor <= 0) {
      f.fail(concat("rope_scaling needs 0 < low_freq_factor < high_freq_factor, got ",
                    rs.low_freq_factor, " and ", rs.high_freq_factor));
    }
  } else {
    f.fail(concat("unsupported rope_scaling type '", rs.type,
                  "' (supported: default, linear, llama3)"));
  }
  if (!(rs.factor > 0) || !std::isfinite(rs.factor)) {
    f.fail(concat("rope_scaling.factor must be positive, got ", rs.factor));
  }
  return rs;
}

}  // namespace

ModelConfig parse_model_config(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw BackendError(concat("cannot open model config '", file.string(), "'"));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_model_config_text(text.str(), file.string());
}

ModelConfig parse_model_config_text(std::string_view json_text, const std::string& source) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    throw BackendError(concat(source, ": malformed JSON: ", e.what()));
  }
  if (!j.is_object()) throw BackendError(concat(source, ": config is not a JSON object"));
  Fields f(j, source);

  ModelConfig c;
  c.json = std::string(json_text);
  c.source = source;

  const json* archs = f.get("architectures");
  if (archs == nullptr) {
    // Some hand-written configs only carry model_type.
    const json* mt = f.get("model_type");
    if (mt != nullptr && mt->is_string() && *mt == "llama") {
      c.architecture_name = "LlamaForCausalLM";
    } else if (mt != nullptr && mt->is_string() && *mt == "qwen2") {
      c.architecture_name = "Qwen2ForCausalLM";
    } else {
      f.fail("missing required field 'architectures' (e.g. [\"LlamaForCausalLM\"])");
    }
  } else {
    if (!archs->is_array() || archs->empty() || !(*archs)[0].is_string()) {
      f.fail(
          concat("field 'architectures' must be a non-empty list of strings, got ", archs->dump()));
    }
    c.architecture_name = (*archs)[0].get<std::string>();
  }
  if (c.architecture_name == "LlamaForCausalLM") {
    c.architecture = Architecture::kLlama;
  } else if (c.architecture_name == "Qwen2ForCausalLM") {
    c.architecture = Architecture::kQwen2;
  } else {
    throw BackendError(concat("unsupported architecture '", c.architecture_name, "' in ", source,
                              " (supported: LlamaForCausalLM, Qwen2ForCausalLM)"));
  }
  const bool qwen2 = c.architecture == Architecture::kQwen2;

  c.hidden_size = f.dimension("hidden_size", std::nullopt, kMaxDimension);
  c.intermediate_size = f.dimension("intermediate_size", std::nullopt, kMaxDimension);
  c.num_hidden_layers = f.dimension("num_hidden_layers", std::nullopt, kMaxLayers);
  c.num_attention_heads = f.dimension("num_attention_heads", std::nullopt, kMaxDimension);
  c.vocab_size = f.dimension("vocab_size", std::nullopt, kMaxDimension);
  c.num_key_value_heads = f.dimension("num_key_value_heads", c.num_attention_heads, kMaxDimension);
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    f.fail(concat("num_attention_heads (", c.num_attention_heads,
                  ") must be a multiple of num_key_value_heads (", c.num_key_value_heads, ")"));
  }
  if (f.get("head_dim") != nullptr) {
    c.head_dim = f.dimension("head_dim", std::nullopt, kMaxDimension);
  } else {
    if (c.hidden_size % c.num_attention_heads != 0) {
      f.fail(concat("hidden_size (", c.hidden_size, ") must be a multiple of num_attention_heads (",
                    c.num_attention_heads, ") when head_dim is not given"));
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim % 2 != 0) f.fail(concat("head_dim must be even for RoPE, got ", c.head_dim));
  c.max_position_embeddings = f.positive_int("max_position_embeddings", qwen2 ? 32768 : 2048);
  c.rms_norm_eps = f.number("rms_norm_eps", 1e-6);
  if (!(c.rms_norm_eps > 0)) f.fail(concat("rms_norm_eps must be positive, got ", c.rms_norm_eps));
  c.rope_theta = f.number("rope_theta", 10000.0);
  if (!(c.rope_theta > 1)) f.fail(concat("rope_theta must be > 1, got ", c.rope_theta));
  c.initializer_range = f.number("initializer_range", 0.02);
  if (!(c.initializer_range >= 0)) {
    f.fail(concat("initializer_range must be >= 0, got ", c.initializer_range));
  }
  c.rope_scaling = parse_rope_scaling(j, f);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", false);
  if (qwen2) {
    c.qkv_bias = true;
    c.o_bias = false;
    if (f.boolean("use_sliding_window", false)) {
      f.fail("use_sliding_window = true is not supported (sliding-window attention)");
    }
  } else {
    c.qkv_bias = c.o_bias = f.boolean("attention_bias", false);
    c.mlp_bias = f.boolean("mlp_bias", false);
  }
  if (const json* act = f.get("hidden_act"); act != nullptr) {
    if (!act->is_string() || *act != "silu") {
      f.fail(concat("unsupported hidden_act ", act->dump(), " (supported: \"silu\")"));
    }
  }
  auto bos = f.int_or_list("bos_token_id");
  if (bos.size() > 1) f.fail("field 'bos_token_id' must be a single integer");
  if (!bos.empty()) c.bos_token_id = bos[0];
  c.eos_token_ids = f.int_or_list("eos_token_id");
  c.pad_token_id = f.opt_int("pad_token_id");
  if (const json* dt = f.get("torch_dtype"); dt != nullptr) {
    if (!dt->is_string()) f.fail("field 'torch_dtype' must be a string");
    c.torch_dtype = dt->get<std::string>();
  }
  // Each dimension is bounded, but a tensor's size may still overflow (q_dim * hidden: 2^72).
  std::int64_t total = 0;
  for (const auto& p : parameter_specs(c)) {
    std::int64_t n = 1;
    bool overflow = false;
    for (const std::int64_t d : p.shape) overflow |= __builtin_mul_overflow(n, d, &n);
    overflow |= __builtin_add_overflow(total, n, &total);
    if (overflow)
      f.fail(concat("implausibly large model: its parameter count overflows at ", p.name));
  }
  return c;
}

std::vector<double> rope_inv_freq(const ModelConfig& config) {
  const std::int64_t dim = config.head_dim;
  std::vector<double> inv(static_cast<std::size_t>(dim / 2));
  for (std::int64_t i = 0; i < dim / 2; ++i) {
    inv[static_cast<std::size_t>(i)] =
        1.0 / std::pow(config.rope_theta, static_cast<double>(2 * i) / static_cast<double>(dim));
  }
  const RopeScaling& rs = config.rope_scaling;
  if (rs.type == "linear") {
    for (double& f : inv) f /= rs.factor;
  } else if (rs.type == "llama3") {
    // transformers.modeling_rope_utils._compute_llama3_parameters, elementwise.
    const double old_context = static_cast<double>(rs.original_max_position_embeddings);
    const double low_freq_wavelen = old_context / rs.low_freq_factor;
    const double high_freq_wavelen = old_context / rs.high_freq_factor;
    for (double& f : inv) {
      const double wavelen = 2 * std::numbers::pi / f;
      double scaled = wavelen > low_freq_wavelen ? f / rs.factor : f;
      const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
      if (medium) {
        const double smooth = (old_context / wavelen - rs.low_freq_factor) /
                              (rs.high_freq_factor - rs.low_freq_factor);
        scaled = (1 - smooth) * scaled / rs.factor + smooth * scaled;
      }
      f = scaled;
    }
  }
  return inv;
}

std::vector<ParameterSpec> parameter_specs(const ModelConfig& c) {
  using Init = ParameterSpec::Init;
  std::vector<ParameterSpec> out;
  const std::int64_t h = c.hidden_size;
  const std::int64_t q_dim = c.num_attention_heads * c.head_dim;
  const std::int64_t kv_dim = c.num_key_value_heads * c.head_dim;
  const std::int64_t inter = c.intermediate_size;
  auto linear = [&](const std::string& prefix, std::int64_t out_f, std::int64_t in_f, bool bias) {
    out.push_back({prefix + ".weight", {out_f, in_f}, Init::kNormal});
    if (bias) out.push_back({prefix + ".bias", {out_f}, Init::kZeros});
  };
  out.push_back({"model.embed_tokens.weight", {c.vocab_size, h}, Init::kNormal});
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    linear(p + "self_attn.q_proj", q_dim, h, c.qkv_bias);
    linear(p + "self_attn.k_proj", kv_dim, h, c.qkv_bias);
    linear(p + "self_attn.v_proj", kv_dim, h, c.qkv_bias);
    linear(p + "self_attn.o_proj", h, q_dim, c.o_bias);
    linear(p + "mlp.gate_proj", inter, h, c.mlp_bias);
    linear(p + "mlp.up_proj", inter, h, c.mlp_bias);
    linear(p + "mlp.down_proj", h, inter, c.mlp_bias);
    out.push_back({p + "input_layernorm.weight", {h}, Init::kOnes});
    out.push_back({p + "post_attention_layernorm.weight", {h}, Init::kOnes});
  }
  out.push_back({"model.norm.weight", {h}, Init::kOnes});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, h}, Init::kNormal});
  return out;
}

std::int64_t parameter_count(const ModelConfig& config) {
  std::int64_t total = 0;
  for (const auto& p : parameter_specs(config)) {
    std::int64_t n = 1;
    for (std::int64_t d : p.shape) n *= d;
    total += n;
  }
  return total;
}

}  // namespace mr::torch_backend
