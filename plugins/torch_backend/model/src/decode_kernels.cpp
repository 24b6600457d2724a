// The inference kernels of decoder_layers.hpp: RMSNorm and RoPE as one pass each, and
// grouped-query attention of a few new positions over the KV cache as one loop per (row, kv
// head). At a decode step each op's tensors are tiny, so the cost is libtorch's per-op overhead:
// RMSNorm is 6 ops, RoPE 6, and the attention's per-head products [rep, head_dim] x
// [head_dim, S] ran as one BLAS call per matrix (B x kv of them, twice per layer), which cost
// more than the attention's arithmetic. Built with -O3 and OpenMP like small_batch_linear.cpp.
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "avx2_sum.hpp"
#include "decoder_layers.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::torch_backend::detail {

namespace {

__attribute__((target("avx2,fma"))) inline float dot(const float* a,
                                                     const float* b,
                                                     std::int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  float out = sum_lanes(acc);
  for (; i < n; ++i) out += a[i] * b[i];
  return out;
}

// out[0, n) += p * v[0, n).
__attribute__((target("avx2,fma"))) inline void add_scaled(float* out,
                                                           const float* v,
                                                           float p,
                                                           std::int64_t n) {
  const __m256 pv = _mm256_set1_ps(p);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i,
                     _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + i), _mm256_loadu_ps(out + i)));
  for (; i < n; ++i) out[i] += p * v[i];
}

// Elementwise passes over fewer elements run on one thread: at a decode step (32 rows x 576) a
// parallel region's fork and join cost more than the pass.
constexpr std::int64_t kSerialElements = 1 << 16;

// The elementwise loops below are vectorized for AVX2 without FMA, so every product and sum is
// rounded on its own exactly as the module ops round them (an FMA would round once).
// dst = w * (row * rstd), RMSNorm's scaling.
__attribute__((target("avx2"))) void scale_row(float* __restrict__ dst,
                                               const float* __restrict__ row,
                                               const float* __restrict__ w,
                                               float rstd,
                                               std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = w[i] * (row[i] * rstd);
}

// One head's x cos + rotate_half(x sin), the products apart as apply_rope.
__attribute__((target("avx2"))) void rope_head(const float* __restrict__ src,
                                               const float* __restrict__ c,
                                               const float* __restrict__ sn,
                                               float* __restrict__ dst,
                                               std::int64_t half) {
  for (std::int64_t i = 0; i < half; ++i) dst[i] = src[i] * c[i] + -(src[i + half] * sn[i + half]);
  for (std::int64_t i = 0; i < half; ++i)
    dst[half + i] = src[half + i] * c[half + i] + src[i] * sn[i];
}

// One query position of one kv head's group: its rep query rows against S keys and values.
struct AttentionGroup {
  const float* q;  // rep rows, `q_stride` apart.
  std::int64_t q_stride;
  const float* k;  // S rows, `k_stride` apart.
  std::int64_t k_stride;
  const float* v;
  std::int64_t v_stride;
  const float* mask;  // S additive mask values, `mask_stride` apart.
  std::int64_t mask_stride;
  float* out;  // rep rows of d, consecutive (zeroed).
  std::int64_t rep, s, d;
  float scale;
};

// Each key and value row is loaded once for all rep query rows; every (query row, key) score and
// every output's sum over the keys is the same arithmetic in the same order as one row at a time.
// `scores`: room for rep * S + rep floats.
__attribute__((target("avx2,fma"))) void attend(const AttentionGroup& g, float* scores) {
  for (std::int64_t j = 0; j < g.s; ++j) {
    const float* key = g.k + j * g.k_stride;
    const float m = g.mask[j * g.mask_stride];
    for (std::int64_t r = 0; r < g.rep; ++r)
      scores[r * g.s + j] = dot(g.q + r * g.q_stride, key, g.d) * g.scale + m;
  }
  for (std::int64_t r = 0; r < g.rep; ++r) {
    float* row = scores + r * g.s;
    float top = -std::numeric_limits<float>::infinity();
    for (std::int64_t j = 0; j < g.s; ++j) top = std::max(top, row[j]);
    float total = 0.0f;
    for (std::int64_t j = 0; j < g.s; ++j) total += row[j] = std::exp(row[j] - top);
    scores[g.rep * g.s + r] = 1.0f / total;  // After all the scores: see decode_attention.
  }
  for (std::int64_t j = 0; j < g.s; ++j) {
    const float* value = g.v + j * g.v_stride;
    for (std::int64_t r = 0; r < g.rep; ++r)
      add_scaled(g.out + r * g.d, value, scores[r * g.s + j], g.d);
  }
  for (std::int64_t r = 0; r < g.rep; ++r) {
    const float inv = scores[g.rep * g.s + r];
    for (std::int64_t i = 0; i < g.d; ++i) g.out[r * g.d + i] *= inv;
  }
}

// e^x in each lane (Cephes' expf: x = n ln 2 + r, a degree-6 polynomial in r, times 2^n by
// scalef, which rounds once and saturates), within 2 ulp of std::exp. Above ln(FLT_MAX) it is
// +inf and below -104 (under half the smallest float) 0, exactly as std::exp gives: masked keys
// weigh nothing, and silu(g) of a large negative g is -0 as torch's.
__attribute__((target("avx512f,avx2,fma"))) inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(89.0f)), _mm512_set1_ps(-104.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(y, n);
}

// row[j] = e^(row[j] - max) over S scores; returns 1 / their sum. The maximum and the
// exponentials are computed 16 at a time (each lane on its own), the sum in key order as
// attend() does, so padding keys (exact zeros) change nothing wherever they sit.
__attribute__((target("avx512f,avx2,fma"))) inline float softmax_numerators16(float* row,
                                                                              std::int64_t s) {
  __m512 top = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  std::int64_t j = 0;
  for (; j + 16 <= s; j += 16) top = _mm512_max_ps(top, _mm512_loadu_ps(row + j));
  float m = _mm512_reduce_max_ps(top);
  for (std::int64_t t = j; t < s; ++t) m = std::max(m, row[t]);
  const __m512 mv = _mm512_set1_ps(m);
  for (j = 0; j + 16 <= s; j += 16)
    _mm512_storeu_ps(row + j, exp16(_mm512_sub_ps(_mm512_loadu_ps(row + j), mv)));
  if (j < s) {
    const auto mask = static_cast<__mmask16>((1u << (s - j)) - 1u);
    _mm512_mask_storeu_ps(row + j, mask,
                          exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, row + j), mv)));
  }
  float total = 0.0f;
  for (j = 0; j < s; ++j) total += row[j];
  return 1.0f / total;
}

// attend() for head_dim D (a multiple of 16) with AVX-512, R query rows of the group at a time:
// their queries, then their outputs, are held in registers (R * D / 16 of them), so each key
// and value row is loaded once per R rows and the outputs are stored once. Row r's scores and
// sums are the same arithmetic whatever R and S are: a key's score is one 16-lane product sum
// reduced in a fixed tree, and the outputs sum the values in key order.
template <int D, int R>
__attribute__((target("avx512f,avx2,fma"))) void attend_rows512(const AttentionGroup& g,
                                                                std::int64_t r0,
                                                                float* scores) {
  constexpr int kVectors = D / 16;
  __m512 reg[R][kVectors];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < kVectors; ++i)
      reg[r][i] = _mm512_loadu_ps(g.q + (r0 + r) * g.q_stride + 16 * i);
  for (std::int64_t j = 0; j < g.s; ++j) {
    const float* key = g.k + j * g.k_stride;
    __m512 kv[kVectors];
    for (int i = 0; i < kVectors; ++i) kv[i] = _mm512_loadu_ps(key + 16 * i);
    const float m = g.mask[j * g.mask_stride];
    for (int r = 0; r < R; ++r) {
      __m512 acc = _mm512_mul_ps(reg[r][0], kv[0]);
      for (int i = 1; i < kVectors; ++i) acc = _mm512_fmadd_ps(reg[r][i], kv[i], acc);
      scores[(r0 + r) * g.s + j] = sum_lanes16(acc) * g.scale + m;
    }
  }
  float inv[R];
  for (int r = 0; r < R; ++r) inv[r] = softmax_numerators16(scores + (r0 + r) * g.s, g.s);
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < kVectors; ++i) reg[r][i] = _mm512_setzero_ps();
  for (std::int64_t j = 0; j < g.s; ++j) {
    const float* value = g.v + j * g.v_stride;
    __m512 vv[kVectors];
    for (int i = 0; i < kVectors; ++i) vv[i] = _mm512_loadu_ps(value + 16 * i);
    for (int r = 0; r < R; ++r) {
      const __m512 p = _mm512_set1_ps(scores[(r0 + r) * g.s + j]);
      for (int i = 0; i < kVectors; ++i) reg[r][i] = _mm512_fmadd_ps(p, vv[i], reg[r][i]);
    }
  }
  for (int r = 0; r < R; ++r) {
    const __m512 scale = _mm512_set1_ps(inv[r]);
    for (int i = 0; i < kVectors; ++i)
      _mm512_storeu_ps(g.out + (r0 + r) * g.d + 16 * i, _mm512_mul_ps(reg[r][i], scale));
  }
}

// Up to R rows at a time (R * D / 16 <= 24 registers), fewer for the group's last rows.
template <int D, int R>
void attend_rows512_upto(const AttentionGroup& g, std::int64_t r0, int rows, float* scores) {
  if (rows >= R) return attend_rows512<D, R>(g, r0, scores);
  if constexpr (R > 1) attend_rows512_upto<D, R - 1>(g, r0, rows, scores);
}

template <int D>
void attend512(const AttentionGroup& g, float* scores) {
  constexpr int kMaxRows = 24 / (D / 16);
  for (std::int64_t r0 = 0; r0 < g.rep; r0 += kMaxRows)
    attend_rows512_upto<D, kMaxRows>(
        g, r0, static_cast<int>(std::min<std::int64_t>(kMaxRows, g.rep - r0)), scores);
}

// The attention kernel for head_dim d: AVX-512 for d = 64 or 128 where the CPU has it (the same
// choice for every call in the process), else attend().
using AttendFn = void (*)(const AttentionGroup&, float*);
AttendFn attend_for(std::int64_t d) {
  if (cpu_runs(SmallBatchIsa::kAvx512) && d == 64) return &attend512<64>;
  if (cpu_runs(SmallBatchIsa::kAvx512) && d == 128) return &attend512<128>;
  return &attend;
}

bool cpu_float(const torch::Tensor& t) {
  return t.defined() && t.device().is_cpu() && t.scalar_type() == torch::kFloat32 &&
         t.layout() == torch::kStrided;
}

bool needs_grad(const torch::Tensor& t) {
  return torch::GradMode::is_enabled() && t.defined() && t.requires_grad();
}

}  // namespace

bool inference_kernels_apply(const torch::Tensor& x) {
  return cpu_float(x) && !needs_grad(x) && cpu_has_avx2_fma();
}

torch::Tensor inference_rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  MR_CHECK(inference_kernels_apply(x) && cpu_float(weight) && !needs_grad(weight) &&
               weight.dim() == 1 && weight.is_contiguous() && x.size(-1) == weight.size(0),
           "inference_rms_norm: unsupported operands x ", x.sizes(), ", weight ", weight.sizes());
  const std::int64_t n = x.size(-1);
  auto in = x.contiguous();
  auto out = torch::empty_like(in);
  const float* xp = in.data_ptr<float>();
  const float* wp = weight.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const std::int64_t rows = n == 0 ? 0 : in.numel() / n;
  const float epsilon = static_cast<float>(eps);
  at::parallel_for(0, rows,
                   std::max<std::int64_t>(1, kSerialElements / std::max<std::int64_t>(1, n)),
                   [&](std::int64_t first, std::int64_t last) {
                     for (std::int64_t r = first; r < last; ++r) {
                       const float* row = xp + r * n;
                       const float mean = dot(row, row, n) / static_cast<float>(n);
                       const float rstd = 1.0f / std::sqrt(mean + epsilon);
                       float* dst = op + r * n;
                       scale_row(dst, row, wp, rstd, n);
                     }
                   });
  return out;
}

torch::Tensor inference_rope(const torch::Tensor& x,
                             const torch::Tensor& cos,
                             const torch::Tensor& sin) {
  MR_CHECK(inference_kernels_apply(x) && x.dim() == 4 && x.stride(3) == 1 && cpu_float(cos) &&
               cpu_float(sin) && cos.is_contiguous() && sin.is_contiguous() &&
               cos.sizes() == sin.sizes() && cos.dim() == 4 && cos.size(0) == x.size(0) &&
               cos.size(1) == x.size(1) && cos.size(2) == 1 && cos.size(3) == x.size(3) &&
               x.size(3) % 2 == 0,
           "inference_rope: unsupported operands x ", x.sizes(), ", cos ", cos.sizes());
  const std::int64_t b = x.size(0), t = x.size(1), heads = x.size(2), d = x.size(3), half = d / 2;
  auto out = torch::empty({b, t, heads, d}, x.options());
  const float* xp = x.data_ptr<float>();
  const float* cp = cos.data_ptr<float>();
  const float* sp = sin.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const auto xs = x.strides();
  at::parallel_for(
      0, b * t, std::max<std::int64_t>(1, kSerialElements / std::max<std::int64_t>(1, heads * d)),
      [&](std::int64_t first, std::int64_t last) {
        for (std::int64_t bt = first; bt < last; ++bt) {
          const std::int64_t row = bt / t, pos = bt % t;
          const float* c = cp + bt * d;
          const float* sn = sp + bt * d;
          for (std::int64_t h = 0; h < heads; ++h) {
            const float* src = xp + row * xs[0] + pos * xs[1] + h * xs[2];
            float* dst = op + (bt * heads + h) * d;
            rope_head(src, c, sn, dst, half);
          }
        }
      });
  return out;
}

namespace {

// Rows of contiguous elements at one stride: [rows, n] with row r at data + r * stride.
bool uniform_rows(const torch::Tensor& t) {
  if (t.dim() < 1 || t.stride(-1) != 1) return false;
  for (std::int64_t d = 0; d + 2 < t.dim(); ++d)
    if (t.size(d) > 1 && t.stride(d) != t.stride(d + 1) * t.size(d + 1)) return false;
  return true;
}

// silu(g) u for 16 lanes.
__attribute__((target("avx512f,avx2,fma"))) inline __m512 swiglu16(__m512 g, __m512 u) {
  const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
  return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

__attribute__((target("avx512f,avx2,fma"))) void swiglu_row(float* g,
                                                            const float* u,
                                                            std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(g + i, swiglu16(_mm512_loadu_ps(g + i), _mm512_loadu_ps(u + i)));
  if (i < n) {
    const auto mask = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(
        g + i, mask,
        swiglu16(_mm512_maskz_loadu_ps(mask, g + i), _mm512_maskz_loadu_ps(mask, u + i)));
  }
}

}  // namespace

bool inference_swiglu_applies(const torch::Tensor& gate, const torch::Tensor& up) {
  return cpu_float(gate) && cpu_float(up) && !needs_grad(gate) && !needs_grad(up) &&
         gate.sizes() == up.sizes() && gate.numel() > 0 && uniform_rows(gate) && uniform_rows(up) &&
         cpu_runs(SmallBatchIsa::kAvx512);
}

void inference_swiglu_(const torch::Tensor& gate, const torch::Tensor& up) {
  MR_CHECK(inference_swiglu_applies(gate, up), "inference_swiglu_: unsupported operands gate ",
           gate.sizes(), ", up ", up.sizes());
  const std::int64_t n = gate.size(-1), rows = gate.numel() / n;
  const std::int64_t gs = gate.dim() > 1 ? gate.stride(-2) : n;
  const std::int64_t us = up.dim() > 1 ? up.stride(-2) : n;
  float* gp = gate.data_ptr<float>();
  const float* up_data = up.data_ptr<float>();
  at::parallel_for(0, rows, std::max<std::int64_t>(1, kSerialElements / n),
                   [&](std::int64_t first, std::int64_t last) {
                     for (std::int64_t r = first; r < last; ++r)
                       swiglu_row(gp + r * gs, up_data + r * us, n);
                   });
}

bool decode_attention_applies(const torch::Tensor& q,
                              const torch::Tensor& k,
                              const torch::Tensor& v,
                              const torch::Tensor& bias) {
  const auto ok = [](const torch::Tensor& t, std::int64_t dim) {
    return cpu_float(t) && t.dim() == dim && t.stride(-1) == 1;
  };
  if (!ok(q, 4) || !ok(k, 4) || !ok(v, 4) || !ok(bias, 5)) return false;
  if (needs_grad(q) || needs_grad(k) || needs_grad(v)) return false;
  const std::int64_t b = q.size(0), t = q.size(1), heads = q.size(2), d = q.size(3);
  const std::int64_t kv = k.size(1), s = k.size(2);
  return t <= kDecodeAttentionMaxPositions && k.size(0) == b && v.sizes() == k.sizes() &&
         k.size(3) == d && kv > 0 && heads % kv == 0 && s > 0 && bias.size(0) == b &&
         bias.size(3) == t && bias.size(4) == s && cpu_has_avx2_fma();
}

torch::Tensor decode_attention(const torch::Tensor& q,
                               const torch::Tensor& k,
                               const torch::Tensor& v,
                               const torch::Tensor& bias,
                               double scale) {
  MR_CHECK(decode_attention_applies(q, k, v, bias), "decode_attention: unsupported operands q ",
           q.sizes(), ", k ", k.sizes(), ", v ", v.sizes(), ", bias ", bias.sizes());
  const std::int64_t b = q.size(0), t = q.size(1), heads = q.size(2), d = q.size(3);
  const std::int64_t kv = k.size(1), s = k.size(2), rep = heads / kv;
  const AttendFn attend_group = attend_for(d);
  // attend() adds into its outputs; the AVX-512 loops store every output once.
  auto out = attend_group == &attend ? torch::zeros({b, t, heads * d}, q.options())
                                     : torch::empty({b, t, heads * d}, q.options());
  const float* qp = q.data_ptr<float>();
  const float* kp = k.data_ptr<float>();
  const float* vp = v.data_ptr<float>();
  const float* bp = bias.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const float q_scale = static_cast<float>(scale);
  const auto qs = q.strides(), ks = k.strides(), vs = v.strides(), bs = bias.strides();
  at::parallel_for(0, b * kv, 1, [&](std::int64_t first, std::int64_t last) {
    // rep rows of S scores, then each row's 1 / sum.
    std::vector<float> scores(static_cast<std::size_t>(rep * s + rep));
    for (std::int64_t task = first; task < last; ++task) {
      const std::int64_t row = task / kv, group = task % kv;
      for (std::int64_t pos = 0; pos < t; ++pos) {
        const AttentionGroup g{qp + row * qs[0] + pos * qs[1] + group * rep * qs[2],
                               qs[2],
                               kp + row * ks[0] + group * ks[1],
                               ks[2],
                               vp + row * vs[0] + group * vs[1],
                               vs[2],
                               bp + row * bs[0] + pos * bs[3],
                               bs[4],
                               op + (row * t + pos) * heads * d + group * rep * d,
                               rep,
                               s,
                               d,
                               q_scale};
        attend_group(g, scores.data());
      }
    }
  });
  return out;
}

}  // namespace mr::torch_backend::detail
