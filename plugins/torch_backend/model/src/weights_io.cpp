/// @file weights_io.cpp
/// Loading HF safetensors checkpoints into a CausalLM and saving one back.
#include <torch/torch.h>

#include <cstring>
#include <set>
#include <sstream>

#include "metareward/sdk/error.hpp"
#include "metareward/sdk/file_io.hpp"
#include "metareward/torch_model/causal_lm.hpp"
#include "metareward/torch_model/checkpoint_files.hpp"
#include "tensor_bytes.hpp"

namespace mr::torch_backend {
namespace {

namespace fs = std::filesystem;
using detail::to_torch;
using mr::sdk::BackendError;
using mr::sdk::detail::concat;

const char* torch_dtype_name(safetensors::DType dtype) {
  switch (dtype) {
    case safetensors::DType::kF32:
      return "float32";
    case safetensors::DType::kF16:
      return "float16";
    case safetensors::DType::kBF16:
      return "bfloat16";
  }
  return "float32";
}

bool ignorable(const std::string& name, bool tied) {
  if (tied && name == "lm_head.weight") return true;  // HF ties it on load as well.
  const std::string suffix = "rotary_emb.inv_freq";   // Buffers some old exports persisted.
  return name.size() >= suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Up to `limit` names, comma separated, with "... (N more)".
std::string list_names(const std::vector<std::string>& names, std::size_t limit = 10) {
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < limit; ++i) {
    if (i > 0) out += ", ";
    out += names[i];
  }
  if (names.size() > limit) out += concat(", ... (", names.size() - limit, " more)");
  return out;
}

}  // namespace

void load_weights(CausalLMImpl& model, const fs::path& dir) {
  model.require_unpacked("load_weights");
  safetensors::CheckpointReader checkpoint(dir);
  torch::NoGradGuard no_grad;
  auto params = model.named_parameters(/*recurse=*/true);

  std::vector<std::string> missing, mismatched, unexpected;
  std::set<std::string> expected;
  for (const auto& item : params) {
    expected.insert(item.key());
    auto [reader, info] = checkpoint.find(item.key());
    if (info == nullptr) {
      missing.push_back(item.key());
    } else if (!std::equal(info->shape.begin(), info->shape.end(), item.value().sizes().begin(),
                           item.value().sizes().end())) {
      mismatched.push_back(concat(item.key(), " (checkpoint ",
                                  safetensors::format_shape(info->shape), ", model ",
                                  safetensors::format_shape(item.value().sizes()), ")"));
    }
  }
  for (const auto& name : checkpoint.names()) {
    if (!expected.count(name) && !ignorable(name, model.config().tie_word_embeddings)) {
      unexpected.push_back(name);
    }
  }
  if (!missing.empty() || !mismatched.empty() || !unexpected.empty()) {
    std::ostringstream msg;
    msg << "checkpoint '" << dir.string() << "' does not match the "
        << model.config().architecture_name << " model of its config:";
    if (!missing.empty())
      msg << " missing " << missing.size() << " tensors: " << list_names(missing) << ";";
    if (!mismatched.empty()) {
      msg << " wrong shape for " << mismatched.size() << ": " << list_names(mismatched) << ";";
    }
    if (!unexpected.empty()) {
      msg << " unexpected " << unexpected.size() << " tensors: " << list_names(unexpected) << ";";
    }
    std::string text = msg.str();
    text.pop_back();
    throw BackendError(text);
  }

  for (auto& item : params) {
    auto [reader, info] = checkpoint.find(item.key());
    auto bytes = reader->data(*info);
    torch::Tensor& param = item.value();
    const auto disk_dtype = to_torch(info->dtype);
    if (param.device().is_cpu() && param.is_contiguous() && param.scalar_type() == disk_dtype) {
      std::memcpy(param.data_ptr(), bytes.data(), bytes.size());  // Data may be unaligned.
    } else {
      param.copy_(detail::tensor_from_bytes(*info, bytes));
    }
    reader->release(*info);  // The parameter holds the bytes now; drop the file's pages.
  }
}

CausalLM load_causal_lm(const fs::path& dir, const ModelOptions& options) {
  CausalLM model(parse_model_config(dir / "config.json"), options);
  load_weights(*model, dir);
  return model;
}

void save_checkpoint(const CausalLMImpl& model, const fs::path& dir, const SaveOptions& options) {
  model.require_unpacked("save_checkpoint");
  const ModelConfig& config = model.config();
  auto params = model.named_parameters(/*recurse=*/true);
  std::vector<safetensors::TensorSpec> specs;
  for (const auto& item : params) {
    const auto sizes = item.value().sizes();
    specs.push_back(
        {item.key(), options.dtype, std::vector<std::int64_t>(sizes.begin(), sizes.end())});
  }
  const auto dtype = to_torch(options.dtype);

  StagingDirectory staging(dir);
  safetensors::write_file(staging.path() / "model.safetensors", std::move(specs),
                          [&](const safetensors::TensorSpec& spec, std::span<std::byte> out) {
                            torch::NoGradGuard no_grad;
                            // With an adapter attached, the merged weights are written.
                            auto value = model.has_lora() ? model.merged_parameter(spec.name)
                                                          : params[spec.name];
                            auto t = value.detach().to(torch::kCPU, dtype).contiguous();
                            std::memcpy(out.data(), t.data_ptr(), out.size());
                          },
                          {{"format", "pt"}});
  sdk::write_file_atomic(staging.path() / "config.json",
                         config_json_with_dtype(config, torch_dtype_name(options.dtype)));
  sdk::write_file_atomic(staging.path() / "generation_config.json", generation_config_json(config));
  if (options.copy_files_from) {
    copy_tokenizer_files(*options.copy_files_from, staging.path(), /*require_tokenizer_json=*/false,
                         /*include_generation_config=*/true);
  }
  staging.commit();
}

}  // namespace mr::torch_backend
