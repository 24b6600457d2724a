/// @file linear_kernel_packed_avx512.cpp
/// packed_linear()'s AVX-512 kernel: one packed block of W [in, 48] against the rows of x. A
/// tile is 8 rows by the block's 3 vectors of output features (24 accumulators); each input
/// feature loads the block's next 48 weights in order and broadcasts 8 inputs for 24 FMAs, and
/// the accumulators are the outputs themselves (no lane sums), stored once.
#include <immintrin.h>

#include "linear_kernels.hpp"

namespace mr::torch_backend::detail {

namespace {

constexpr int kTileRows = 8;

// Rows [row, row + R) of y for the block. Full: the block is 48 wide (unmasked loads).
template <int R, bool Full>
__attribute__((target("avx512f"))) void tile(const PackedBlockOperands& o,
                                             std::int64_t row,
                                             const __mmask16 (&mask)[3]) {
  const float* x = o.x + row * o.ldx;
  const std::int64_t width = Full ? 48 : o.width;
  __m512 acc[R][3];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < 3; ++v) acc[r][v] = _mm512_setzero_ps();
  const float* w = o.block;
  for (std::int64_t k = 0; k < o.in; ++k, w += width) {
    __m512 wv[3];
    for (int v = 0; v < 3; ++v)
      wv[v] = Full ? _mm512_loadu_ps(w + 16 * v) : _mm512_maskz_loadu_ps(mask[v], w + 16 * v);
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_set1_ps(x[r * o.ldx + k]);
      for (int v = 0; v < 3; ++v) acc[r][v] = _mm512_fmadd_ps(xv, wv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < R; ++r) {
    float* y = o.y + (row + r) * o.ldy;
    for (int v = 0; v < 3; ++v) {
      __m512 out = acc[r][v];
      if (o.bias != nullptr)
        out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(mask[v], o.bias + 16 * v));
      if (Full)
        _mm512_storeu_ps(y + 16 * v, out);
      else
        _mm512_mask_storeu_ps(y + 16 * v, mask[v], out);
    }
  }
}

// The last `rows` (< R) rows of a block from `row` on, as one tile of that many rows.
template <int R, bool Full>
__attribute__((target("avx512f"))) void tail_tile(const PackedBlockOperands& o,
                                                  std::int64_t row,
                                                  std::int64_t rows,
                                                  const __mmask16 (&mask)[3]) {
  if constexpr (R > 1) {
    if (rows == R - 1) return tile<R - 1, Full>(o, row, mask);
    return tail_tile<R - 1, Full>(o, row, rows, mask);
  }
}

template <bool Full>
__attribute__((target("avx512f"))) void rows_of_block(const PackedBlockOperands& o,
                                                      const __mmask16 (&mask)[3]) {
  std::int64_t row = 0;
  for (; row + kTileRows <= o.rows; row += kTileRows) tile<kTileRows, Full>(o, row, mask);
  tail_tile<kTileRows, Full>(o, row, o.rows - row, mask);
}

// The lanes of vector v (features 16 v .. 16 v + 15) that lie inside a block `width` wide.
__mmask16 lanes(std::int64_t width, int v) {
  const std::int64_t n = width - 16 * v;
  if (n <= 0) return 0;
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
}

}  // namespace

void packed_block_avx512(const PackedBlockOperands& o) {
  const __mmask16 mask[3] = {lanes(o.width, 0), lanes(o.width, 1), lanes(o.width, 2)};
  if (o.width == 48)
    rows_of_block<true>(o, mask);
  else
    rows_of_block<false>(o, mask);
}

}  // namespace mr::torch_backend::detail
