/// @file best_worst_policy.hpp
/// `best_worst`: the Self-Rewarding rule — chosen = highest mean score, rejected = lowest; a
/// prompt whose best and worst scores are equal yields no pair ("ties dropped").
#pragma once

#include "metareward/sdk/host.hpp"
#include "metareward/sdk/pair_selection.hpp"
#include "selection_common.hpp"

namespace mr::plugins::recipe {

/// Config schema of `best_worst`: tied_extremes, remove_duplicates.
mr::sdk::Schema best_worst_schema();

/// Best-vs-worst pair policy. When several responses share the best (or worst) score,
/// `tied_extremes` decides: "first" (earliest response, the default), "random" (seeded by the
/// iteration seed and prompt id) or "drop" (no pair for that prompt).
class BestWorstPolicy final : public mr::sdk::PairSelectionPolicy {
 public:
  /// Reads its config from `ctx.config()`.
  explicit BestWorstPolicy(mr::sdk::HostContext& ctx);

  mr::sdk::PairSelectionResult select(const std::vector<mr::sdk::PromptGroup>& groups,
                                      const mr::sdk::IterationInfo& info) override;

 private:
  enum class Ties { First, Random, Drop };
  Ties ties_;
  CandidateRules rules_;
};

}  // namespace mr::plugins::recipe
