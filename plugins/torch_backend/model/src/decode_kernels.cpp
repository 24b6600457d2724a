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
                       for (std::int64_t i = 0; i < n; ++i) dst[i] = wp[i] * (row[i] * rstd);
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
            // x cos + rotate_half(x sin), the products apart as apply_rope.
            for (std::int64_t i = 0; i < half; ++i) {
              const float a = src[i] * c[i], rot = src[i + half] * sn[i + half];
              dst[i] = a + -rot;
            }
            for (std::int64_t i = half; i < d; ++i) {
              const float a = src[i] * c[i], rot = src[i - half] * sn[i - half];
              dst[i] = a + rot;
            }
          }
        }
      });
  return out;
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
  auto out = torch::zeros({b, t, heads * d}, q.options());
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
        attend(g, scores.data());
      }
    }
  });
  return out;
}

}  // namespace mr::torch_backend::detail
