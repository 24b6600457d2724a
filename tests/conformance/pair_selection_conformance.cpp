// Conformance of every registered actor pair-selection policy (see conformance_support.hpp).
#include "conformance_support.hpp"

using namespace mr::test::conformance;
using mr::sdk::PairSelectionPolicy;
using mr::sdk::PluginKind;

TEST_CASE("pair_selection conformance: registered policies exist",
          "[conformance][pair_selection]") {
#ifndef MR_CONFORMANCE_HAVE_RECIPE
  MR_SKIP("the recipe plugins (length_control, best_worst) are not built");
#endif
  auto names = names_of(PluginKind::PairSelection);
  CHECK(std::find(names.begin(), names.end(), "length_control") != names.end());
  CHECK(std::find(names.begin(), names.end(), "best_worst") != names.end());
}

TEST_CASE("pair_selection conformance: schema defaults validate", "[conformance][pair_selection]") {
  if (names_of(PluginKind::PairSelection).empty())
    MR_SKIP("no pair-selection policy is registered (the recipe plugins are not built)");
  auto name = GENERATE(from_range(names_of(PluginKind::PairSelection)));
  INFO("policy " << origin(name));
  check_schema(name);
  CHECK_NOTHROW(make_default<PairSelectionPolicy>(name));
}

TEST_CASE("pair_selection conformance: pairs are well formed on random groups",
          "[conformance][pair_selection]") {
  if (names_of(PluginKind::PairSelection).empty())
    MR_SKIP("no pair-selection policy is registered (the recipe plugins are not built)");
  auto name = GENERATE(from_range(names_of(PluginKind::PairSelection)));
  auto seed = GENERATE(1u, 2u, 3u, 4u, 5u);
  INFO("policy " << origin(name) << ", seed " << seed);
  auto inst = make_default<PairSelectionPolicy>(name);
  auto groups = random_groups(seed);
  const mr::sdk::IterationInfo info{1, 1, seed};
  auto result = inst.plugin->select(groups, info);
  // The random groups must exercise the policy: pairs or counted reasons for none.
  CHECK(result.pairs.size() + result.drops.size() > 0);

  std::map<std::string, const mr::sdk::PromptGroup*> by_prompt;
  for (const auto& g : groups) by_prompt[g.prompt_id] = &g;
  for (const auto& p : result.pairs) {
    INFO("pair " << p.id);
    CHECK(p.role == mr::sdk::PairRole::Actor);
    REQUIRE(by_prompt.count(p.prompt_id) == 1);
    const auto& g = *by_prompt[p.prompt_id];
    CHECK(p.prompt == g.prompt);
    const mr::sdk::ResponseCandidate* chosen = nullptr;
    const mr::sdk::ResponseCandidate* rejected = nullptr;
    for (const auto& r : g.responses) {
      if (r.id == p.chosen_id) chosen = &r;
      if (r.id == p.rejected_id) rejected = &r;
    }
    REQUIRE(chosen != nullptr);
    REQUIRE(rejected != nullptr);
    CHECK(chosen != rejected);
    CHECK(p.chosen == chosen->text);
    CHECK(p.rejected == rejected->text);
    REQUIRE(chosen->mean_score);
    REQUIRE(rejected->mean_score);
    CHECK(*chosen->mean_score > *rejected->mean_score);
  }
  for (const auto& [reason, n] : result.drops) {
    CHECK_FALSE(reason.empty());
    CHECK(n > 0);
  }
  SECTION("deterministic under a fixed seed") {
    auto again = inst.plugin->select(groups, info);
    REQUIRE(again.pairs.size() == result.pairs.size());
    for (std::size_t i = 0; i < result.pairs.size(); ++i) {
      CHECK(again.pairs[i].chosen_id == result.pairs[i].chosen_id);
      CHECK(again.pairs[i].rejected_id == result.pairs[i].rejected_id);
    }
    CHECK(again.drops == result.drops);
  }
}
