// Internal to mr_torch_model: safetensors element types as torch dtypes, and tensors from the
// (possibly unaligned) bytes of a safetensors file.
#pragma once

#include <torch/torch.h>

#include <cstring>
#include <span>

#include "metareward/safetensors/safetensors.hpp"

namespace mr::torch_backend::detail {

inline torch::Dtype to_torch(safetensors::DType dtype) {
  switch (dtype) {
    case safetensors::DType::kF32:
      return torch::kFloat32;
    case safetensors::DType::kF16:
      return torch::kFloat16;
    case safetensors::DType::kBF16:
      return torch::kBFloat16;
  }
  return torch::kFloat32;
}

/// A CPU tensor of `info`'s dtype and shape holding a copy of `bytes` (data may be unaligned).
inline torch::Tensor tensor_from_bytes(const safetensors::TensorInfo& info,
                                       std::span<const std::byte> bytes) {
  auto t = torch::empty(info.shape, torch::TensorOptions().dtype(to_torch(info.dtype)));
  std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t;
}

}  // namespace mr::torch_backend::detail
