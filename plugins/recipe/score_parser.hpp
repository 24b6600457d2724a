/// @file score_parser.hpp
/// Parsers for judge scores ("Score: 4") and meta-judge verdicts ("Winner: Judgement A"). Both
/// take the LAST match of a case-insensitive PCRE2 pattern with exactly one capture group, so a
/// judge that echoes the format line before answering is read correctly.
#pragma once

#include <string>
#include <string_view>

#include "metareward/sdk/judge_rubric.hpp"
#include "regex_pattern.hpp"

namespace mr::plugins::recipe {

/// Built-in score pattern. Matches `score` (not preceded by a letter or digit, so `__Score__`
/// counts but `underscore` does not) + optional markdown (`*`, `_`, `` ` ``) +
/// `:` + optional markdown/brackets, and captures an optional signed decimal. A `Score:` with no
/// number still matches (with an empty capture) so that the last `Score:` line decides:
/// `Score: 4` ... `Score: N/A` fails instead of silently using the 4.
inline constexpr const char* kDefaultScorePattern =
    R"((?:^|[^a-z0-9])score[\s*_`]*:[\s*_`'"\[(]*([-+]?(?:\d+(?:\.\d+)?|\.\d+))?)";

/// Built-in verdict pattern. Matches `winner` + optional markdown + `:` and captures the letter of
/// `Judgement A`/`Judgment B` (either spelling). The template's own format line
/// `Winner: [Judgement A | Judgement B]` matches with an empty capture, i.e. no verdict.
inline constexpr const char* kDefaultVerdictPattern =
    R"((?:^|[^a-z0-9])winner[\s*_`]*:[\s*_`'"\[(]*(?:judge?ment[\s*_`]*([ab])\b(?!\s*\|))?)";

/// Extracts a judge score. Immutable after construction; parse() is thread-safe.
class ScoreParser {
 public:
  /// `pattern`'s one group captures the number; `range` is inclusive.
  ScoreParser(Pattern pattern, mr::sdk::ScoreRange range);
  /// The built-in pattern with `range`.
  explicit ScoreParser(mr::sdk::ScoreRange range);

  /// Score of the last match, or an error ("no 'Score:' line", "last 'Score:' has no number",
  /// "5.5 outside [0, 5]"). Never returns 0 or -1 for an unparseable judgment.
  mr::sdk::ParsedScore parse(std::string_view judgment) const;

  mr::sdk::ScoreRange range() const { return range_; }

 private:
  Pattern pattern_;
  mr::sdk::ScoreRange range_;
};

/// Extracts a meta-judge verdict. Immutable after construction; parse() is thread-safe.
class VerdictParser {
 public:
  /// `pattern`'s one group must capture "A" or "B" (either case).
  explicit VerdictParser(Pattern pattern);
  /// The built-in pattern.
  VerdictParser();

  /// +1 when the last verdict names judgment A (shown first), -1 for B, 0 when the text has no
  /// parseable verdict (no `Winner:`, or the last one names neither).
  int parse(std::string_view verdict) const;

 private:
  Pattern pattern_;
};

}  // namespace mr::plugins::recipe
