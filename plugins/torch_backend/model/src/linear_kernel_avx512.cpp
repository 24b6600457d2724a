/// @file linear_kernel_avx512.cpp
/// small_batch_linear()'s AVX-512 kernel: dot products over the input dimension, 16 lanes, and
/// twice the AVX2 kernel's registers, so a tile holds 24 accumulators (10 loads per 24 FMAs).
#include <immintrin.h>

#include <algorithm>

#include "avx2_sum.hpp"
#include "linear_kernels.hpp"

namespace mr::torch_backend::detail {

namespace {

// A tile is kRows rows of x by kCols rows of W (24 + 6 + 1 of the 32 vector registers); a
// single row takes kSingleRowCols rows of W per x load. A chunk is kChunk rows of W (110 KB at
// 576 inputs, kept in L2 while every row tile of x passes over it).
constexpr int kRows = 4;
constexpr int kCols = 6;
constexpr int kSingleRowCols = 12;
constexpr std::int64_t kChunk = 8 * kCols;

// Prefetches issued per step over 16 features, spread over the whole chunk so the memory
// system sees a steady stream rather than bursts (bursts stall on the fill buffers).
struct Prefetch {
  const char* at;
  const char* end;
  int per_step;
};

// y[r, c] = sum_k x[r, k] w[c, k] (+ bias[c]) for the R x C tile at x row `row`, w row `col`.
// Lane j sums the features k = j mod 16 in order (a tail of in % 16 features is one masked
// step), then the lanes are added in a fixed tree: the same sum for any tile position.
struct Tile {
  template <int R, int C>
  __attribute__((target("avx512f,avx2,fma"))) static void run(const LinearOperands& o,
                                                              std::int64_t row,
                                                              std::int64_t col,
                                                              Prefetch& pf) {
    const float* x = o.x + row * o.ldx;
    const float* w = o.w + col * o.ldw;
    __m512 acc[R][C];
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
    std::int64_t k = 0;
    for (; k + 16 <= o.in; k += 16) {
      __m512 wv[C];
      for (int c = 0; c < C; ++c) wv[c] = _mm512_loadu_ps(w + c * o.ldw + k);
      for (int p = 0; p < pf.per_step && pf.at < pf.end; ++p, pf.at += 64)
        _mm_prefetch(pf.at, _MM_HINT_T2);
      for (int r = 0; r < R; ++r) {
        const __m512 xv = _mm512_loadu_ps(x + r * o.ldx + k);
        for (int c = 0; c < C; ++c) acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
      }
    }
    if (k < o.in) {
      const auto mask = static_cast<__mmask16>((1u << (o.in - k)) - 1u);
      __m512 wv[C];
      for (int c = 0; c < C; ++c) wv[c] = _mm512_maskz_loadu_ps(mask, w + c * o.ldw + k);
      for (int r = 0; r < R; ++r) {
        const __m512 xv = _mm512_maskz_loadu_ps(mask, x + r * o.ldx + k);
        for (int c = 0; c < C; ++c) acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
      }
    }
    for (int r = 0; r < R; ++r) {
      float* y = o.y + (row + r) * o.ldy + col;
      for (int c = 0; c < C; ++c) {
        const float s = sum_lanes16(acc[r][c]);
        y[c] = o.bias != nullptr ? s + o.bias[col + c] : s;
      }
    }
  }
};

__attribute__((target("avx512f,avx2,fma"))) void chunk(const LinearOperands& o,
                                                       std::int64_t rows,
                                                       std::int64_t col_begin,
                                                       std::int64_t col_end,
                                                       const char* next,
                                                       std::int64_t next_bytes) {
  const int cols_per_tile = rows == 1 ? kSingleRowCols : kCols;
  const std::int64_t tiles =
      ((rows + kRows - 1) / kRows) * ((col_end - col_begin + cols_per_tile - 1) / cols_per_tile);
  const std::int64_t steps = tiles * std::max<std::int64_t>(1, o.in / 16);
  const std::int64_t lines = (next_bytes + 63) / 64;
  Prefetch pf{next, next + lines * 64, static_cast<int>((lines + steps - 1) / steps)};
  for (std::int64_t row = 0; row < rows; row += kRows) {
    const int r = static_cast<int>(std::min<std::int64_t>(kRows, rows - row));
    for (std::int64_t col = col_begin; col < col_end; col += cols_per_tile) {
      const int c = static_cast<int>(std::min<std::int64_t>(cols_per_tile, col_end - col));
      if (rows == 1)
        run_tile<Tile, 1, kSingleRowCols>(r, c, o, row, col, pf);
      else
        run_tile<Tile, kRows, kCols>(r, c, o, row, col, pf);
    }
  }
}

}  // namespace

const LinearKernel kAvx512LinearKernel{"avx512f", kChunk, &chunk};

}  // namespace mr::torch_backend::detail
