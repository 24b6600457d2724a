/// @file judge_rubric.hpp
/// The judge rubric plugin kind: how a response is put to the judge and how the judge's verdict
/// becomes a score. Text-level; no libtorch.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "metareward/sdk/types.hpp"

namespace mr::sdk {

/// Inclusive range of valid scores (e.g. 0..5 for the additive rubric).
struct ScoreRange {
  double min = 0.0;
  double max = 5.0;
};

/// Result of parsing one judgment. Exactly one of `score` / `error` is set: a judgment that does
/// not parse is "no score" with a reason, never 0 or -1.
struct ParsedScore {
  std::optional<double> score;
  std::string error;  ///< Why parsing failed (e.g. "no 'Score:' line", "5.5 outside [0, 5]").
};

/// Builds judge prompts and parses judge outputs. Created once per run from the `[judge_rubric]`
/// table. All methods are const and must be thread-safe (the host may call them concurrently).
class JudgeRubric {
 public:
  virtual ~JudgeRubric();

  /// Required. The judge conversation for `response` to `prompt` (the user's conversation).
  /// Must be robust to responses containing the template's own markers.
  virtual Conversation build_prompt(const Conversation& prompt,
                                    std::string_view response) const = 0;

  /// Required. Extracts the score from a judge output.
  virtual ParsedScore parse(std::string_view judgment) const = 0;

  /// Required. The range parse() accepts.
  virtual ScoreRange score_range() const = 0;
};

}  // namespace mr::sdk
