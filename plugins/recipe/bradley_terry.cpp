// Bradley–Terry MLE by the MM iteration (Hunter 2004), with a symmetric pseudo-win prior.
#include "bradley_terry.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "metareward/sdk/error.hpp"

namespace mr::plugins::recipe {

namespace {

void check_matrix(const BattleMatrix& wins) {
  const std::size_t n = wins.size();
  for (std::size_t m = 0; m < n; ++m) {
    MR_CHECK(wins[m].size() == n, "Bradley-Terry: battle matrix is not square (row ", m, " has ",
             wins[m].size(), " entries, expected ", n, ")");
    for (std::size_t k = 0; k < n; ++k)
      MR_CHECK(std::isfinite(wins[m][k]) && wins[m][k] >= 0.0,
               "Bradley-Terry: battle matrix entry (", m, ", ", k,
               ") must be finite and >= 0, got ", wins[m][k]);
  }
}

// log σ(x) without overflow.
double log_sigmoid(double x) {
  return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x));
}

void centre(std::vector<double>& elo) {
  if (elo.empty()) return;
  double mean = std::accumulate(elo.begin(), elo.end(), 0.0) / static_cast<double>(elo.size());
  for (double& e : elo) e -= mean;
}

}  // namespace

double bradley_terry_log_likelihood(const BattleMatrix& wins,
                                    double prior,
                                    const std::vector<double>& elo) {
  double ll = 0.0;
  for (std::size_t m = 0; m < wins.size(); ++m)
    for (std::size_t n = 0; n < wins.size(); ++n)
      if (m != n) ll += (wins[m][n] + prior) * log_sigmoid(elo[m] - elo[n]);
  return ll;
}

BradleyTerryResult fit_bradley_terry(const BattleMatrix& wins, const BradleyTerryOptions& options) {
  check_matrix(wins);
  MR_CHECK(options.prior > 0.0 && std::isfinite(options.prior),
           "Bradley-Terry: prior must be > 0, got ", options.prior);
  const std::size_t n = wins.size();
  BradleyTerryResult result;
  result.elo.assign(n, 0.0);
  if (n <= 1) {
    result.converged = true;
    return result;
  }
  const double a = options.prior;
  std::vector<double> total_wins(n, 0.0);
  for (std::size_t m = 0; m < n; ++m)
    for (std::size_t k = 0; k < n; ++k)
      if (k != m) total_wins[m] += wins[m][k] + a;

  auto record = [&] {
    if (options.record_log_likelihood)
      result.log_likelihood.push_back(bradley_terry_log_likelihood(wins, a, result.elo));
  };
  record();
  // Work in p = exp(ε) with Σ log p = 0 after every step: the update is scale-free, so centring
  // only keeps the numbers in range.
  std::vector<double> p(n, 1.0), next(n);
  for (int it = 1; it <= options.max_iterations; ++it) {
    for (std::size_t m = 0; m < n; ++m) {
      double denom = 0.0;
      for (std::size_t k = 0; k < n; ++k)
        if (k != m) denom += (wins[m][k] + wins[k][m] + 2.0 * a) / (p[m] + p[k]);
      next[m] = total_wins[m] / denom;
    }
    std::vector<double> elo(n);
    for (std::size_t m = 0; m < n; ++m) elo[m] = std::log(next[m]);
    centre(elo);
    double moved = 0.0;
    for (std::size_t m = 0; m < n; ++m) {
      moved = std::max(moved, std::abs(elo[m] - result.elo[m]));
      p[m] = std::exp(elo[m]);
    }
    result.elo = std::move(elo);
    result.iterations = it;
    record();
    if (moved < options.tolerance) {
      result.converged = true;
      break;
    }
  }
  return result;
}

}  // namespace mr::plugins::recipe
