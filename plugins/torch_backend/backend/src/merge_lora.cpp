// `merge-lora`'s work: base checkpoint + PEFT adapter -> merged HF checkpoint.
#include <torch/torch.h>

#include "metareward/safetensors/safetensors.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/torch_backend_plugin/torch_backend.hpp"
#include "metareward/torch_model/causal_lm.hpp"

namespace mr::plugins::torch_backend {

namespace tb = ::mr::torch_backend;
namespace fs = std::filesystem;

std::string merge_lora_checkpoint(const std::string& model_dir,
                                  const std::string& adapter_dir,
                                  const std::string& out_dir,
                                  const std::string& dtype) {
  tb::SaveOptions options;
  if (dtype == "float32") {
    options.dtype = safetensors::DType::kF32;
  } else if (dtype == "bfloat16") {
    options.dtype = safetensors::DType::kBF16;
  } else {
    // The base's own storage type, so a bf16 checkpoint stays bf16.
    safetensors::CheckpointReader base(model_dir);
    const auto& shards = base.shards();
    if (!shards.empty() && !shards.front().tensors().empty())
      options.dtype = shards.front().tensors().front().dtype;
  }
  // Merged in float32 (W + scale·B A), rounded once when written.
  tb::CausalLM model = tb::load_causal_lm(model_dir, tb::ModelOptions{torch::kFloat32});
  tb::merge_lora_adapter(*model, adapter_dir);
  options.copy_files_from = fs::path(model_dir);
  tb::save_checkpoint(*model, out_dir, options);
  return "merged the adapter " + adapter_dir + " into " + model_dir + " -> " + out_dir + " (" +
         std::string(safetensors::dtype_name(options.dtype)) + ")";
}

}  // namespace mr::plugins::torch_backend
