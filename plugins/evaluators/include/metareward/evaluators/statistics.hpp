// The statistics behind the evaluators: a weighted, penalised logistic regression (the GLM of
// AlpacaEval's length-controlled win rate and the Bradley-Terry fit of Arena-Hard, which against a
// single baseline is a logistic regression too), the seeded bootstrap, percentiles and Spearman's
// rank correlation. Plain doubles; no dependencies.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace mr::plugins::evaluators {

/// One observation of a logistic regression: outcome `y` (0 or 1) with `weight` (>= 0), so a soft
/// label p becomes two rows (y = 1 with weight p, y = 0 with weight 1 - p).
struct LogisticRow {
  std::vector<double> x;  ///< Features, the same count in every row.
  double y = 0;
  double weight = 1;
};

/// How the coefficients marked penalised are shrunk.
enum class Penalty { None, L2, L1 };

/// "none", "l2", "l1" -> Penalty; throws std::invalid_argument otherwise.
Penalty parse_penalty(const std::string& name);

/// Result of fit_logistic().
struct LogisticFit {
  std::vector<double> coef;
  int iterations = 0;
  bool converged = false;
};

/// Maximises (1/W)·Σ w·log P(y | x) − λ·R(β) over the coefficients β, with W the total weight,
/// R = ½‖β_pen‖² (L2) or ‖β_pen‖₁ (L1) over the coefficients `penalized` marks (all when empty).
/// Newton's method with a backtracking line search (L2, None); for L1, coordinate descent with
/// soft thresholding on each Newton step's quadratic model (glmnet's scheme). Separable data
/// without a penalty drives coefficients towards ±∞: the fit stops by |β| = 40 and reports
/// converged = false for any |β| >= 30 (P within 1e-13 of 0 or 1). Throws std::invalid_argument on
/// ragged rows.
LogisticFit fit_logistic(const std::vector<LogisticRow>& rows,
                         Penalty penalty,
                         double lambda,
                         const std::vector<bool>& penalized = {});

/// The logistic function 1 / (1 + e^-z).
double sigmoid(double z);

/// The q-quantile (0 <= q <= 1) of `values` with linear interpolation between order statistics
/// (numpy's default). `values` must be non-empty.
double quantile(std::vector<double> values, double q);

/// Spearman's rank correlation of two equal-length series (ties get their average rank); nullopt
/// when fewer than 2 pairs or a series is constant.
std::optional<double> spearman(const std::vector<double>& a, const std::vector<double>& b);

/// A bootstrap's summary: the statistic on every resample.
struct BootstrapResult {
  std::vector<double> replicates;  ///< One per round whose statistic was defined.
  double low = 0, high = 0;        ///< The (1-confidence)/2 and (1+confidence)/2 quantiles.
  double mean = 0, median = 0;
};

/// Resamples `items` indices (0..items-1) with replacement `rounds` times from a generator seeded
/// with `seed` (the same seed gives the same resamples on every machine: SplitMix64 with an
/// unbiased bounded draw), evaluates `statistic` on each resample and summarises. Rounds where
/// `statistic` returns nullopt are skipped. Throws std::invalid_argument when items == 0.
BootstrapResult bootstrap(
    std::size_t items,
    int rounds,
    double confidence,
    std::uint64_t seed,
    const std::function<std::optional<double>(const std::vector<std::size_t>&)>& statistic);

}  // namespace mr::plugins::evaluators
