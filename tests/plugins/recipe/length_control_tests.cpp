// length_control: method.md §2 step 4, worked example and edge cases.
#include <catch2/catch.hpp>

#include "length_controlled_policy.hpp"
#include "metareward/sdk/error.hpp"
#include "recipe_test_util.hpp"

using mr::plugins::recipe::length_control_schema;
using mr::plugins::recipe::LengthControlledPolicy;
using mr::sdk::Array;
using mr::sdk::IterationInfo;
using mr::test::recipe::build_with_ctx;
using mr::test::recipe::make_group;

namespace {

// The worked example: (score, length) = (5.0, 1900) (4.2, 1500) (3.5, 1200) (2.5, 2400) (2.0,
// 1800).
mr::sdk::PromptGroup worked_example() {
  return make_group("p0", {{5.0, 1900}, {4.2, 1500}, {3.5, 1200}, {2.5, 2400}, {2.0, 1800}});
}

IterationInfo iteration(int i) {
  return IterationInfo{i, 4, 99};
}

}  // namespace

TEST_CASE("length_control: worked example of method.md", "[recipe][length_control]") {
  SECTION("rho = 0.32: chosen (4.2, 1500), rejected (2.5, 2400)") {
    auto policy = build_with_ctx<LengthControlledPolicy>(length_control_schema(), {{"rho", 0.32}});
    auto result = policy->select({worked_example()}, iteration(1));
    REQUIRE(result.pairs.size() == 1);
    const auto& p = result.pairs[0];
    CHECK(p.chosen_id == "p0/r1");
    CHECK(*p.chosen_score == 4.2);
    CHECK(p.rejected_id == "p0/r3");
    CHECK(*p.rejected_score == 2.5);
    CHECK(p.meta.at("chosen_length") == "1500");
    CHECK(p.meta.at("rejected_length") == "2400");
    CHECK(result.drops.empty());
  }
  SECTION("rho = 0: chosen (5.0, 1900), rejected (2.0, 1800)") {
    auto policy = build_with_ctx<LengthControlledPolicy>(length_control_schema());
    auto result = policy->select({worked_example()}, iteration(1));
    REQUIRE(result.pairs.size() == 1);
    CHECK(result.pairs[0].chosen_id == "p0/r0");
    CHECK(result.pairs[0].rejected_id == "p0/r4");
  }
  SECTION("rho per iteration: [0, 0.32] gives the rho=0 pair in iteration 1, rho=0.32 in 2") {
    auto policy = build_with_ctx<LengthControlledPolicy>(
        length_control_schema(), {{"rho", Array{0.0, 0.32}}}, /*iterations=*/2);
    CHECK(policy->select({worked_example()}, iteration(1)).pairs.at(0).chosen_id == "p0/r0");
    CHECK(policy->select({worked_example()}, iteration(2)).pairs.at(0).chosen_id == "p0/r1");
  }
  SECTION("a score exactly on the tier bound (4.04) is in the top tier") {
    auto g = make_group("p1", {{5.0, 1900}, {4.04, 100}, {2.0, 1800}});
    auto policy = build_with_ctx<LengthControlledPolicy>(length_control_schema(), {{"rho", 0.32}});
    CHECK(policy->select({g}, iteration(1)).pairs.at(0).chosen_id == "p1/r1");
  }
}

TEST_CASE("length_control: pair contents", "[recipe][length_control]") {
  auto policy = build_with_ctx<LengthControlledPolicy>(length_control_schema());
  auto g = worked_example();
  auto result = policy->select({g}, iteration(1));
  REQUIRE(result.pairs.size() == 1);
  const auto& p = result.pairs[0];
  CHECK(p.role == mr::sdk::PairRole::Actor);
  CHECK(p.id == "p0/actor");
  CHECK(p.prompt_id == "p0");
  CHECK(p.prompt == g.prompt);
  CHECK(p.chosen == g.responses[0].text);
  CHECK(p.rejected == g.responses[4].text);
  CHECK(p.meta.at("policy") == "length_control");
}

TEST_CASE("length_control: prompts that yield no pair are counted", "[recipe][length_control]") {
  auto policy = build_with_ctx<LengthControlledPolicy>(length_control_schema(), {{"rho", 0.2}});
  SECTION("all scores equal") {
    auto r = policy->select({make_group("p", {{3.0, 10}, {3.0, 20}, {3.0, 30}})}, iteration(1));
    CHECK(r.pairs.empty());
    CHECK(r.drops.at("all_scores_equal") == 1);
  }
  SECTION("one response, or none") {
    auto r = policy->select({make_group("a", {{3.0, 10}}), make_group("b", {})}, iteration(1));
    CHECK(r.pairs.empty());
    CHECK(r.drops.at("fewer_than_2_valid") == 2);
  }
  SECTION("responses without a valid score are dropped and counted") {
    auto r = policy->select({make_group("p", {{std::nullopt, 10}, {4.0, 20}, {std::nullopt, 5}})},
                            iteration(1));
    CHECK(r.pairs.empty());
    CHECK(r.drops.at("response_without_valid_score") == 2);
    CHECK(r.drops.at("fewer_than_2_valid") == 1);
    auto r2 = policy->select(
        {make_group("p", {{std::nullopt, 10}, {4.0, 20}, {1.0, 5}, {std::nullopt, 1}})},
        iteration(1));
    REQUIRE(r2.pairs.size() == 1);
    CHECK(r2.pairs[0].chosen_id == "p/r1");
    CHECK(r2.pairs[0].rejected_id == "p/r2");
  }
}

TEST_CASE("length_control: ties and duplicates", "[recipe][length_control]") {
  auto policy = build_with_ctx<LengthControlledPolicy>(length_control_schema());
  SECTION("several at the top: the shortest is chosen") {
    auto r = policy->select({make_group("p", {{5.0, 1000}, {5.0, 800}, {1.0, 100}})}, iteration(1));
    CHECK(r.pairs.at(0).chosen_id == "p/r1");
  }
  SECTION("several at the bottom: the longest is rejected") {
    auto r = policy->select({make_group("p", {{5.0, 10}, {1.0, 500}, {1.0, 900}})}, iteration(1));
    CHECK(r.pairs.at(0).rejected_id == "p/r2");
  }
  SECTION("equal length and score: the earlier response wins, at both ends") {
    auto r = policy->select({make_group("p", {{1.0, 50}, {5.0, 70}, {5.0, 70}, {1.0, 50}})},
                            iteration(1));
    CHECK(r.pairs.at(0).chosen_id == "p/r1");
    CHECK(r.pairs.at(0).rejected_id == "p/r0");
  }
  SECTION("equal length within a tier: higher score chosen, lower score rejected") {
    auto p2 = build_with_ctx<LengthControlledPolicy>(length_control_schema(), {{"rho", 0.4}});
    // S_max 5, S_min 1: top tier >= 3.4, bottom tier <= 2.6.
    auto r =
        p2->select({make_group("p", {{3.5, 70}, {5.0, 70}, {2.5, 90}, {1.0, 90}})}, iteration(1));
    CHECK(r.pairs.at(0).chosen_id == "p/r1");
    CHECK(r.pairs.at(0).rejected_id == "p/r3");
  }
  SECTION("identical texts are removed before selection, the earliest copy kept") {
    auto g = make_group("p", {{5.0, 10}, {1.0, 10}, {3.0, 10}});
    g.responses[1].text = g.responses[0].text;
    auto r = policy->select({g}, iteration(1));
    CHECK(r.drops.at("duplicate_response") == 1);
    REQUIRE(r.pairs.size() == 1);
    CHECK(r.pairs[0].chosen_id == "p/r0");
    CHECK(r.pairs[0].rejected_id == "p/r2");
    CHECK(r.pairs[0].chosen != r.pairs[0].rejected);
  }
  SECTION("with remove_duplicates = false the duplicate stays a candidate") {
    auto keep = build_with_ctx<LengthControlledPolicy>(length_control_schema(),
                                                       {{"remove_duplicates", false}});
    auto g = make_group("p", {{5.0, 10}, {1.0, 10}, {3.0, 10}});
    g.responses[1].text = g.responses[0].text;
    auto r = keep->select({g}, iteration(1));
    CHECK(r.drops.count("duplicate_response") == 0);
    CHECK(r.pairs.at(0).rejected_id == "p/r1");
  }
}

TEST_CASE("length_control: chosen length cap", "[recipe][length_control]") {
  SECTION("rho = 0 and the only best response is over the cap: no pair") {
    auto policy = build_with_ctx<LengthControlledPolicy>(length_control_schema(),
                                                         {{"max_chosen_length", 1600}});
    auto r = policy->select({worked_example()}, iteration(1));
    CHECK(r.pairs.empty());
    CHECK(r.drops.at("chosen_candidate_too_long") == 1);
    CHECK(r.drops.at("no_chosen_within_length_cap") == 1);
  }
  SECTION("rho = 0.32: the cap does not bind the rejected side") {
    auto policy = build_with_ctx<LengthControlledPolicy>(
        length_control_schema(), {{"rho", 0.32}, {"max_chosen_length", 1600}});
    auto r = policy->select({worked_example()}, iteration(1));
    REQUIRE(r.pairs.size() == 1);
    CHECK(r.pairs[0].chosen_id == "p0/r1");
    CHECK(r.pairs[0].rejected_id == "p0/r3");  // 2400 chars, longer than the cap
  }
  SECTION("per iteration: [2500, 0] caps only iteration 1") {
    auto policy = build_with_ctx<LengthControlledPolicy>(
        length_control_schema(), {{"max_chosen_length", Array{1000, 0}}}, 2);
    auto g = make_group("p", {{5.0, 2000}, {4.0, 900}, {1.0, 50}});
    CHECK(policy->select({g}, iteration(1)).pairs.empty());
    CHECK(policy->select({g}, iteration(2)).pairs.at(0).chosen_id == "p/r0");
  }
}

TEST_CASE("length_control: token length unit", "[recipe][length_control]") {
  auto policy =
      build_with_ctx<LengthControlledPolicy>(length_control_schema(), {{"length_unit", "tokens"}});
  auto g = make_group("p", {{5.0, 10}, {5.0, 20}, {1.0, 30}, {1.0, 5}});
  g.responses[0].length_tokens = 400;  // longer in tokens although shorter in chars
  g.responses[1].length_tokens = 300;
  g.responses[2].length_tokens = 10;
  g.responses[3].length_tokens = 20;
  SECTION("lengths come from length_tokens") {
    auto r = policy->select({g}, iteration(1));
    CHECK(r.pairs.at(0).chosen_id == "p/r1");
    CHECK(r.pairs.at(0).rejected_id == "p/r3");
    CHECK(r.pairs.at(0).meta.at("length_unit") == "tokens");
  }
  SECTION("a response without a token count is dropped and counted") {
    g.responses[1].length_tokens = -1;
    auto r = policy->select({g}, iteration(1));
    CHECK(r.drops.at("response_without_token_count") == 1);
    CHECK(r.pairs.at(0).chosen_id == "p/r0");
  }
}

TEST_CASE("length_control: rho is validated", "[recipe][length_control][config]") {
  using mr::test::config_from_schema;
  using mr::test::TestHostContext;
  SECTION("rho = 0.5 is rejected (tiers would overlap)") {
    TestHostContext ctx(config_from_schema(length_control_schema(), {{"rho", 0.5}}, 1,
                                           "pair_selection", /*validate=*/false));
    CHECK_THROWS_WITH(LengthControlledPolicy(ctx),
                      Catch::Matchers::Contains("[pair_selection.rho]") &&
                          Catch::Matchers::Contains("0 <= rho < 0.5"));
  }
  SECTION("a bad value in a later iteration fails at construction") {
    TestHostContext ctx(config_from_schema(length_control_schema(), {{"rho", Array{0.0, -0.1}}}, 2,
                                           "pair_selection", false));
    CHECK_THROWS_WITH(LengthControlledPolicy(ctx), Catch::Matchers::Contains("iteration 2"));
  }
  SECTION("a negative cap is rejected") {
    TestHostContext ctx(config_from_schema(length_control_schema(), {{"max_chosen_length", -1}}, 1,
                                           "pair_selection", false));
    CHECK_THROWS_AS(LengthControlledPolicy(ctx), mr::sdk::ConfigError);
  }
}

TEST_CASE("length_control: responses cut at max_new_tokens are dropped unless allowed",
          "[recipe][length_control][truncation]") {
  // rho = 0.32 picks rejected = the longest low-tier response, r3 (2.5, 2400): here it is the
  // one that hit max_new_tokens, exactly what the rule must keep out.
  auto g = worked_example();
  g.responses[3].finish_reason = mr::sdk::FinishReason::Length;
  SECTION("by default it never enters a pair, and the drop is counted") {
    auto policy = build_with_ctx<LengthControlledPolicy>(length_control_schema(), {{"rho", 0.32}});
    auto result = policy->select({g}, iteration(1));
    REQUIRE(result.pairs.size() == 1);
    CHECK(result.pairs[0].rejected_id != "p0/r3");
    CHECK(result.pairs[0].rejected_complete);
    CHECK(result.drops.at("truncated_response") == 1);
  }
  SECTION("allow_truncated lets it in, marked as not complete") {
    auto policy = build_with_ctx<LengthControlledPolicy>(
        length_control_schema(), {{"rho", 0.32}, {"allow_truncated", true}});
    auto result = policy->select({g}, iteration(1));
    REQUIRE(result.pairs.size() == 1);
    CHECK(result.pairs[0].rejected_id == "p0/r3");
    CHECK_FALSE(result.pairs[0].rejected_complete);
    CHECK(result.pairs[0].chosen_complete);
    CHECK(result.drops.count("truncated_response") == 0);
  }
}
