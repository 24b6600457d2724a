// Internal to mr_torch_model's vector kernels (linear_kernel_avx2.cpp, linear_kernel_avx512.cpp,
// decode_kernels.cpp): the lane reductions they share.
#pragma once

#include <immintrin.h>

namespace mr::torch_backend::detail {

// The 8 lanes of v added in one fixed tree ((0+4, 1+5, 2+6, 3+7), then pairs): every kernel
// that reduces a vector accumulator rounds the same way.
__attribute__((target("avx2,fma"))) inline float sum_lanes(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The 16 lanes of v: the two halves added lane by lane, then sum_lanes' tree. A 16-way reduction
// of many accumulators at once must add in this same tree to give the same bits.
__attribute__((target("avx512f,avx2,fma"))) inline float sum_lanes16(__m512 v) {
  const __m256 lo = _mm512_castps512_ps256(v);
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  return sum_lanes(_mm256_add_ps(lo, hi));
}

}  // namespace mr::torch_backend::detail
