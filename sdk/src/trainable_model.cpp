// Key functions of TrainableModel and Collective, and TrainableModel's optional members'
// defaults; lives in libmr_sdk_torch, the only SDK part linking libtorch.
#include "metareward/sdk/trainable_model.hpp"

#include "metareward/sdk/collective.hpp"

#include "metareward/sdk/error.hpp"

namespace mr::sdk {

namespace {
[[noreturn]] void no_lora(const char* what) {
  throw PluginError(std::string("this model backend does not support LoRA adapters (") + what +
                    ")");
}
}  // namespace

TrainableModel::~TrainableModel() = default;
CollectiveWork::~CollectiveWork() = default;
Collective::~Collective() = default;

torch::Tensor TrainableModel::target_logprobs(const torch::Tensor& input_ids,
                                              const torch::Tensor& attention_mask,
                                              const torch::Tensor& target_rows,
                                              const torch::Tensor& target_ids) {
  const torch::Tensor logits = forward(input_ids, attention_mask);
  MR_CHECK_AS(BackendError,
              logits.dim() == 3 && logits.size(0) == input_ids.size(0) &&
                  logits.size(1) == input_ids.size(1),
              "model forward returned logits of ", logits.dim(), " dimensions for input_ids [",
              input_ids.size(0), ", ", input_ids.size(1), "], expected [batch, seq, vocab]");
  // Only the scored rows reach the softmax; half-precision logits are reduced in float32.
  torch::Tensor rows = logits.reshape({-1, logits.size(2)}).index_select(0, target_rows);
  if (rows.scalar_type() == torch::kBFloat16 || rows.scalar_type() == torch::kHalf)
    rows = rows.to(torch::kFloat32);
  return rows.gather(1, target_ids.unsqueeze(1)).squeeze(1) - rows.logsumexp(1);
}

bool TrainableModel::supports_shared_prefix() const {
  return false;
}
torch::Tensor TrainableModel::branched_target_logprobs(const torch::Tensor&,
                                                       const torch::Tensor&,
                                                       const torch::Tensor&,
                                                       const torch::Tensor&,
                                                       const torch::Tensor&) {
  throw PluginError(
      "this model backend does not support shared-prefix rows (branched_target_logprobs)");
}

bool TrainableModel::supports_lora() const {
  return false;
}
void TrainableModel::add_lora(const LoraSettings&) {
  no_lora("add_lora");
}
void TrainableModel::set_lora_enabled(bool) {
  no_lora("set_lora_enabled");
}
void TrainableModel::save_lora(const std::filesystem::path&) const {
  no_lora("save_lora");
}
void TrainableModel::merge_lora() {
  no_lora("merge_lora");
}
void TrainableModel::remove_lora() {
  no_lora("remove_lora");
}
bool TrainableModel::set_gradient_checkpointing(bool enabled) {
  return !enabled;
}

}  // namespace mr::sdk
