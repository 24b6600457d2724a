/// @file meta_judge.hpp
/// The meta-judge strategy plugin kind: plans meta-judge battles between judgments and turns
/// their verdicts into judge preference pairs. Text-level; no libtorch.
///
/// The host drives the two phases so that generation stays batched, recorded and resumable:
///   1. plan()    -> the battles to run (each a conversation for the meta-judge model);
///   2. the host generates one verdict per battle and records it;
///   3. decide()  -> parsed battles, judge pairs and diagnostics.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "metareward/sdk/judge_rubric.hpp"
#include "metareward/sdk/types.hpp"

namespace mr::sdk {

/// One meta-judge comparison: judgment A shown first, judgment B second.
struct BattleRequest {
  std::string id;  ///< Unique within the iteration, e.g. "p12/r3/j1-j4".
  std::string prompt_id;
  std::string response_id;
  std::string judgment_a_id;
  std::string judgment_b_id;
  Conversation messages;  ///< What the meta-judge model is asked.
};

/// A battle with the meta-judge's verdict.
struct Battle {
  BattleRequest request;
  std::string verdict_text;  ///< Raw meta-judge output.
  /// +1: A (shown first) wins, -1: B wins, 0: verdict did not parse (or generation failed).
  int outcome = 0;
};

/// Everything a strategy decided for one iteration.
struct MetaJudgeResult {
  std::vector<Battle> battles;              ///< Every battle, outcome parsed, for recording.
  std::vector<PreferencePair> judge_pairs;  ///< role == PairRole::Judge.
  /// Diagnostics the paper tracks: "positional_bias" (share won by position A),
  /// "score_bias" (share won by the higher-scored judgment, among different-score battles),
  /// "verdict_parse_failure_rate", "elo_spread", plus any strategy-specific values.
  std::map<std::string, double> diagnostics;
  DropCounts drops;  ///< Counted reasons for skipped responses/pairs.
};

/// A meta-judge strategy. Created once per run from the `[meta_judge]` table; plan() and
/// decide() are called once per judge-training iteration, from the host's main thread.
/// Must be deterministic given inputs and `info.seed`.
class MetaJudgeStrategy {
 public:
  virtual ~MetaJudgeStrategy();

  /// Required. The battles to run for this iteration; empty for strategies that do not
  /// meta-judge. `rubric` rebuilds the judge prompt a judgment answered.
  virtual std::vector<BattleRequest> plan(const std::vector<PromptGroup>& groups,
                                          const JudgeRubric& rubric,
                                          const IterationInfo& info) = 0;

  /// Required. Parses verdicts and selects judge pairs. `battles` are plan()'s requests, in the
  /// same order, with verdict_text filled (outcome not yet parsed). `actor_pairs` is the number
  /// of actor pairs this iteration, for caps relative to it.
  virtual MetaJudgeResult decide(const std::vector<PromptGroup>& groups,
                                 const JudgeRubric& rubric,
                                 std::vector<Battle> battles,
                                 const IterationInfo& info,
                                 std::int64_t actor_pairs) = 0;
};

}  // namespace mr::sdk
