/// @file small_batch_linear.cpp
/// small_batch_linear(): x W^T + b for a few rows with dot products over the input dimension,
/// reading W [out, in] as it is stored. BLAS's gemm copies ("packs") every weight on every call,
/// which at a decode step's 1-64 rows costs as much as the arithmetic; here each weight row is
/// read from memory once per call and reused from cache for all rows. This file picks the
/// kernel (linear_kernel_avx2.cpp, linear_kernel_avx512.cpp) and splits the output features
/// between threads. Built with OpenMP (at::parallel_for's OpenMP backend is inline in its header).
#include "metareward/torch_model/small_batch_linear.hpp"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "linear_kernels.hpp"

namespace mr::torch_backend {

namespace {

using detail::LinearKernel;
using detail::LinearOperands;

// MR_MAX_CPU_ISA caps the instruction set of the inference kernels, as oneDNN's
// ONEDNN_MAX_CPU_ISA does: "avx512" (the default: whatever the CPU has), "avx2" or "none" (the
// libtorch ops only). Read once; an unknown value is an error at every use.
SmallBatchIsa isa_cap() {
  static const SmallBatchIsa cap = [] {
    const char* value = std::getenv("MR_MAX_CPU_ISA");
    const std::string v = value != nullptr ? value : "";
    if (v.empty() || v == "avx512" || v == "avx512f") return SmallBatchIsa::kAvx512;
    if (v == "avx2") return SmallBatchIsa::kAvx2Fma;
    if (v == "none") return SmallBatchIsa::kNone;
    throw std::invalid_argument("MR_MAX_CPU_ISA=\"" + v +
                                "\": expected avx512, avx2 or none (or unset)");
  }();
  return cap;
}

bool cpu_has_avx512f() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("avx512f");
  }();
  return has && isa_cap() == SmallBatchIsa::kAvx512;
}

const LinearKernel* kernel_for(SmallBatchIsa isa) {
  switch (isa) {
    case SmallBatchIsa::kAvx512:
      return cpu_has_avx512f() ? &detail::kAvx512LinearKernel : nullptr;
    case SmallBatchIsa::kAvx2Fma:
      return cpu_has_avx2_fma() ? &detail::kAvx2LinearKernel : nullptr;
    case SmallBatchIsa::kNone:
      break;
  }
  return nullptr;
}

}  // namespace

bool cpu_has_avx2_fma() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return has && isa_cap() != SmallBatchIsa::kNone;
}

bool small_batch_linear_applies(const at::Tensor& x,
                                const at::Tensor& weight,
                                const at::Tensor& bias) {
  if (!x.defined() || !weight.defined() || x.dim() < 1 || weight.dim() != 2) return false;
  const auto cpu_float = [](const at::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.layout() == at::kStrided;
  };
  if (!cpu_float(x) || !cpu_float(weight) || x.size(-1) != weight.size(1)) return false;
  if (weight.stride(1) != 1 || weight.stride(0) < weight.size(1)) return false;
  if (bias.defined() && (!cpu_float(bias) || bias.dim() != 1 || bias.size(0) != weight.size(0) ||
                         bias.stride(0) != 1))
    return false;
  if (weight.size(1) == 0 || weight.size(0) == 0) return false;
  const std::int64_t rows = x.size(-1) == 0 ? 0 : x.numel() / x.size(-1);
  if (rows < 1 || rows > kSmallBatchRows) return false;
  if (at::GradMode::is_enabled() &&
      (x.requires_grad() || weight.requires_grad() || (bias.defined() && bias.requires_grad())))
    return false;
  return small_batch_linear_isa() != SmallBatchIsa::kNone;
}

SmallBatchIsa small_batch_linear_isa() {
  if (cpu_has_avx512f()) return SmallBatchIsa::kAvx512;
  return cpu_has_avx2_fma() ? SmallBatchIsa::kAvx2Fma : SmallBatchIsa::kNone;
}

bool cpu_runs(SmallBatchIsa isa) {
  return kernel_for(isa) != nullptr;
}

const char* isa_name(SmallBatchIsa isa) {
  switch (isa) {
    case SmallBatchIsa::kAvx512:
      return "avx512f";
    case SmallBatchIsa::kAvx2Fma:
      return "avx2+fma";
    case SmallBatchIsa::kNone:
      break;
  }
  return "none";
}

at::Tensor small_batch_linear(const at::Tensor& x,
                              const at::Tensor& weight,
                              const at::Tensor& bias) {
  return small_batch_linear(x, weight, bias, small_batch_linear_isa());
}

at::Tensor small_batch_linear(const at::Tensor& x,
                              const at::Tensor& weight,
                              const at::Tensor& bias,
                              SmallBatchIsa isa) {
  if (!small_batch_linear_applies(x, weight, bias))
    throw std::invalid_argument(
        "small_batch_linear: unsupported operands (see "
        "small_batch_linear_applies)");
  const LinearKernel* kernel = kernel_for(isa);
  if (kernel == nullptr)
    throw std::invalid_argument(std::string("small_batch_linear: this CPU does not run the ") +
                                isa_name(isa) + " kernel");
  const std::int64_t in = weight.size(1), out = weight.size(0);
  auto x2 = x.reshape({-1, in});
  if (x2.stride(1) != 1 || x2.stride(0) < in) x2 = x2.contiguous();
  const std::int64_t rows = x2.size(0);
  auto y = at::empty({rows, out}, x.options());
  const LinearOperands o{x2.data_ptr<float>(),
                         x2.stride(0),
                         weight.data_ptr<float>(),
                         weight.stride(0),
                         bias.defined() ? bias.data_ptr<float>() : nullptr,
                         y.data_ptr<float>(),
                         out,
                         in};
  const std::int64_t span = kernel->chunk_cols;
  const std::int64_t chunks = (out + span - 1) / span;
  const auto* w_bytes = reinterpret_cast<const char*>(o.w);
  at::parallel_for(0, chunks, 1, [&](std::int64_t first, std::int64_t last) {
    for (std::int64_t c = first; c < last; ++c) {
      const std::int64_t begin = c * span, end = std::min(out, begin + span);
      const std::int64_t next_end = c + 1 < last ? std::min(out, end + span) : end;
      kernel->chunk(o, rows, begin, end,
                    w_bytes + end * o.ldw * static_cast<std::int64_t>(sizeof(float)),
                    (next_end - end) * o.ldw * static_cast<std::int64_t>(sizeof(float)));
    }
  });
  auto sizes = x.sizes().vec();
  sizes.back() = out;
  return y.view(sizes);
}

}  // namespace mr::torch_backend
