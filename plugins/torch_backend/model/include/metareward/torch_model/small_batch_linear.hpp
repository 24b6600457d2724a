/// @file small_batch_linear.hpp
/// x W^T + b for the few rows of a decode step, reading the weights in their own layout.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace mr::torch_backend {

/// The most rows small_batch_linear() takes: a decode step's batch. Above it BLAS's gemm, which
/// packs the weights once per call, is as fast or faster.
inline constexpr std::int64_t kSmallBatchRows = 64;

/// Whether this CPU runs the AVX2 + FMA kernels of small_batch_linear() (checked once).
bool cpu_has_avx2_fma();

/// Whether small_batch_linear() computes x W^T + b for these tensors: float32 on the CPU, at
/// most kSmallBatchRows rows of x (all dimensions but the last), a row-major weight [out, in],
/// no autograd graph to record, and a CPU with AVX2 and FMA.
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

}  // namespace mr::torch_backend
