// Logistic regression, bootstrap, quantiles and Spearman (statistics.hpp).
#include "metareward/evaluators/statistics.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace mr::plugins::evaluators {

namespace {

constexpr double kMaxCoefficient = 40.0;

/// Solves A·x = b (n×n, row-major) by Gaussian elimination with partial pivoting; false when A is
/// singular to working precision.
bool solve(std::vector<double> a, std::vector<double> b, std::size_t n, std::vector<double>& x) {
  for (std::size_t col = 0; col < n; ++col) {
    std::size_t pivot = col;
    for (std::size_t r = col + 1; r < n; ++r)
      if (std::fabs(a[r * n + col]) > std::fabs(a[pivot * n + col])) pivot = r;
    if (std::fabs(a[pivot * n + col]) < 1e-300) return false;
    if (pivot != col) {
      for (std::size_t c = 0; c < n; ++c) std::swap(a[col * n + c], a[pivot * n + c]);
      std::swap(b[col], b[pivot]);
    }
    for (std::size_t r = col + 1; r < n; ++r) {
      const double f = a[r * n + col] / a[col * n + col];
      for (std::size_t c = col; c < n; ++c) a[r * n + c] -= f * a[col * n + c];
      b[r] -= f * b[col];
    }
  }
  x.assign(n, 0.0);
  for (std::size_t i = n; i-- > 0;) {
    double s = b[i];
    for (std::size_t c = i + 1; c < n; ++c) s -= a[i * n + c] * x[c];
    x[i] = s / a[i * n + i];
  }
  return true;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

/// log σ(z) and log(1 − σ(z)) without overflow.
double log_sigmoid(double z) {
  return z >= 0 ? -std::log1p(std::exp(-z)) : z - std::log1p(std::exp(z));
}

struct Problem {
  const std::vector<LogisticRow>& rows;
  std::size_t k;
  double total_weight;
  Penalty penalty;
  double lambda;
  std::vector<bool> pen;

  double objective(const std::vector<double>& beta) const {
    double ll = 0;
    for (const auto& r : rows) {
      if (r.weight == 0) continue;
      const double z = dot(r.x, beta);
      ll += r.weight * (r.y > 0.5 ? log_sigmoid(z) : log_sigmoid(-z));
    }
    ll /= total_weight;
    double reg = 0;
    for (std::size_t j = 0; j < k; ++j) {
      if (!pen[j]) continue;
      reg += penalty == Penalty::L2 ? 0.5 * beta[j] * beta[j]
                                    : (penalty == Penalty::L1 ? std::fabs(beta[j]) : 0.0);
    }
    return ll - lambda * reg;
  }

  /// Gradient and (negated) Hessian of the data term, per unit weight.
  void derivatives(const std::vector<double>& beta,
                   std::vector<double>& grad,
                   std::vector<double>& hess) const {
    grad.assign(k, 0.0);
    hess.assign(k * k, 0.0);
    for (const auto& r : rows) {
      if (r.weight == 0) continue;
      const double p = sigmoid(dot(r.x, beta));
      const double w = r.weight / total_weight;
      const double g = w * (r.y - p), h = w * p * (1 - p);
      for (std::size_t i = 0; i < k; ++i) {
        grad[i] += g * r.x[i];
        for (std::size_t j = 0; j < k; ++j) hess[i * k + j] += h * r.x[i] * r.x[j];
      }
    }
  }
};

void clamp(std::vector<double>& beta) {
  for (double& b : beta) b = std::clamp(b, -kMaxCoefficient, kMaxCoefficient);
}

}  // namespace

double sigmoid(double z) {
  return z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z));
}

Penalty parse_penalty(const std::string& name) {
  if (name == "none") return Penalty::None;
  if (name == "l2") return Penalty::L2;
  if (name == "l1") return Penalty::L1;
  throw std::invalid_argument("unknown penalty '" + name + "' (none, l2, l1)");
}

LogisticFit fit_logistic(const std::vector<LogisticRow>& rows,
                         Penalty penalty,
                         double lambda,
                         const std::vector<bool>& penalized) {
  if (rows.empty()) throw std::invalid_argument("logistic regression over no rows");
  const std::size_t k = rows.front().x.size();
  double total = 0;
  for (const auto& r : rows) {
    if (r.x.size() != k) throw std::invalid_argument("logistic rows with different feature counts");
    if (!(r.weight >= 0)) throw std::invalid_argument("negative or NaN row weight");
    total += r.weight;
  }
  if (total <= 0) throw std::invalid_argument("logistic regression over rows of zero weight");
  std::vector<bool> pen = penalized.empty() ? std::vector<bool>(k, true) : penalized;
  pen.resize(k, false);
  if (penalty == Penalty::None || lambda <= 0) penalty = Penalty::None, lambda = 0;
  const Problem problem{rows, k, total, penalty, lambda, pen};

  LogisticFit fit;
  fit.coef.assign(k, 0.0);
  std::vector<double> grad, hess, step;
  double value = problem.objective(fit.coef);
  for (fit.iterations = 1; fit.iterations <= 200; ++fit.iterations) {
    problem.derivatives(fit.coef, grad, hess);
    std::vector<double> candidate = fit.coef;
    if (penalty == Penalty::L1) {
      // Coordinate descent on the quadratic model  g·d − ½ dᵀH d − λ‖β + d‖₁  (in β).
      std::vector<double> beta = fit.coef;
      for (int sweep = 0; sweep < 100; ++sweep) {
        double moved = 0;
        for (std::size_t j = 0; j < k; ++j) {
          const double hjj = hess[j * k + j];
          if (hjj <= 0) continue;
          // Gradient of the model at beta, coordinate j.
          double gj = grad[j];
          for (std::size_t i = 0; i < k; ++i) gj -= hess[j * k + i] * (beta[i] - fit.coef[i]);
          double target = beta[j] + gj / hjj;
          if (pen[j])
            target = std::copysign(std::max(0.0, std::fabs(target) - lambda / hjj), target);
          moved = std::max(moved, std::fabs(target - beta[j]));
          beta[j] = target;
        }
        if (moved < 1e-12) break;
      }
      candidate = beta;
    } else {
      for (std::size_t j = 0; j < k; ++j) {
        if (pen[j]) {
          grad[j] -= lambda * fit.coef[j];
          hess[j * k + j] += lambda;
        }
      }
      if (!solve(hess, grad, k, step)) {
        // Flat direction (e.g. a feature that is zero everywhere): fall back to the gradient.
        step = grad;
      }
      for (std::size_t j = 0; j < k; ++j) candidate[j] += step[j];
    }
    clamp(candidate);
    // Backtracking: halve the step until the objective does not decrease.
    double next = problem.objective(candidate);
    for (int halving = 0; halving < 40 && next < value - 1e-15; ++halving) {
      for (std::size_t j = 0; j < k; ++j) candidate[j] = 0.5 * (candidate[j] + fit.coef[j]);
      next = problem.objective(candidate);
    }
    double change = 0;
    for (std::size_t j = 0; j < k; ++j)
      change = std::max(change, std::fabs(candidate[j] - fit.coef[j]));
    fit.coef = candidate;
    const double gain = next - value;
    value = next;
    if (change < 1e-10 || (gain >= 0 && gain < 1e-15 && change < 1e-6)) {
      fit.converged = true;
      break;
    }
  }
  // Beyond |β| = 30, σ is within 1e-13 of its bound and double precision flattens the Hessian
  // before the clamp: such a fit ran off towards ±∞ (separable data).
  for (double b : fit.coef)
    if (std::fabs(b) >= 30.0) fit.converged = false;
  return fit;
}

double quantile(std::vector<double> values, double q) {
  if (values.empty()) throw std::invalid_argument("quantile of no values");
  std::sort(values.begin(), values.end());
  const double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(values.size() - 1, lo + 1);
  return values[lo] + (pos - static_cast<double>(lo)) * (values[hi] - values[lo]);
}

namespace {

std::vector<double> average_ranks(const std::vector<double>& v) {
  std::vector<std::size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
  std::vector<double> rank(v.size());
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double r = 0.5 * static_cast<double>(i + j) + 1.0;
    for (std::size_t m = i; m <= j; ++m) rank[order[m]] = r;
    i = j + 1;
  }
  return rank;
}

}  // namespace

std::optional<double> spearman(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.size() < 2) return std::nullopt;
  const std::vector<double> ra = average_ranks(a), rb = average_ranks(b);
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n;
  const double mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  if (saa <= 0 || sbb <= 0) return std::nullopt;
  return sab / std::sqrt(saa * sbb);
}

namespace {

/// SplitMix64: fixed, portable sequence (std::uniform_int_distribution is not).
struct SplitMix {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, n) by rejection (no modulo bias).
  std::size_t below(std::size_t n) {
    const std::uint64_t bound = static_cast<std::uint64_t>(n);
    const std::uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    std::uint64_t r;
    do r = next();
    while (r >= limit);
    return static_cast<std::size_t>(r % bound);
  }
};

}  // namespace

BootstrapResult bootstrap(
    std::size_t items,
    int rounds,
    double confidence,
    std::uint64_t seed,
    const std::function<std::optional<double>(const std::vector<std::size_t>&)>& statistic) {
  if (items == 0) throw std::invalid_argument("bootstrap over no items");
  SplitMix rng{seed};
  BootstrapResult out;
  std::vector<std::size_t> sample(items);
  for (int round = 0; round < rounds; ++round) {
    for (auto& s : sample) s = rng.below(items);
    if (auto value = statistic(sample)) out.replicates.push_back(*value);
  }
  if (out.replicates.empty()) return out;
  const double tail = (1.0 - confidence) / 2.0;
  out.low = quantile(out.replicates, tail);
  out.high = quantile(out.replicates, 1.0 - tail);
  out.median = quantile(out.replicates, 0.5);
  out.mean = std::accumulate(out.replicates.begin(), out.replicates.end(), 0.0) /
             static_cast<double>(out.replicates.size());
  return out;
}

}  // namespace mr::plugins::evaluators
