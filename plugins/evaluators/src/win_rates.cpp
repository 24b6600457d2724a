// The LC GLM and the Bradley-Terry score (win_rates.hpp).
#include "metareward/evaluators/win_rates.hpp"

#include <cmath>
#include <stdexcept>

namespace mr::plugins::evaluators {

namespace {

/// Sample standard deviation (ddof = 1, as pandas); 0 with fewer than 2 values.
double sample_std(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  double mean = 0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  return std::sqrt(ss / static_cast<double>(v.size() - 1));
}

}  // namespace

LcEstimate length_controlled_win_rate(const std::vector<PreferenceItem>& items,
                                      const std::vector<std::size_t>& subset,
                                      const LcOptions& options) {
  if (subset.empty()) throw std::invalid_argument("length-controlled win rate of no items");
  std::vector<double> delta;
  bool difficulty = true;
  double preference_sum = 0;
  for (std::size_t i : subset) {
    const PreferenceItem& item = items.at(i);
    delta.push_back(item.baseline_chars - item.model_chars);
    difficulty = difficulty && item.difficulty.has_value();
    preference_sum += item.preference;
  }
  const double sigma = sample_std(delta);
  // Features: ψ (strength), θ (length), then φ (difficulty).
  std::vector<LogisticRow> rows;
  rows.reserve(2 * subset.size());
  for (std::size_t n = 0; n < subset.size(); ++n) {
    const PreferenceItem& item = items[subset[n]];
    std::vector<double> x{1.0, sigma > 0 ? std::tanh(delta[n] / sigma) : 0.0};
    if (difficulty) x.push_back(*item.difficulty);
    rows.push_back({x, 1.0, item.preference});
    rows.push_back({x, 0.0, 1.0 - item.preference});
  }
  std::vector<bool> penalized{false, true, true};
  penalized.resize(rows.front().x.size());
  const LogisticFit fit = fit_logistic(rows, options.penalty, options.lambda, penalized);

  LcEstimate out;
  out.win_rate = 100.0 * preference_sum / static_cast<double>(subset.size());
  out.strength = fit.coef[0];
  out.length_coef = fit.coef[1];
  out.converged = fit.converged;
  double predicted = 0;
  for (std::size_t i : subset)
    predicted += sigmoid(fit.coef[0] + (difficulty ? fit.coef[2] * *items[i].difficulty : 0.0));
  out.lc_win_rate = 100.0 * predicted / static_cast<double>(subset.size());
  return out;
}

double arena_win_rate(const std::vector<ArenaGame>& games,
                      const std::vector<std::size_t>& subset,
                      const ArenaOptions& options) {
  if (subset.empty()) throw std::invalid_argument("Bradley-Terry fit over no games");
  const std::size_t styles = options.style_control ? games.at(subset.front()).style.size() : 0;
  std::vector<double> scale(styles, 1.0);
  for (std::size_t s = 0; s < styles; ++s) {
    std::vector<double> column;
    for (std::size_t i : subset) column.push_back(games[i].style.at(s));
    const double sd = sample_std(column);
    scale[s] = sd > 0 ? sd : 1.0;  // Divided, not centred: zero stays "equal style".
  }
  std::vector<LogisticRow> rows;
  for (std::size_t i : subset) {
    const ArenaGame& game = games[i];
    std::vector<double> x{1.0};
    for (std::size_t s = 0; s < styles; ++s) x.push_back(game.style[s] / scale[s]);
    const double weight = std::abs(game.outcome) >= 2 ? options.strong_weight : 1.0;
    if (game.outcome > 0) {
      rows.push_back({x, 1.0, weight});
    } else if (game.outcome < 0) {
      rows.push_back({x, 0.0, weight});
    } else {
      rows.push_back({x, 1.0, 0.5});
      rows.push_back({x, 0.0, 0.5});
    }
  }
  const LogisticFit fit = fit_logistic(rows, Penalty::None, 0.0);
  return 100.0 * sigmoid(fit.coef[0]);
}

}  // namespace mr::plugins::evaluators
