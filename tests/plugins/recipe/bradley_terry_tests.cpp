// Bradley–Terry MM fit: hand-computed cases, invariances and seeded property tests.
#include <catch2/catch.hpp>

#include <cmath>
#include <numeric>
#include <random>

#include "bradley_terry.hpp"
#include "metareward/sdk/error.hpp"

using mr::plugins::recipe::BattleMatrix;
using mr::plugins::recipe::bradley_terry_log_likelihood;
using mr::plugins::recipe::BradleyTerryOptions;
using mr::plugins::recipe::fit_bradley_terry;

namespace {

BradleyTerryOptions options(double prior = 0.01) {
  BradleyTerryOptions o;
  o.prior = prior;
  o.tolerance = 1e-12;
  o.max_iterations = 200000;
  return o;
}

double sum(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0);
}

std::vector<std::size_t> ranking(const std::vector<double>& elo) {
  std::vector<std::size_t> idx(elo.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](auto a, auto b) { return elo[a] > elo[b]; });
  return idx;
}

// A seeded random battle matrix with some structure (a latent strength) and some zeros.
BattleMatrix random_matrix(std::mt19937_64& rng, std::size_t n) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<double> strength(n);
  for (auto& s : strength) s = 3.0 * u(rng);
  BattleMatrix b(n, std::vector<double>(n, 0.0));
  for (std::size_t m = 0; m < n; ++m)
    for (std::size_t k = 0; k < n; ++k) {
      if (m == k) continue;
      for (int rep = 0; rep < 2; ++rep) {
        double p = 1.0 / (1.0 + std::exp(strength[k] - strength[m]));
        if (u(rng) < 0.15) continue;                    // unparsed verdict
        if (u(rng) < p) b[m][k] += 0.3 + 0.7 * u(rng);  // positional weight
      }
    }
  return b;
}

}  // namespace

TEST_CASE("bradley-terry: hand-computed cases", "[recipe][elo]") {
  SECTION("two judgments: eps_1 - eps_2 = log((w + a) / (l + a)), centred") {
    auto r = fit_bradley_terry({{0, 3}, {1, 0}}, options(0.01));
    REQUIRE(r.converged);
    const double half = 0.5 * std::log(3.01 / 1.01);
    CHECK(r.elo[0] == Approx(half).margin(1e-9));
    CHECK(r.elo[1] == Approx(-half).margin(1e-9));
  }
  SECTION("consistent data p = (4, 2, 1): Elo differences are log 2 and log 4") {
    // B_mn / (B_mn + B_nm) = p_m / (p_m + p_n) for every pair, so p is the exact MLE.
    BattleMatrix b = {{0, 4, 4}, {2, 0, 2}, {1, 1, 0}};
    auto r = fit_bradley_terry(b, options(1e-12));
    REQUIRE(r.converged);
    CHECK(r.elo[0] - r.elo[1] == Approx(std::log(2.0)).margin(1e-7));
    CHECK(r.elo[1] - r.elo[2] == Approx(std::log(2.0)).margin(1e-7));
    CHECK(r.elo[0] - r.elo[2] == Approx(std::log(4.0)).margin(1e-7));
    CHECK(sum(r.elo) == Approx(0.0).margin(1e-12));
  }
  SECTION("stationarity: at the optimum observed wins equal expected wins for every judgment") {
    BattleMatrix b = {{0, 1.5, 0.5, 2}, {0.5, 0, 1, 0}, {1.5, 1, 0, 0.5}, {0, 2, 1.5, 0}};
    const double a = 0.01;
    auto r = fit_bradley_terry(b, options(a));
    REQUIRE(r.converged);
    for (std::size_t m = 0; m < b.size(); ++m) {
      double observed = 0, expected = 0;
      for (std::size_t k = 0; k < b.size(); ++k) {
        if (k == m) continue;
        observed += b[m][k] + a;
        expected += (b[m][k] + b[k][m] + 2 * a) / (1 + std::exp(r.elo[k] - r.elo[m]));
      }
      CHECK(observed == Approx(expected).margin(1e-8));
    }
  }
  SECTION("degenerate sizes") {
    CHECK(fit_bradley_terry({}, options()).elo.empty());
    auto one = fit_bradley_terry({{0}}, options());
    CHECK(one.elo == std::vector<double>{0.0});
  }
}

TEST_CASE("bradley-terry: symmetry and extremes", "[recipe][elo]") {
  SECTION("symmetric battles give equal Elo (all zero)") {
    BattleMatrix b = {{0, 2, 1}, {2, 0, 1}, {1, 1, 0}};
    auto r = fit_bradley_terry(b, options());
    for (double e : r.elo) CHECK(e == Approx(0.0).margin(1e-9));
    auto none = fit_bradley_terry(BattleMatrix(5, std::vector<double>(5, 0.0)), options());
    for (double e : none.elo) CHECK(e == Approx(0.0).margin(1e-12));
  }
  SECTION("a rock-paper-scissors cycle gives equal Elo") {
    auto r = fit_bradley_terry({{0, 1, 0}, {0, 0, 1}, {1, 0, 0}}, options());
    for (double e : r.elo) CHECK(e == Approx(0.0).margin(1e-9));
  }
  SECTION("a judgment that wins every battle ranks first with a finite Elo") {
    BattleMatrix b = {{0, 2, 2, 2}, {0, 0, 1, 1}, {0, 1, 0, 1}, {0, 1, 1, 0}};
    auto r = fit_bradley_terry(b, options(0.01));
    REQUIRE(r.converged);
    CHECK(ranking(r.elo)[0] == 0);
    for (double e : r.elo) CHECK(std::isfinite(e));
    CHECK(r.elo[0] > r.elo[1] + 2.0);  // a large, but bounded, gap
  }
  SECTION("a judgment that loses every battle ranks last with a finite Elo") {
    BattleMatrix b = {{0, 1, 2}, {1, 0, 2}, {0, 0, 0}};
    auto r = fit_bradley_terry(b, options(0.01));
    CHECK(ranking(r.elo).back() == 2);
    CHECK(std::isfinite(r.elo[2]));
  }
}

TEST_CASE("bradley-terry: invariances", "[recipe][elo]") {
  // Every section sees the same 20 seeded random matrices.
  std::mt19937_64 rng(7);
  std::vector<BattleMatrix> matrices;
  for (int trial = 0; trial < 20; ++trial) matrices.push_back(random_matrix(rng, 5));
  auto scaled = [](BattleMatrix b, double c) {
    for (auto& row : b)
      for (auto& x : row) x *= c;
    return b;
  };
  SECTION("scaling the battle matrix and the prior together leaves Elo unchanged") {
    for (const auto& b : matrices) {
      auto base = fit_bradley_terry(b, options(0.01));
      auto r = fit_bradley_terry(scaled(b, 3.5), options(0.035));
      for (std::size_t m = 0; m < b.size(); ++m)
        CHECK(r.elo[m] == Approx(base.elo[m]).margin(1e-7));
    }
  }
  SECTION("the log-likelihood ignores an Elo offset; the fit is centred") {
    for (const auto& b : matrices) {
      auto base = fit_bradley_terry(b, options(0.01));
      std::vector<double> shifted = base.elo;
      for (auto& e : shifted) e += 42.0;
      CHECK(bradley_terry_log_likelihood(b, 0.01, shifted) ==
            Approx(bradley_terry_log_likelihood(b, 0.01, base.elo)).epsilon(1e-12));
      CHECK(sum(base.elo) == Approx(0.0).margin(1e-9));
    }
  }
}

TEST_CASE("bradley-terry: MM converges and never decreases the log-likelihood",
          "[recipe][elo][property]") {
  std::mt19937_64 rng(20240731);
  for (int trial = 0; trial < 100; ++trial) {
    const std::size_t n = 2 + static_cast<std::size_t>(rng() % 10);  // 2..11 judgments
    BattleMatrix b = random_matrix(rng, n);
    BradleyTerryOptions o = options(0.01);
    o.tolerance = 1e-10;
    o.record_log_likelihood = true;
    auto r = fit_bradley_terry(b, o);
    INFO("trial " << trial << ", n = " << n);
    REQUIRE(r.converged);
    REQUIRE(r.log_likelihood.size() == static_cast<std::size_t>(r.iterations) + 1);
    for (std::size_t i = 1; i < r.log_likelihood.size(); ++i)
      CHECK(r.log_likelihood[i] >=
            r.log_likelihood[i - 1] - 1e-9 * std::abs(r.log_likelihood[i - 1]));
    // The fixed point maximises the objective: a small step in any coordinate does not improve it.
    const double best = bradley_terry_log_likelihood(b, 0.01, r.elo);
    for (std::size_t m = 0; m < n; ++m)
      for (double step : {-1e-3, 1e-3}) {
        auto e = r.elo;
        e[m] += step;
        CHECK(bradley_terry_log_likelihood(b, 0.01, e) <= best + 1e-12);
      }
  }
}

TEST_CASE("bradley-terry: invalid input is an error", "[recipe][elo]") {
  CHECK_THROWS_AS(fit_bradley_terry({{0, 1}, {1}}, options()), mr::sdk::Error);
  CHECK_THROWS_AS(fit_bradley_terry({{0, -1}, {1, 0}}, options()), mr::sdk::Error);
  CHECK_THROWS_AS(fit_bradley_terry({{0, NAN}, {1, 0}}, options()), mr::sdk::Error);
  CHECK_THROWS_AS(fit_bradley_terry({{0, 1}, {1, 0}}, options(0.0)), mr::sdk::Error);
}
