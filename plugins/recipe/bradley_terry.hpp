/// @file bradley_terry.hpp
/// Bradley–Terry maximum likelihood ("Elo") from a weighted battle matrix, by the MM iteration of
/// Zermelo / Hunter (2004) with a symmetric prior (method.md §2 step 5).
#pragma once

#include <cstdint>
#include <vector>

namespace mr::plugins::recipe {

/// Square matrix of weighted wins: wins[m][n] = how much m beat n (diagonal ignored).
using BattleMatrix = std::vector<std::vector<double>>;

/// Fitting options.
struct BradleyTerryOptions {
  /// Pseudo-wins added each way between every pair (> 0): keeps an undefeated or winless item
  /// finite and makes the maximiser unique.
  double prior = 0.01;
  /// Stop when no Elo moved by more than this between two iterations.
  double tolerance = 1e-9;
  /// Hard stop; the result reports converged = false if reached.
  int max_iterations = 10000;
  /// Record the (prior-augmented) log-likelihood after every iteration (tests, diagnostics).
  bool record_log_likelihood = false;
};

/// Fitted strengths.
struct BradleyTerryResult {
  /// ε_m = log p_m, normalised to Σ ε = 0 (natural-log scale; multiply by 400/ln 10 for chess
  /// Elo points). Only differences matter.
  std::vector<double> elo;
  int iterations = 0;
  bool converged = false;
  /// Log-likelihood before the first update and after each iteration, when recorded.
  std::vector<double> log_likelihood;
};

/// Maximises Σ_{m≠n} (B_mn + prior)·log σ(ε_m − ε_n) with the MM update
/// p_m ← W_m / Σ_{n≠m} (B_mn + B_nm + 2·prior)/(p_m + p_n), W_m = Σ_{n≠m} (B_mn + prior), all
/// components updated from the previous iterate (each step provably does not decrease the
/// objective). Throws mr::sdk::Error for a non-square matrix, negative or non-finite entries, or
/// prior <= 0. An empty matrix gives an empty result; a 1x1 matrix gives {0}.
BradleyTerryResult fit_bradley_terry(const BattleMatrix& wins, const BradleyTerryOptions& options);

/// The objective fit_bradley_terry maximises, at `elo` (any offset).
double bradley_terry_log_likelihood(const BattleMatrix& wins,
                                    double prior,
                                    const std::vector<double>& elo);

}  // namespace mr::plugins::recipe
