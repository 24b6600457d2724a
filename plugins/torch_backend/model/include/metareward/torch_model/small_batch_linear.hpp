/// @file small_batch_linear.hpp
/// x W^T + b for the few rows of a decode step, reading the weights in their own layout.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace mr::torch_backend {

/// The most rows small_batch_linear() takes: a decode step's batch. Above it BLAS's gemm, which
/// packs the weights once per call, is as fast or faster.
inline constexpr std::int64_t kSmallBatchRows = 64;

/// Whether this CPU runs the AVX2 + FMA kernels of small_batch_linear() and of the other
/// inference kernels (checked once), and the environment variable MR_MAX_CPU_ISA allows them.
/// MR_MAX_CPU_ISA caps the kernels' instruction set, as oneDNN's ONEDNN_MAX_CPU_ISA: "avx512"
/// (the default), "avx2" (the AVX2 kernels only) or "none" (libtorch's ops only); another value
/// makes this and every kernel query throw std::invalid_argument naming it.
bool cpu_has_avx2_fma();

/// The instruction sets small_batch_linear() has a kernel for.
enum class SmallBatchIsa {
  kNone,     ///< None: small_batch_linear() does not apply on this CPU.
  kAvx2Fma,  ///< AVX2 + FMA, 8 lanes.
  kAvx512,   ///< AVX-512F, 16 lanes (rounds differently from kAvx2Fma: another lane split).
};

/// The kernel small_batch_linear() uses on this CPU: the widest it runs within MR_MAX_CPU_ISA,
/// fixed for the process, so results do not change from call to call.
SmallBatchIsa small_batch_linear_isa();

/// Whether this CPU runs `isa`'s kernel within MR_MAX_CPU_ISA (kNone: false).
bool cpu_runs(SmallBatchIsa isa);

/// "avx512f", "avx2+fma" or "none".
const char* isa_name(SmallBatchIsa isa);

/// Whether small_batch_linear() computes x W^T + b for these tensors: float32 on the CPU, at
/// most kSmallBatchRows rows of x (all dimensions but the last), a row-major weight [out, in],
/// no autograd graph to record, and a CPU with AVX2 and FMA (small_batch_linear_isa() not kNone).
bool small_batch_linear_applies(const at::Tensor& x,
                                const at::Tensor& weight,
                                const at::Tensor& bias);

/// x W^T + b (`bias` may be undefined) as [..., out]. Each output element is the same
/// fixed-order sum over the input dimension whatever the number of rows, so a row's result does
/// not depend on the other rows of the batch. Parallel over the output features with libtorch's
/// intra-op threads. Throws std::invalid_argument where small_batch_linear_applies() is false.
at::Tensor small_batch_linear(const at::Tensor& x,
                              const at::Tensor& weight,
                              const at::Tensor& bias);

/// small_batch_linear() with the kernel of `isa` (tests and benchmarks compare kernels); throws
/// std::invalid_argument where this CPU does not run it.
at::Tensor small_batch_linear(const at::Tensor& x,
                              const at::Tensor& weight,
                              const at::Tensor& bias,
                              SmallBatchIsa isa);

}  // namespace mr::torch_backend
