/// @file pair_selection.hpp
/// The pair-selection policy plugin kind: turns judged responses into actor preference pairs
/// (e.g. the paper's length-controlled best/worst rule). Text-level; no libtorch.
#pragma once

#include <vector>

#include "metareward/sdk/types.hpp"

namespace mr::sdk {

/// Pairs chosen for one iteration plus counted reasons for every prompt that yielded none.
struct PairSelectionResult {
  std::vector<PreferencePair> pairs;  ///< role == PairRole::Actor.
  DropCounts drops;                   ///< e.g. {"all_scores_equal": 40, "fewer_than_2_valid": 3}.
};

/// Chooses actor pairs. Created once per run from the `[pair_selection]` table; select() is
/// called once per iteration from the host's main thread. Must be deterministic given its inputs
/// and `info.seed`.
class PairSelectionPolicy {
 public:
  virtual ~PairSelectionPolicy();

  /// Required. `groups` hold each prompt's responses with parsed judgments and mean scores
  /// (responses with no valid judgment have mean_score == nullopt). Per-iteration options are read
  /// from the plugin's config with `info.iteration`.
  virtual PairSelectionResult select(const std::vector<PromptGroup>& groups,
                                     const IterationInfo& info) = 0;
};

}  // namespace mr::sdk
