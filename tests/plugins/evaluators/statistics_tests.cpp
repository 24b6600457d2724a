// The fits behind the evaluators against closed forms and against independent implementations
// written here (plain gradient ascent and proximal gradient, not Newton), and the seeded
// bootstrap.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "metareward/evaluators/statistics.hpp"
#include "metareward/evaluators/win_rates.hpp"

using namespace mr::plugins::evaluators;

namespace {

double logit(double p) {
  return std::log(p / (1 - p));
}

/// Soft-labelled rows: each (x, p) as y = 1 weight p and y = 0 weight 1 - p.
std::vector<LogisticRow> soft_rows(
    const std::vector<std::pair<std::vector<double>, double>>& data) {
  std::vector<LogisticRow> rows;
  for (const auto& [x, p] : data) {
    rows.push_back({x, 1.0, p});
    rows.push_back({x, 0.0, 1.0 - p});
  }
  return rows;
}

/// Independent fit: (proximal) gradient ascent on the same objective with a fixed small step.
std::vector<double> gradient_ascent(const std::vector<LogisticRow>& rows,
                                    double lambda,
                                    bool l1,
                                    const std::vector<bool>& pen) {
  const std::size_t k = rows.front().x.size();
  double total = 0;
  for (const auto& r : rows) total += r.weight;
  std::vector<double> beta(k, 0.0);
  for (int it = 0; it < 200000; ++it) {
    std::vector<double> g(k, 0.0);
    for (const auto& r : rows) {
      double z = 0;
      for (std::size_t j = 0; j < k; ++j) z += r.x[j] * beta[j];
      const double p = 1 / (1 + std::exp(-z));
      for (std::size_t j = 0; j < k; ++j) g[j] += r.weight / total * (r.y - p) * r.x[j];
    }
    const double step = 0.5;
    for (std::size_t j = 0; j < k; ++j) {
      if (pen[j] && !l1) g[j] -= lambda * beta[j];
      beta[j] += step * g[j];
      if (pen[j] && l1)  // Proximal step of λ‖β‖₁.
        beta[j] = std::copysign(std::max(0.0, std::fabs(beta[j]) - step * lambda), beta[j]);
    }
  }
  return beta;
}

std::vector<std::size_t> all(std::size_t n) {
  std::vector<std::size_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

}  // namespace

TEST_CASE("logistic fit: an intercept alone is the logit of the mean soft label",
          "[evaluators][statistics]") {
  const auto rows = soft_rows({{{1.0}, 0.9}, {{1.0}, 0.5}, {{1.0}, 0.4}, {{1.0}, 0.2}});
  const LogisticFit fit = fit_logistic(rows, Penalty::None, 0.0);
  CHECK(fit.converged);
  CHECK(fit.coef[0] == Approx(logit(0.5)).margin(1e-9));
  const auto skewed = soft_rows({{{1.0}, 1.0}, {{1.0}, 1.0}, {{1.0}, 0.0}, {{1.0}, 0.5}});
  CHECK(fit_logistic(skewed, Penalty::None, 0.0).coef[0] == Approx(logit(0.625)).margin(1e-9));
}

TEST_CASE("logistic fit: two groups give each group's logit (closed form)",
          "[evaluators][statistics]") {
  // x = (1, group): β0 = logit(mean of group 0), β0 + β1 = logit(mean of group 1).
  const auto rows = soft_rows({{{1, 0}, 0.2}, {{1, 0}, 0.4}, {{1, 1}, 0.7}, {{1, 1}, 0.9}});
  const LogisticFit fit = fit_logistic(rows, Penalty::None, 0.0);
  CHECK(fit.converged);
  CHECK(fit.coef[0] == Approx(logit(0.3)).margin(1e-9));
  CHECK(fit.coef[0] + fit.coef[1] == Approx(logit(0.8)).margin(1e-9));
}

TEST_CASE("logistic fit: L2 and L1 equal an independent gradient-ascent fit",
          "[evaluators][statistics]") {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform;
  std::vector<std::pair<std::vector<double>, double>> data;
  for (int i = 0; i < 60; ++i) {
    const double a = normal(rng), b = normal(rng);
    const double p = 1 / (1 + std::exp(-(0.4 + 1.2 * a - 0.7 * b)));
    data.push_back({{1.0, a, b}, uniform(rng) < p ? (uniform(rng) < 0.2 ? 0.5 : 1.0) : 0.0});
  }
  const auto rows = soft_rows(data);
  const std::vector<bool> pen{false, true, true};
  for (const bool l1 : {false, true}) {
    INFO((l1 ? "L1" : "L2"));
    const double lambda = l1 ? 0.02 : 0.05;
    const LogisticFit fit = fit_logistic(rows, l1 ? Penalty::L1 : Penalty::L2, lambda, pen);
    const std::vector<double> reference = gradient_ascent(rows, lambda, l1, pen);
    CHECK(fit.converged);
    for (std::size_t j = 0; j < 3; ++j) CHECK(fit.coef[j] == Approx(reference[j]).margin(1e-6));
  }
  // A strong L1 penalty zeroes the penalised coefficients and leaves the intercept free.
  const LogisticFit sparse = fit_logistic(rows, Penalty::L1, 10.0, pen);
  CHECK(sparse.coef[1] == 0.0);
  CHECK(sparse.coef[2] == 0.0);
  double mean = 0;
  for (const auto& [x, p] : data) mean += p;
  CHECK(sparse.coef[0] == Approx(logit(mean / 60)).margin(1e-8));
}

TEST_CASE("logistic fit: separable data stops at the bound and says it did not converge",
          "[evaluators][statistics]") {
  const auto rows = soft_rows({{{1.0}, 1.0}, {{1.0}, 1.0}});
  const LogisticFit fit = fit_logistic(rows, Penalty::None, 0.0);
  CHECK_FALSE(fit.converged);
  CHECK(sigmoid(fit.coef[0]) > 0.999999);
  CHECK_THROWS_AS(fit_logistic({{{1.0}, 1, 1}, {{1.0, 2.0}, 0, 1}}, Penalty::None, 0),
                  std::invalid_argument);
  CHECK_THROWS_AS(parse_penalty("l3"), std::invalid_argument);
}

TEST_CASE("LC win rate: equal lengths give the raw win rate", "[evaluators][lc]") {
  std::vector<PreferenceItem> items;
  for (double p : {1.0, 0.0, 1.0, 0.5, 1.0, 0.0, 1.0, 1.0})
    items.push_back({p, 100, 100, std::nullopt});
  const LcEstimate e = length_controlled_win_rate(items, all(items.size()), {Penalty::None, 0});
  CHECK(e.win_rate == Approx(100 * 5.5 / 8));
  CHECK(e.lc_win_rate == Approx(e.win_rate).margin(1e-7));
  CHECK(e.length_coef == 0.0);
}

TEST_CASE("LC win rate: a symmetric length effect is removed (closed form)", "[evaluators][lc]") {
  // Half the items the model is 300 chars longer and wins 80 %, half 300 shorter and wins 40 %:
  // tanh(Δ/σ) = ±t, so ψ ± θt = logit(0.8), logit(0.4) and LC = σ(ψ) with ψ the mean logit.
  std::vector<PreferenceItem> items;
  for (int i = 0; i < 10; ++i) {
    items.push_back({i < 8 ? 1.0 : 0.0, 500, 200, std::nullopt});
    items.push_back({i < 4 ? 1.0 : 0.0, 200, 500, std::nullopt});
  }
  const LcEstimate e = length_controlled_win_rate(items, all(items.size()), {Penalty::None, 0});
  CHECK(e.win_rate == Approx(60.0));
  const double psi = 0.5 * (logit(0.8) + logit(0.4));
  CHECK(e.strength == Approx(psi).margin(1e-8));
  CHECK(e.lc_win_rate == Approx(100 * sigmoid(psi)).margin(1e-6));
  // Longer (Δ < 0) wins more: θ < 0 on tanh(Δ/σ).
  CHECK(e.length_coef < 0);
  // An L2 penalty on θ only shrinks the length term: LC moves towards the raw win rate.
  const LcEstimate shrunk =
      length_controlled_win_rate(items, all(items.size()), {Penalty::L2, 1.0});
  CHECK(std::fabs(shrunk.length_coef) < std::fabs(e.length_coef));
  CHECK(std::fabs(shrunk.lc_win_rate - e.win_rate) < std::fabs(e.lc_win_rate - e.win_rate) + 1e-9);
}

TEST_CASE("LC win rate: instruction difficulty is fitted when every item has one",
          "[evaluators][lc]") {
  // Lengths equal; the model wins the easy instructions (d = -1) and loses the hard (d = +1),
  // 75 % / 25 %: φ·d absorbs it, ψ = 0, and LC = mean of σ(±φ) = 50 %.
  std::vector<PreferenceItem> items;
  for (int i = 0; i < 8; ++i) {
    items.push_back({i < 6 ? 1.0 : 0.0, 100, 100, -1.0});
    items.push_back({i < 2 ? 1.0 : 0.0, 100, 100, 1.0});
  }
  const LcEstimate e = length_controlled_win_rate(items, all(items.size()), {Penalty::None, 0});
  CHECK(e.strength == Approx(0.0).margin(1e-8));
  CHECK(e.lc_win_rate == Approx(50.0).margin(1e-6));
}

TEST_CASE("Bradley-Terry against one baseline: wins over games, strong verdicts weighted",
          "[evaluators][arena]") {
  std::vector<ArenaGame> games = {{1, {}}, {1, {}}, {1, {}}, {-1, {}}};
  CHECK(arena_win_rate(games, all(4), {}) == Approx(75.0).margin(1e-6));
  // A >> B counts 3 wins: 3 / (3 + 1).
  games = {{2, {}}, {-1, {}}};
  CHECK(arena_win_rate(games, all(2), {}) == Approx(75.0).margin(1e-6));
  // Ties are half a win each.
  games = {{0, {}}, {0, {}}, {1, {}}, {-1, {}}};
  CHECK(arena_win_rate(games, all(4), {}) == Approx(50.0).margin(1e-6));
  games = {{0, {}}, {1, {}}};
  CHECK(arena_win_rate(games, all(2), {}) == Approx(75.0).margin(1e-6));
}

TEST_CASE("Bradley-Terry with style control scores at equal style", "[evaluators][arena]") {
  // Longer answers (style +0.5) win 90 %, shorter ones (-0.5) 50 %: at equal style the logit is
  // the mean of the two groups' logits (the style term is symmetric), not the raw 70 %.
  std::vector<ArenaGame> games;
  for (int i = 0; i < 10; ++i) {
    games.push_back({i < 9 ? 1 : -1, {0.5}});
    games.push_back({i < 5 ? 1 : -1, {-0.5}});
  }
  ArenaOptions plain, styled;
  styled.style_control = true;
  const double raw = arena_win_rate(games, all(games.size()), plain);
  const double controlled = arena_win_rate(games, all(games.size()), styled);
  CHECK(raw == Approx(70.0).margin(1e-6));
  // logit at equal style = mean of logit(0.9) and logit(0.5).
  CHECK(controlled == Approx(100 * sigmoid(0.5 * (logit(0.9) + logit(0.5)))).margin(1e-6));
  CHECK(controlled != Approx(raw));
}

TEST_CASE("bootstrap: seeded, deterministic, and covers the estimate", "[evaluators][bootstrap]") {
  std::vector<double> values;
  for (int i = 0; i < 200; ++i) values.push_back(i % 3 == 0 ? 1.0 : 0.0);
  auto mean_of = [&](const std::vector<std::size_t>& s) {
    double sum = 0;
    for (std::size_t i : s) sum += values[i];
    return std::optional<double>(sum / static_cast<double>(s.size()));
  };
  const BootstrapResult a = bootstrap(values.size(), 300, 0.95, 42, mean_of);
  const BootstrapResult b = bootstrap(values.size(), 300, 0.95, 42, mean_of);
  const BootstrapResult c = bootstrap(values.size(), 300, 0.95, 43, mean_of);
  CHECK(a.replicates == b.replicates);
  CHECK(a.replicates != c.replicates);
  REQUIRE(a.replicates.size() == 300);
  const double mean = 67.0 / 200;
  CHECK(a.low < mean);
  CHECK(a.high > mean);
  // The normal approximation of the 95 % interval: ± 1.96 · sqrt(p(1-p)/n) ≈ ± 0.065.
  CHECK(a.high - a.low == Approx(2 * 1.96 * std::sqrt(mean * (1 - mean) / 200)).epsilon(0.25));
  // Undefined rounds are skipped, not counted as zero.
  int calls = 0;
  const BootstrapResult some = bootstrap(10, 20, 0.9, 1, [&](const auto&) {
    return ++calls % 2 ? std::optional<double>(1.0) : std::nullopt;
  });
  CHECK(some.replicates.size() == 10);
  CHECK_THROWS_AS(bootstrap(0, 10, 0.9, 1, mean_of), std::invalid_argument);
}

TEST_CASE("quantile and Spearman on hand-computed cases", "[evaluators][statistics]") {
  CHECK(quantile({4, 1, 3, 2}, 0.25) == Approx(1.75));  // numpy.quantile([1,2,3,4], 0.25)
  CHECK(quantile({5}, 0.9) == 5);
  CHECK(*spearman({1, 2, 3}, {10, 20, 30}) == Approx(1.0));
  CHECK(*spearman({1, 2, 3}, {3, 2, 1}) == Approx(-1.0));
  CHECK(*spearman({1, 2, 3}, {1, 3, 2}) == Approx(0.5));
  // Ties get average ranks: b's ranks are 1, 2, 3.5, 5, 3.5 -> rho = 0.82078...
  CHECK(*spearman({1, 2, 3, 4, 5}, {5, 6, 7, 8, 7}) == Approx(0.8207826817).epsilon(1e-8));
  CHECK_FALSE(spearman({1, 1, 1}, {1, 2, 3}).has_value());
  CHECK_FALSE(spearman({1}, {1}).has_value());
}
