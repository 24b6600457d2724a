/// @file packed_linear.hpp
/// x W^T + b over weights stored in an inference layout ("packed"): each block of
/// kPackedPanelRows rows of W [out, in] is stored transposed, input feature by input feature, in
/// the block's own place. A decode step's product then reads W once, in order, with no
/// horizontal sums, at 85-90 % of the FMA peak instead of ~70 %; prefill chunks run faster than
/// BLAS's gemm too. The layout is a permutation inside the weight's own storage, so packing
/// costs no memory, but while packed the tensor's values are not W: only these functions may
/// read it (CausalLMImpl::pack_inference_weights() keeps track).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace mr::torch_backend {

/// Rows of W per packed block: 3 vectors of 16 output features.
inline constexpr std::int64_t kPackedPanelRows = 48;

/// Whether this CPU runs packed_linear() (AVX-512F, within MR_MAX_CPU_ISA; checked once).
bool packed_linear_supported();

/// Whether `weight` can be packed: float32 on the CPU, 2-D, contiguous, not empty, and
/// packed_linear_supported().
bool packable_weight(const at::Tensor& weight);

/// Rewrites W [out, in] into the packed layout in place (no version bump: the values the tensor
/// stands for do not change). Each block of kPackedPanelRows rows (the last may be narrower)
/// becomes its transpose [in, rows of the block]. Parallel over the blocks. Throws
/// std::invalid_argument where packable_weight() is false.
void pack_weight(const at::Tensor& weight);

/// The inverse of pack_weight(): the tensor holds W again, bit for bit.
void unpack_weight(const at::Tensor& weight);

/// x W^T + b as [..., out] for float32 x [..., in] (any number of rows), `packed` a weight
/// pack_weight() rewrote, `bias` [out] or undefined. Each output is one fused multiply-add
/// chain over the input features in order (then + bias), so a row's result depends neither on
/// the other rows nor on how the work is split between threads. Parallel over the blocks with
/// libtorch's intra-op threads. Not differentiable. Throws std::invalid_argument on operands
/// that do not fit.
at::Tensor packed_linear(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& bias);

/// Rows `ids` (int64, any shape) of the W that `packed` holds, as [..., in]: the embedding
/// lookup of a tied embedding matrix that is packed for the LM head. Throws
/// std::invalid_argument on an id outside [0, out).
at::Tensor packed_weight_rows(const at::Tensor& packed, const at::Tensor& ids);

}  // namespace mr::torch_backend
