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
