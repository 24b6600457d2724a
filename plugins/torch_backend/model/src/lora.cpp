/// @file lora.cpp
/// LoRA adapters on the decoder's linear layers (CausalLMImpl::add_lora and friends) and the
/// PEFT adapter files: adapter_config.json + adapter_model.safetensors, tensor names
/// "base_model.model.<module>.lora_{A,B}.weight" as PEFT's get_peft_model_state_dict writes them.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "decoder_layers.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/sdk/file_io.hpp"
#include "metareward/sdk/trainable_model.hpp"
#include "metareward/torch_model/causal_lm.hpp"
#include "metareward/torch_model/checkpoint_files.hpp"
#include "tensor_bytes.hpp"

namespace mr::torch_backend {

namespace fs = std::filesystem;
using json = nlohmann::json;
using mr::sdk::BackendError;
using mr::sdk::detail::concat;

namespace {

constexpr const char* kPrefix = "base_model.model.";
constexpr const char* kConfigFile = "adapter_config.json";
constexpr const char* kWeightsFile = "adapter_model.safetensors";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// PEFT's rule for a list of target names: the module's name equals the target or ends with
/// "." + target.
bool targeted(const std::string& module, const std::vector<std::string>& targets) {
  for (const auto& t : targets)
    if (module == t || ends_with(module, "." + t)) return true;
  return false;
}

/// Every linear layer of `model` by HF module name, in module order.
std::vector<std::pair<std::string, std::shared_ptr<detail::LinearImpl>>> linear_layers(
    const torch::nn::Module& model) {
  std::vector<std::pair<std::string, std::shared_ptr<detail::LinearImpl>>> out;
  for (const auto& item : model.named_modules("", /*include_self=*/false))
    if (auto linear = std::dynamic_pointer_cast<detail::LinearImpl>(item.value()))
      out.emplace_back(item.key(), std::move(linear));
  return out;
}

}  // namespace

void CausalLMImpl::restore_requires_grad() {
  auto params = parameters(/*recurse=*/true);
  for (std::size_t i = 0; i < params.size(); ++i)
    params[i].requires_grad_(i < base_requires_grad_.size() ? base_requires_grad_[i] : true);
  base_requires_grad_.clear();
}

LoraConfig to_lora_config(const mr::sdk::LoraSettings& settings) {
  LoraConfig c;
  c.r = settings.r;
  c.alpha = settings.alpha;
  c.dropout = settings.dropout;
  c.target_modules = settings.target_modules;
  return c;
}

std::vector<torch::Tensor> CausalLMImpl::trainable_parameters() {
  if (!lora_) return parameters(/*recurse=*/true);
  std::vector<torch::Tensor> adapter;
  for (auto& layer : lora_layers()) {
    adapter.push_back(layer.a);
    adapter.push_back(layer.b);
  }
  return adapter;
}

double LoraConfig::scale() const {
  return use_rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
}

void CausalLMImpl::add_lora(const LoraConfig& config, std::uint64_t seed) {
  MR_CHECK_AS(BackendError, !lora_, "add_lora: the model already has an adapter");
  MR_CHECK_AS(BackendError, config.r >= 1, "LoRA r must be >= 1, got ", config.r);
  MR_CHECK_AS(BackendError, config.alpha > 0, "LoRA alpha must be > 0, got ", config.alpha);
  MR_CHECK_AS(BackendError, config.dropout >= 0 && config.dropout < 1,
              "LoRA dropout must be in [0, 1), got ", config.dropout);
  MR_CHECK_AS(BackendError, !config.target_modules.empty(), "LoRA target_modules is empty");
  const auto layers = linear_layers(*this);
  std::set<std::string> unmatched(config.target_modules.begin(), config.target_modules.end());
  for (const auto& [name, layer] : layers)
    for (const auto& t : config.target_modules)
      if (name == t || ends_with(name, "." + t)) unmatched.erase(t);
  if (!unmatched.empty()) {
    std::string names, known;
    for (const auto& t : unmatched) names += (names.empty() ? "" : ", ") + t;
    std::set<std::string> leaves;
    for (const auto& [name, layer] : layers) leaves.insert(name.substr(name.rfind('.') + 1));
    for (const auto& l : leaves) known += (known.empty() ? "" : ", ") + l;
    throw BackendError(concat("LoRA target_modules ", names, " match no linear layer of the ",
                              config_.architecture_name, " model (its linear layers: ", known,
                              ")"));
  }

  // PEFT: kaiming_uniform_(A, a=sqrt(5)) gives U(-1/sqrt(in), 1/sqrt(in)); B = 0.
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto device = this->device();
  for (const auto& [name, layer] : layers) {
    if (!targeted(name, config.target_modules)) continue;
    const std::int64_t in = layer->weight.size(1), out = layer->weight.size(0);
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    auto adapter = std::make_shared<detail::LoraAdapter>();
    adapter->a = torch::empty({config.r, in}, torch::kFloat32);
    {
      torch::NoGradGuard no_grad;
      adapter->a.uniform_(-bound, bound, generator);
    }
    adapter->a = adapter->a.to(device).requires_grad_(true);
    adapter->b =
        torch::zeros({out, config.r}, torch::TensorOptions().dtype(torch::kFloat32).device(device))
            .requires_grad_(true);
    adapter->scale = config.scale();
    adapter->dropout = config.dropout;
    adapter->enabled = lora_enabled_;
    layer->lora = std::move(adapter);
  }
  base_requires_grad_.clear();
  for (auto& p : parameters(/*recurse=*/true)) {
    base_requires_grad_.push_back(p.requires_grad());
    p.requires_grad_(false);
  }
  *lora_enabled_ = true;
  lora_ = config;
}

const LoraConfig& CausalLMImpl::lora_config() const {
  MR_CHECK_AS(BackendError, lora_.has_value(), "the model has no LoRA adapter");
  return *lora_;
}

std::vector<LoraLayer> CausalLMImpl::lora_layers() const {
  std::vector<LoraLayer> out;
  for (const auto& [name, layer] : linear_layers(*this))
    if (layer->lora) out.push_back({name, layer->lora->a, layer->lora->b});
  return out;
}

void CausalLMImpl::set_lora_enabled(bool enabled) {
  *lora_enabled_ = enabled;
}

torch::Tensor CausalLMImpl::merged_parameter(const std::string& name) const {
  require_unpacked("merged_parameter");
  auto params = named_parameters(/*recurse=*/true);
  const torch::Tensor* p = params.find(name);
  MR_CHECK_AS(BackendError, p != nullptr, "the model has no parameter '", name, "'");
  if (!lora_ || !ends_with(name, ".weight")) return *p;
  const std::string module = name.substr(0, name.size() - std::string(".weight").size());
  for (const auto& [layer_name, layer] : linear_layers(*this)) {
    if (layer_name != module || !layer->lora) continue;
    torch::NoGradGuard no_grad;
    const auto& ad = *layer->lora;
    auto merged = p->to(torch::kFloat32) + torch::matmul(ad.b, ad.a) * ad.scale;
    return merged.to(p->scalar_type());
  }
  return *p;
}

void CausalLMImpl::merge_lora() {
  if (!lora_) return;
  require_unpacked("merge_lora");
  {
    torch::NoGradGuard no_grad;
    for (const auto& [name, layer] : linear_layers(*this)) {
      if (!layer->lora) continue;
      layer->weight.copy_(merged_parameter(name + ".weight"));
      layer->lora = nullptr;
    }
  }
  restore_requires_grad();
  lora_.reset();
  *lora_enabled_ = true;
}

void CausalLMImpl::remove_lora() {
  if (!lora_) return;
  for (const auto& [name, layer] : linear_layers(*this)) layer->lora = nullptr;
  restore_requires_grad();
  lora_.reset();
  *lora_enabled_ = true;
}

// ---------------------------------------------------------------------------------------------
// PEFT files

void save_lora_adapter(const CausalLMImpl& model,
                       const fs::path& dir,
                       const std::string& base_model_name_or_path) {
  const LoraConfig& config = model.lora_config();
  const auto layers = model.lora_layers();
  std::vector<torch::Tensor> owned;  // Contiguous CPU copies backing the byte spans.
  std::vector<safetensors::TensorData> tensors;
  for (const auto& layer : layers) {
    for (const auto& [suffix, t] :
         {std::pair{".lora_A.weight", layer.a}, {".lora_B.weight", layer.b}}) {
      owned.push_back(t.detach().to(torch::kCPU, torch::kFloat32).contiguous());
      const auto& c = owned.back();
      safetensors::TensorData d;
      d.spec = {kPrefix + layer.module + suffix, safetensors::DType::kF32,
                std::vector<std::int64_t>(c.sizes().begin(), c.sizes().end())};
      d.data = std::span<const std::byte>(static_cast<const std::byte*>(c.data_ptr()),
                                          static_cast<std::size_t>(c.nbytes()));
      tensors.push_back(d);
    }
  }
  // Only keys every PEFT release since rsLoRA/DoRA (2024) reads; PEFT fills in the rest.
  json cfg = {{"peft_type", "LORA"},
              {"task_type", "CAUSAL_LM"},
              {"base_model_name_or_path", base_model_name_or_path},
              {"revision", nullptr},
              {"r", config.r},
              {"lora_alpha", config.alpha},
              {"lora_dropout", config.dropout},
              {"target_modules", config.target_modules},
              {"bias", "none"},
              {"fan_in_fan_out", false},
              {"inference_mode", true},
              {"init_lora_weights", true},
              {"modules_to_save", nullptr},
              {"layers_to_transform", nullptr},
              {"layers_pattern", nullptr},
              {"rank_pattern", json::object()},
              {"alpha_pattern", json::object()},
              {"use_rslora", config.use_rslora},
              {"use_dora", false}};
  StagingDirectory staging(dir);
  safetensors::write_file(staging.path() / kWeightsFile, tensors, {{"format", "pt"}});
  sdk::write_file_atomic(staging.path() / kConfigFile, cfg.dump(2) + "\n");
  staging.commit();
}

namespace {

/// A string key's value, "true"/"false" for a bool, "" when absent or of another type.
std::string text_or_bool(const json& j, const char* key) {
  if (!j.contains(key)) return "";
  if (j[key].is_string()) return j[key].get<std::string>();
  if (j[key].is_boolean()) return j[key].get<bool>() ? "true" : "false";
  return "";
}

/// adapter_config.json as a LoraConfig (target_modules left empty: the tensors decide).
LoraConfig read_adapter_config(const fs::path& file) {
  std::ifstream in(file);
  MR_CHECK_AS(BackendError, in.good(), "cannot read '", file.string(),
              "' (a PEFT adapter directory holds adapter_config.json)");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw BackendError(concat("'", file.string(), "' is not valid JSON: ", e.what()));
  }
  const auto fail = [&](const std::string& why) -> BackendError {
    return BackendError(concat("'", file.string(), "': ", why));
  };
  if (!j.is_object()) throw fail("expected a JSON object");
  const auto text = [&](const char* key, const std::string& fallback) {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    if (!j[key].is_string()) throw fail(concat("\"", key, "\" must be a string"));
    return j[key].get<std::string>();
  };
  const auto flag = [&](const char* key) {
    if (!j.contains(key) || j[key].is_null()) return false;
    if (!j[key].is_boolean()) throw fail(concat("\"", key, "\" must be true or false"));
    return j[key].get<bool>();
  };
  const auto number = [&](const char* key, double fallback) {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    if (!j[key].is_number()) throw fail(concat("\"", key, "\" must be a number"));
    return j[key].get<double>();
  };
  const auto empty_or_null = [&](const char* key) {
    return !j.contains(key) || j[key].is_null() || (j[key].is_object() && j[key].empty()) ||
           (j[key].is_array() && j[key].empty());
  };
  if (const auto type = text("peft_type", ""); type != "LORA")
    throw fail(concat("peft_type is \"", type, "\"; only LORA adapters can be merged"));
  if (flag("use_dora")) throw fail("DoRA adapters (use_dora) are not supported");
  if (flag("fan_in_fan_out"))
    throw fail("fan_in_fan_out adapters (GPT-2 Conv1D) are not supported");
  if (const auto bias = text("bias", "none"); bias != "none")
    throw fail(concat("bias \"", bias, "\" is not supported (only \"none\")"));
  for (const char* key : {"rank_pattern", "alpha_pattern", "modules_to_save"})
    if (!empty_or_null(key)) throw fail(concat("\"", key, "\" is not supported"));
  if (const auto init = text_or_bool(j, "init_lora_weights");
      init.rfind("pissa", 0) == 0 || init == "olora" || init == "loftq" || init == "corda")
    throw fail(concat("init_lora_weights \"", init,
                      "\" adapters belong to a base model their initialisation changed; convert "
                      "the adapter with PEFT (path_initial_model_for_weight_conversion) first"));
  if (!j.contains("r") || !j["r"].is_number_integer()) throw fail("\"r\" must be an integer");
  LoraConfig c;
  c.r = j["r"].get<std::int64_t>();
  c.alpha = number("lora_alpha", 8);
  c.dropout = 0.0;  // Merging: no dropout.
  c.use_rslora = flag("use_rslora");
  c.target_modules.clear();
  if (c.r < 1) throw fail(concat("r must be >= 1, got ", c.r));
  return c;
}

}  // namespace

void merge_lora_adapter(CausalLMImpl& model, const fs::path& dir) {
  model.require_unpacked("merge_lora_adapter");
  MR_CHECK_AS(BackendError, !model.has_lora(),
              "merge_lora_adapter: the model has an adapter already");
  LoraConfig config = read_adapter_config(dir / kConfigFile);
  const fs::path weights = dir / kWeightsFile;
  if (!fs::exists(weights)) {
    throw BackendError(concat("'", dir.string(), "' has no ", kWeightsFile,
                              fs::exists(dir / "adapter_model.bin")
                                  ? " (only adapter_model.bin: re-save it with PEFT's "
                                    "save_pretrained(safe_serialization=True))"
                                  : ""));
  }
  safetensors::Reader reader(weights);
  // module -> (A, B) tensor entries.
  std::map<std::string, std::pair<const safetensors::TensorInfo*, const safetensors::TensorInfo*>>
      modules;
  std::vector<std::string> bad;
  for (const auto& info : reader.tensors()) {
    const std::string& n = info.name;
    const bool is_a = ends_with(n, ".lora_A.weight"), is_b = ends_with(n, ".lora_B.weight");
    if (n.rfind(kPrefix, 0) != 0 || (!is_a && !is_b)) {
      bad.push_back(n);
      continue;
    }
    const std::string module =
        n.substr(std::string(kPrefix).size(),
                 n.size() - std::string(kPrefix).size() - std::string(".lora_A.weight").size());
    (is_a ? modules[module].first : modules[module].second) = &info;
  }
  if (!bad.empty())
    throw BackendError(concat("'", weights.string(), "': ", bad.size(),
                              " tensors are not LoRA A/B weights in PEFT's naming "
                              "(base_model.model.<module>.lora_A.weight), e.g. '",
                              bad.front(), "'"));
  MR_CHECK_AS(BackendError, !modules.empty(), "'", weights.string(), "' holds no tensors");
  // Every module must be one of the model's linear layers by its exact name, with A [r, in] and
  // B [out, r], checked on the header before anything is allocated.
  const auto params = model.named_parameters(/*recurse=*/true);
  for (const auto& [module, ab] : modules) {
    MR_CHECK_AS(BackendError, ab.first && ab.second, "'", weights.string(), "': module '", module,
                "' has only its lora_", ab.first ? "A" : "B", " tensor");
    const torch::Tensor* w = params.find(module + ".weight");
    if (w == nullptr || w->dim() != 2)
      throw BackendError(concat("'", weights.string(), "': ", ab.first->name, " adapts '", module,
                                "', which is not a linear layer of the ",
                                model.config().architecture_name,
                                " model (its names look like "
                                "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight)"));
    const std::vector<std::int64_t> want_a{config.r, w->size(1)}, want_b{w->size(0), config.r};
    for (const auto& [info, want] : {std::pair{ab.first, want_a}, std::pair{ab.second, want_b}})
      if (info->shape != want)
        throw BackendError(concat("'", weights.string(), "': ", info->name, " has shape ",
                                  safetensors::format_shape(info->shape), ", the model needs ",
                                  safetensors::format_shape(want), " (r = ", config.r,
                                  " in adapter_config.json)"));
    config.target_modules.push_back(module);
  }
  try {
    model.add_lora(config, 0);
  } catch (const BackendError& e) {
    throw BackendError(concat("adapter '", dir.string(), "' does not fit the model: ", e.what()));
  }
  try {
    torch::NoGradGuard no_grad;
    for (auto& layer : model.lora_layers()) {
      const auto it = modules.find(layer.module);
      MR_CHECK_AS(BackendError, it != modules.end(), "adapter '", dir.string(), "': layer '",
                  layer.module, "' got an adapter without tensors");
      const auto& [ia, ib] = it->second;
      layer.a.copy_(detail::tensor_from_bytes(*ia, reader.data(*ia)));
      layer.b.copy_(detail::tensor_from_bytes(*ib, reader.data(*ib)));
    }
    model.merge_lora();
  } catch (...) {
    model.remove_lora();  // Leave the model as it was.
    throw;
  }
}

}  // namespace mr::torch_backend
