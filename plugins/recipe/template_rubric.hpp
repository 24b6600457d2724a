/// @file template_rubric.hpp
/// A judge rubric driven entirely by config: a prompt template with `{instruction}` and
/// `{response}` placeholders, an optional system prompt, a score regex and a score range. The
/// shipped rubrics (additive5, likert10) are this class with different schema defaults.
#pragma once

#include <string>

#include "metareward/sdk/config.hpp"
#include "metareward/sdk/judge_rubric.hpp"
#include "score_parser.hpp"
#include "text_util.hpp"

namespace mr::plugins::recipe {

/// Defaults a template rubric's schema is built from.
struct TemplateRubricDefaults {
  std::string template_text;  ///< Default `template` (must contain `{response}`).
  double min_score = 0.0;     ///< Default `min_score`.
  double max_score = 5.0;     ///< Default `max_score`.
  std::string scale_help;     ///< Describes the scale in the `template` help text.
};

/// Schema of a template rubric: template, system, instruction_turns, score_regex, min_score,
/// max_score.
mr::sdk::Schema template_rubric_schema(const TemplateRubricDefaults& defaults);

/// JudgeRubric over a validated config with the keys of template_rubric_schema(). All methods are
/// const and thread-safe.
class TemplateRubric : public mr::sdk::JudgeRubric {
 public:
  /// Throws mr::sdk::ConfigError (naming the key) when the template lacks `{response}`,
  /// min_score >= max_score or score_regex is invalid / has not exactly one capture group.
  explicit TemplateRubric(const mr::sdk::Config& config);

  /// [system prompt] + one user turn: the template with `{instruction}` (the rendered user
  /// conversation) and `{response}` substituted in one pass.
  mr::sdk::Conversation build_prompt(const mr::sdk::Conversation& prompt,
                                     std::string_view response) const override;
  mr::sdk::ParsedScore parse(std::string_view judgment) const override;
  mr::sdk::ScoreRange score_range() const override { return parser_.range(); }

 private:
  std::string template_;
  std::string system_;
  InstructionTurns turns_;
  ScoreParser parser_;
};

}  // namespace mr::plugins::recipe
