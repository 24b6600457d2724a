// Internal to mr_torch_model's AVX2 kernels (small_batch_linear.cpp, decode_kernels.cpp).
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

}  // namespace mr::torch_backend::detail
