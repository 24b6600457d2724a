// Internal to mr_torch_model: the per-instruction-set kernels behind small_batch_linear()
// (linear_kernel_avx2.cpp, linear_kernel_avx512.cpp), driven by small_batch_linear.cpp, and
// packed_linear()'s (linear_kernel_packed_avx512.cpp), driven by packed_linear.cpp.
#pragma once

#include <cstdint>

namespace mr::torch_backend::detail {

// y = x W^T (+ bias) over row-major operands, `in` features.
struct LinearOperands {
  const float* x;
  std::int64_t ldx;
  const float* w;
  std::int64_t ldw;
  const float* bias;  // nullptr without a bias.
  float* y;
  std::int64_t ldy;
  std::int64_t in;
};

// One instruction set's kernel. chunk() computes rows [0, rows) of y against W rows
// [col_begin, col_end) (at most chunk_cols of them) and prefetches the `next_bytes` bytes at
// `next` (the W rows the thread computes next) while it does. Every output is one fixed-order
// sum over the input features whatever the tile it falls in, so a row's result does not depend
// on the number of rows or on how the output features are split between threads.
struct LinearKernel {
  const char* name;
  std::int64_t chunk_cols;
  void (*chunk)(const LinearOperands& o,
                std::int64_t rows,
                std::int64_t col_begin,
                std::int64_t col_end,
                const char* next,
                std::int64_t next_bytes);
};

// Calls Tile::run<R, C>(args...) for the runtime tile size rows x cols (1 <= rows <= MaxRows,
// 1 <= cols <= MaxCols): the kernels' tiles are compile-time sizes, so their accumulators stay
// in registers, and a chunk's edge tiles take the smaller instantiations.
template <class Tile, int MaxRows, int MaxCols, class... Args>
void run_tile(int rows, int cols, Args&&... args) {
  if (rows == MaxRows) {
    if (cols == MaxCols) return Tile::template run<MaxRows, MaxCols>(args...);
    if constexpr (MaxCols > 1) return run_tile<Tile, MaxRows, MaxCols - 1>(rows, cols, args...);
  } else if constexpr (MaxRows > 1) {
    return run_tile<Tile, MaxRows - 1, MaxCols>(rows, cols, args...);
  }
}

extern const LinearKernel kAvx2LinearKernel;
extern const LinearKernel kAvx512LinearKernel;

// packed_linear()'s operands for one packed block of W: `block` [in, width] (1 <= width <= 48)
// holds output features [f, f + width) of W transposed; `bias` and `y` point at feature f.
struct PackedBlockOperands {
  const float* x;
  std::int64_t ldx;
  std::int64_t rows;
  const float* block;
  std::int64_t width;
  std::int64_t in;
  const float* bias;  // nullptr without a bias.
  float* y;
  std::int64_t ldy;
};

// y[r, j] = (sum over k in order of fma x[r, k] block[k, j]) (+ bias[j]) for every row r < rows
// and j < width (linear_kernel_packed_avx512.cpp).
void packed_block_avx512(const PackedBlockOperands& o);

}  // namespace mr::torch_backend::detail
