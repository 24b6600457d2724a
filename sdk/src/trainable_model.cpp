// Key function of TrainableModel; lives in libmr_sdk_torch, the only SDK part linking libtorch.
#include "metareward/sdk/trainable_model.hpp"

namespace mr::sdk {
TrainableModel::~TrainableModel() = default;
}  // namespace mr::sdk
