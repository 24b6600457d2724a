// The two head-to-head scores against a baseline: AlpacaEval 2's length-controlled win rate (the
// "length_controlled_v1" GLM, fitted per model) and Arena-Hard's Bradley-Terry score (optionally
// style-controlled). Both on a subset of items, so that the bootstrap refits them per resample.
#pragma once

#include <optional>
#include <vector>

#include "metareward/evaluators/statistics.hpp"

namespace mr::plugins::evaluators {

/// One instruction's outcome: the judge's preference for the model's output over the baseline's.
struct PreferenceItem {
  double preference = 0.5;           ///< In [0, 1]; ties 0.5.
  double model_chars = 0;            ///< Length of the model's output (Unicode code points).
  double baseline_chars = 0;         ///< Length of the baseline's output.
  std::optional<double> difficulty;  ///< AlpacaEval's instruction_difficulty, when supplied.
};

/// Options of the LC GLM.
struct LcOptions {
  Penalty penalty = Penalty::L2;
  /// λ of fit_logistic(); the model-strength term ψ is never penalised (shrinking it would pull
  /// the LC win rate towards 50 %).
  double lambda = 0.01;
};

/// Raw and length-controlled win rates, in percent.
struct LcEstimate {
  double win_rate = 0;     ///< 100 × mean preference.
  double lc_win_rate = 0;  ///< 100 × mean predicted P(model wins) at zero length difference.
  double length_coef = 0;  ///< θ, the weight of tanh(Δ/σ).
  double strength = 0;     ///< ψ.
  bool converged = false;
};

/// Fits logit P = θ·tanh(Δ/σ) + φ·difficulty + ψ on the items `subset` indexes (with repeats: a
/// bootstrap resample), Δ = baseline_chars − model_chars and σ its sample standard deviation over
/// the subset (the feature is 0 when σ = 0). φ is fitted only when every item has a difficulty.
/// Each item is two rows, y = 1 with weight p and y = 0 with weight 1 − p. Throws
/// std::invalid_argument on an empty subset.
LcEstimate length_controlled_win_rate(const std::vector<PreferenceItem>& items,
                                      const std::vector<std::size_t>& subset,
                                      const LcOptions& options);

/// One Arena-Hard game between the model and the baseline.
struct ArenaGame {
  /// The verdict from the model's side: +2 much better, +1 better, 0 tie, −1 worse, −2 much worse.
  int outcome = 0;
  /// Style covariates (model − baseline, normalised), e.g. (len_m − len_b) / (len_m + len_b);
  /// used only with style control.
  std::vector<double> style;
};

/// Options of the Bradley-Terry fit.
struct ArenaOptions {
  double strong_weight = 3;    ///< A ±2 verdict counts as this many wins / losses.
  bool style_control = false;  ///< Fit the style covariates too (each divided by its std).
};

/// Bradley-Terry of the model against the baseline on the games `subset` indexes: logit P(model
/// wins) = β (+ γ·style): a tie is half a win and half a loss. Returns 100·σ(β): the model's
/// predicted win rate against the baseline (at equal style, with style control).
double arena_win_rate(const std::vector<ArenaGame>& games,
                      const std::vector<std::size_t>& subset,
                      const ArenaOptions& options);

}  // namespace mr::plugins::evaluators
