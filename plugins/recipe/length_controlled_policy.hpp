/// @file length_controlled_policy.hpp
/// `length_control`: the paper's actor pair rule with length control ρ (method.md §2 step 4).
/// Per prompt: top tier = scores in [(1−ρ)·S_max + ρ·S_min, S_max] gives the SHORTEST chosen
/// response, bottom tier = [S_min, (1−ρ)·S_min + ρ·S_max] gives the LONGEST rejected one. ρ = 0 is
/// best vs worst with length breaking ties.
#pragma once

#include "metareward/sdk/host.hpp"
#include "metareward/sdk/pair_selection.hpp"
#include "selection_common.hpp"

namespace mr::plugins::recipe {

/// Config schema of `length_control`: rho, max_chosen_length (both per iteration), length_unit,
/// remove_duplicates.
mr::sdk::Schema length_control_schema();

/// The length-controlled best/worst policy. Deterministic (no randomness at all).
///
/// Tie-breaking: among equally short top-tier responses the higher score wins, then the earlier
/// response index; among equally long bottom-tier responses the lower score wins, then the
/// earlier index.
class LengthControlledPolicy final : public mr::sdk::PairSelectionPolicy {
 public:
  /// Reads its config from `ctx.config()`; throws mr::sdk::ConfigError for a rho outside
  /// [0, 0.5) or a negative max_chosen_length in any iteration.
  explicit LengthControlledPolicy(mr::sdk::HostContext& ctx);

  mr::sdk::PairSelectionResult select(const std::vector<mr::sdk::PromptGroup>& groups,
                                      const mr::sdk::IterationInfo& info) override;

 private:
  const mr::sdk::Config& config_;
  bool use_tokens_;
  CandidateRules rules_;
};

}  // namespace mr::plugins::recipe
