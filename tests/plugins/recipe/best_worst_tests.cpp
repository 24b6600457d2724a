// best_worst: the Self-Rewarding rule.
#include <catch2/catch.hpp>

#include <set>

#include "best_worst_policy.hpp"
#include "recipe_test_util.hpp"

using mr::plugins::recipe::best_worst_schema;
using mr::plugins::recipe::BestWorstPolicy;
using mr::sdk::IterationInfo;
using mr::test::recipe::build_with_ctx;
using mr::test::recipe::make_group;

TEST_CASE("best_worst: highest vs lowest mean score", "[recipe][best_worst]") {
  auto policy = build_with_ctx<BestWorstPolicy>(best_worst_schema());
  SECTION("length plays no role") {
    auto r = policy->select({make_group("p", {{3.0, 10}, {5.0, 9000}, {1.0, 1}, {4.0, 5}})},
                            IterationInfo{});
    REQUIRE(r.pairs.size() == 1);
    CHECK(r.pairs[0].chosen_id == "p/r1");
    CHECK(r.pairs[0].rejected_id == "p/r2");
    CHECK(r.pairs[0].meta.at("policy") == "best_worst");
  }
  SECTION("equal best and worst scores: no pair (ties dropped)") {
    auto r = policy->select({make_group("p", {{4.0, 10}, {4.0, 20}})}, IterationInfo{});
    CHECK(r.pairs.empty());
    CHECK(r.drops.at("all_scores_equal") == 1);
  }
  SECTION("fewer than two valid responses") {
    auto r = policy->select({make_group("p", {{4.0, 10}, {std::nullopt, 20}})}, IterationInfo{});
    CHECK(r.drops.at("fewer_than_2_valid") == 1);
    CHECK(r.drops.at("response_without_valid_score") == 1);
  }
}

TEST_CASE("best_worst: tied extremes", "[recipe][best_worst]") {
  auto group = make_group("p", {{5.0, 1}, {1.0, 2}, {5.0, 3}, {3.0, 4}, {1.0, 5}});
  SECTION("first (default): earliest best and earliest worst") {
    auto policy = build_with_ctx<BestWorstPolicy>(best_worst_schema());
    auto r = policy->select({group}, IterationInfo{});
    CHECK(r.pairs.at(0).chosen_id == "p/r0");
    CHECK(r.pairs.at(0).rejected_id == "p/r1");
  }
  SECTION("drop: the prompt yields no pair") {
    auto policy = build_with_ctx<BestWorstPolicy>(best_worst_schema(), {{"tied_extremes", "drop"}});
    auto r = policy->select({group}, IterationInfo{});
    CHECK(r.pairs.empty());
    CHECK(r.drops.at("tied_best_or_worst") == 1);
    // A unique best and worst is unaffected.
    CHECK(
        policy->select({make_group("q", {{5.0, 1}, {1.0, 2}, {3.0, 3}, {3.0, 4}})}, IterationInfo{})
            .pairs.size() == 1);
  }
  SECTION("random: seeded, deterministic, and covers every tied candidate") {
    auto policy =
        build_with_ctx<BestWorstPolicy>(best_worst_schema(), {{"tied_extremes", "random"}});
    std::set<std::string> chosen, rejected;
    for (std::uint64_t seed = 0; seed < 64; ++seed) {
      IterationInfo info{1, 1, seed};
      auto a = policy->select({group}, info);
      auto b = policy->select({group}, info);
      REQUIRE(a.pairs.size() == 1);
      CHECK(a.pairs[0].chosen_id == b.pairs[0].chosen_id);
      CHECK(a.pairs[0].rejected_id == b.pairs[0].rejected_id);
      chosen.insert(a.pairs[0].chosen_id);
      rejected.insert(a.pairs[0].rejected_id);
    }
    CHECK(chosen == std::set<std::string>{"p/r0", "p/r2"});
    CHECK(rejected == std::set<std::string>{"p/r1", "p/r4"});
  }
}
