/// @file oracle.hpp
/// The oracle additive 0–5 rubric: the paper's five judge criteria (method.md §3) made exact for
/// tasks with a known answer. One point per criterion:
///
/// 1. relevant — the response has the answer's form (an integer; for reverse, a word);
/// 2. substantial part — the graded candidate is close (see below);
/// 3. basic elements — the candidate has the answer's parts (same multiset / digit count);
/// 4. fully correct — the candidate equals the answer;
/// 5. no extraneous text — the whole response, trimmed of surrounding whitespace, is the answer.
///
/// The criteria form a ladder, as the paper's rubric intends (each describes a better answer than
/// the one before): a point is awarded only when every lower criterion is met too. So a verbose
/// correct answer scores 4, the bare correct answer 5, a close but wrong bare answer 2 or 3, an
/// answer of the wrong form 0. The README has the per-family table.
///
/// The candidate graded for criteria 2–4: for add / multiply / count the last integer of the
/// response (a final answer, so listing several guesses earns nothing); for sort the last run of
/// integers separated only by spaces or commas; for reverse the word (run of ASCII letters) that
/// earns the most points, since the filler around a word answer is made of words too.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "metareward/testbed/tasks.hpp"

namespace mr::plugins::testbed {

/// Number of oracle criteria (and the maximum score).
inline constexpr int kOracleCriteria = 5;

/// Short name of criterion `index` (0-based): "relevant", "substantial", "basic_elements",
/// "correct", "concise".
std::string_view oracle_criterion_name(int index);

/// The oracle's verdict on one response.
struct OracleScore {
  /// met[k]: criterion k+1's own condition holds for the graded candidate / response.
  std::array<bool, kOracleCriteria> met{};
  /// awarded[k]: the point of criterion k+1 is given (met[0..k] all hold).
  std::array<bool, kOracleCriteria> awarded{};
  int score = 0;          ///< Points awarded, 0..5.
  std::string candidate;  ///< The text graded for criteria 2–4; empty when none was found.

  /// Criterion 4: the exact answer is given (possibly with extra text).
  bool correct() const { return awarded[3]; }
  /// Criterion 5: the response is exactly the answer.
  bool exact() const { return awarded[4]; }
};

/// Grades `response` against `task`'s answer. Never throws; any text is a valid input.
OracleScore oracle_score(const TaskInstance& task, std::string_view response);

/// `text` without leading and trailing ASCII whitespace.
std::string_view trim_ascii(std::string_view text);

}  // namespace mr::plugins::testbed
