/// @file packed_linear.cpp
/// The packed weight layout (packed_linear.hpp): packing and unpacking in place, the product
/// over packed blocks (kernel in linear_kernel_packed_avx512.cpp) and the row gather of a packed
/// embedding matrix. Built with OpenMP (at::parallel_for's OpenMP backend is inline in its
/// header).
#include "metareward/torch_model/packed_linear.hpp"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "linear_kernels.hpp"
#include "metareward/torch_model/small_batch_linear.hpp"

namespace mr::torch_backend {

namespace {

// Rows of W in block b of a weight with `out` rows.
std::int64_t block_width(std::int64_t out, std::int64_t b) {
  return std::min(kPackedPanelRows, out - b * kPackedPanelRows);
}

// Rows of x per pass over the blocks of W.
constexpr std::int64_t kRowChunk = 512;

std::int64_t block_count(std::int64_t out) {
  return (out + kPackedPanelRows - 1) / kPackedPanelRows;
}

void require_packable(const at::Tensor& weight, const char* what) {
  if (!packable_weight(weight))
    throw std::invalid_argument(std::string(what) +
                                ": the weight is not a contiguous, non-empty 2-D float32 CPU "
                                "tensor, or this CPU lacks AVX-512F (see packable_weight)");
}

// Rewrites every block of `weight` with `move(block, scratch, width, in)`, which reads the
// block's old contents from `scratch` (a copy) and writes the new ones into `block`.
template <class Move>
void rewrite_blocks(const at::Tensor& weight, Move move) {
  const std::int64_t out = weight.size(0), in = weight.size(1);
  float* base = weight.data_ptr<float>();
  at::parallel_for(0, block_count(out), 1, [&](std::int64_t first, std::int64_t last) {
    std::vector<float> scratch(static_cast<std::size_t>(kPackedPanelRows * in));
    for (std::int64_t b = first; b < last; ++b) {
      float* block = base + b * kPackedPanelRows * in;
      const std::int64_t width = block_width(out, b);
      std::memcpy(scratch.data(), block, static_cast<std::size_t>(width * in) * sizeof(float));
      move(block, scratch.data(), width, in);
    }
  });
}

}  // namespace

bool packed_linear_supported() {
  return small_batch_linear_isa() == SmallBatchIsa::kAvx512;
}

bool packable_weight(const at::Tensor& weight) {
  return weight.defined() && weight.dim() == 2 && weight.device().is_cpu() &&
         weight.scalar_type() == at::kFloat && weight.layout() == at::kStrided &&
         weight.is_contiguous() && weight.numel() > 0 && packed_linear_supported();
}

void pack_weight(const at::Tensor& weight) {
  require_packable(weight, "pack_weight");
  rewrite_blocks(weight, [](float* block, const float* rows, std::int64_t width, std::int64_t in) {
    for (std::int64_t j = 0; j < width; ++j)
      for (std::int64_t k = 0; k < in; ++k) block[k * width + j] = rows[j * in + k];
  });
}

void unpack_weight(const at::Tensor& weight) {
  require_packable(weight, "unpack_weight");
  rewrite_blocks(weight, [](float* block, const float* cols, std::int64_t width, std::int64_t in) {
    for (std::int64_t j = 0; j < width; ++j)
      for (std::int64_t k = 0; k < in; ++k) block[j * in + k] = cols[k * width + j];
  });
}

at::Tensor packed_linear(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& bias) {
  require_packable(packed, "packed_linear");
  const std::int64_t out = packed.size(0), in = packed.size(1);
  if (!x.defined() || x.dim() < 1 || !x.device().is_cpu() || x.scalar_type() != at::kFloat ||
      x.size(-1) != in)
    throw std::invalid_argument("packed_linear: x must be float32 on the CPU with " +
                                std::to_string(in) + " features in its last dimension");
  if (bias.defined() && (!bias.device().is_cpu() || bias.scalar_type() != at::kFloat ||
                         bias.dim() != 1 || bias.size(0) != out || bias.stride(0) != 1))
    throw std::invalid_argument("packed_linear: bias must be a contiguous float32 [" +
                                std::to_string(out) + "]");
  auto x2 = x.reshape({-1, in});
  if (x2.stride(1) != 1 || x2.stride(0) < in) x2 = x2.contiguous();
  const std::int64_t rows = x2.size(0);
  auto y = at::empty({rows, out}, x.options());
  if (rows > 0) {
    const float* xp = x2.data_ptr<float>();
    const float* wp = packed.data_ptr<float>();
    const float* bp = bias.defined() ? bias.data_ptr<float>() : nullptr;
    float* yp = y.data_ptr<float>();
    const std::int64_t ldx = x2.stride(0);
    // Each block passes over all rows of a chunk; chunks bound the rows re-read per block (a
    // long prompt's rows would otherwise stream from memory once per block).
    for (std::int64_t r0 = 0; r0 < rows; r0 += kRowChunk) {
      const std::int64_t n = std::min(kRowChunk, rows - r0);
      // Threads take blocks from a shared counter rather than a fixed half each: a worker that
      // wakes late from the serial code between products would otherwise hold everyone at the
      // join (2.6-6 ms of a 55-65 ms SmolLM2 decode step, alternating runs). Which thread
      // computes a block does not change its bits.
      const std::int64_t blocks = block_count(out);
      const auto run_block = [&](std::int64_t b) {
        const std::int64_t f = b * kPackedPanelRows;
        detail::packed_block_avx512({xp + r0 * ldx, ldx, n, wp + f * in, block_width(out, b), in,
                                     bp != nullptr ? bp + f : nullptr, yp + r0 * out + f, out});
      };
      std::atomic<std::int64_t> next{0};
      const auto take = [&next] { return next.fetch_add(1, std::memory_order_relaxed); };
      at::parallel_for(0, std::min<std::int64_t>(blocks, at::get_num_threads()), 1,
                       [&](std::int64_t, std::int64_t) {
                         for (std::int64_t b = take(); b < blocks; b = take()) run_block(b);
                       });
    }
  }
  auto sizes = x.sizes().vec();
  sizes.back() = out;
  return y.view(sizes);
}

at::Tensor packed_weight_rows(const at::Tensor& packed, const at::Tensor& ids) {
  require_packable(packed, "packed_weight_rows");
  const std::int64_t out = packed.size(0), in = packed.size(1);
  if (!ids.defined() || ids.scalar_type() != at::kLong)
    throw std::invalid_argument("packed_weight_rows: ids must be int64");
  const auto flat = ids.reshape({-1}).to(at::kCPU).contiguous();
  const std::int64_t n = flat.numel();
  const std::int64_t* id = flat.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < n; ++i)
    if (id[i] < 0 || id[i] >= out)
      throw std::invalid_argument("packed_weight_rows: id " + std::to_string(id[i]) +
                                  " outside [0, " + std::to_string(out) + ")");
  auto rows = at::empty({n, in}, packed.options());
  const float* wp = packed.data_ptr<float>();
  float* rp = rows.data_ptr<float>();
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t b = id[i] / kPackedPanelRows, j = id[i] % kPackedPanelRows;
    const std::int64_t width = block_width(out, b);
    const float* src = wp + b * kPackedPanelRows * in + j;
    float* dst = rp + i * in;
    for (std::int64_t k = 0; k < in; ++k) dst[k] = src[k * width];
  }
  auto sizes = ids.sizes().vec();
  sizes.push_back(in);
  return rows.view(sizes);
}

}  // namespace mr::torch_backend
