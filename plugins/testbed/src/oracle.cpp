// The oracle additive 0-5 rubric (rules in oracle.hpp and the README).
#include "metareward/testbed/oracle.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <vector>

namespace mr::plugins::testbed {

namespace {

// Digit runs longer than this are read as this many digits' worth (never close to an answer).
constexpr std::size_t kMaxReadDigits = 15;

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_letter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
// Characters that may sit between the elements of one list: "7 19 42", "7, 19, 42".
bool is_list_separator(char c) {
  return is_space(c) || c == ',' || c == ';';
}

struct Integer {
  std::int64_t value = 0;
  int digits = 0;  // significant digits (0 has one)
  std::string text;
};

Integer read_integer(std::string_view s) {
  Integer n;
  n.text = std::string(s);
  std::size_t i = 0;
  while (i + 1 < s.size() && s[i] == '0') ++i;  // leading zeros are not significant
  const std::string_view sig = s.substr(i);
  n.digits = static_cast<int>(sig.size());
  for (std::size_t k = 0; k < sig.size() && k < kMaxReadDigits; ++k)
    n.value = n.value * 10 + (sig[k] - '0');
  return n;
}

// The response as a sequence of runs of integers (elements separated only by list separators).
std::vector<std::vector<Integer>> integer_runs(std::string_view text) {
  std::vector<std::vector<Integer>> runs;
  std::vector<Integer> current;
  std::size_t i = 0;
  while (i < text.size()) {
    if (is_digit(text[i])) {
      std::size_t j = i;
      while (j < text.size() && is_digit(text[j])) ++j;
      current.push_back(read_integer(text.substr(i, j - i)));
      i = j;
      continue;
    }
    if (!is_list_separator(text[i]) && !current.empty()) {
      runs.push_back(std::move(current));
      current.clear();
    }
    ++i;
  }
  if (!current.empty()) runs.push_back(std::move(current));
  return runs;
}

std::vector<std::string_view> words_of(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < text.size()) {
    if (!is_letter(text[i])) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < text.size() && is_letter(text[j])) ++j;
    words.push_back(text.substr(i, j - i));
    i = j;
  }
  return words;
}

std::optional<std::vector<std::int64_t>> parse_answer_list(std::string_view answer) {
  auto runs = integer_runs(answer);
  if (runs.size() != 1) return std::nullopt;
  std::vector<std::int64_t> out;
  for (const auto& n : runs[0]) out.push_back(n.value);
  return out;
}

int ladder(const std::array<bool, kOracleCriteria>& met) {
  int n = 0;
  while (n < kOracleCriteria && met[static_cast<std::size_t>(n)]) ++n;
  return n;
}

void grade_numeric(std::string_view answer, std::string_view response, OracleScore& s) {
  auto answer_runs = integer_runs(answer);
  auto runs = integer_runs(response);
  if (answer_runs.size() != 1 || answer_runs[0].size() != 1 || runs.empty()) return;
  const Integer& want = answer_runs[0][0];
  const Integer& got = runs.back().back();
  const std::int64_t tolerance = std::max<std::int64_t>(1, want.value / 10);
  s.candidate = got.text;
  s.met[0] = true;
  s.met[1] = got.digits <= static_cast<int>(kMaxReadDigits) &&
             std::abs(got.value - want.value) <= tolerance;
  s.met[2] = got.digits == want.digits;
  s.met[3] = got.digits == want.digits && got.value == want.value;
}

void grade_sort(std::string_view answer, std::string_view response, OracleScore& s) {
  auto want = parse_answer_list(answer);
  auto runs = integer_runs(response);
  if (!want || runs.empty()) return;
  const auto& run = runs.back();
  std::vector<std::int64_t> got;
  for (std::size_t i = 0; i < run.size(); ++i) {
    if (i > 0) s.candidate += ' ';
    s.candidate += run[i].text;
    // An overlong digit run can never equal an answer element.
    got.push_back(run[i].digits <= static_cast<int>(kMaxReadDigits) ? run[i].value : -1);
  }
  std::size_t same_position = 0;
  for (std::size_t i = 0; i < got.size() && i < want->size(); ++i)
    if (got[i] == (*want)[i]) ++same_position;
  auto got_sorted = got, want_sorted = *want;
  std::sort(got_sorted.begin(), got_sorted.end());
  std::sort(want_sorted.begin(), want_sorted.end());
  s.met[0] = true;
  s.met[1] = 2 * same_position >= want->size();
  s.met[2] = got_sorted == want_sorted;
  s.met[3] = got == *want;
}

std::array<bool, kOracleCriteria> grade_word(std::string_view want, std::string_view word) {
  std::array<bool, kOracleCriteria> met{};
  std::size_t prefix = 0;
  while (prefix < want.size() && prefix < word.size() && want[prefix] == word[prefix]) ++prefix;
  std::string a(want), b(word);
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  met[0] = true;
  met[1] = 2 * prefix >= want.size();
  met[2] = a == b;
  met[3] = want == word;
  return met;
}

void grade_reverse(std::string_view answer, std::string_view response, OracleScore& s) {
  int best = -1;
  for (std::string_view word : words_of(response)) {
    auto met = grade_word(answer, word);
    const int points = ladder(met);
    if (points > best) {
      best = points;
      s.met = met;
      s.candidate = std::string(word);
    }
  }
}

}  // namespace

std::string_view oracle_criterion_name(int index) {
  static constexpr std::array<std::string_view, kOracleCriteria> kNames = {
      "relevant", "substantial", "basic_elements", "correct", "concise"};
  if (index < 0 || index >= kOracleCriteria) return "unknown";
  return kNames[static_cast<std::size_t>(index)];
}

std::string_view trim_ascii(std::string_view text) {
  std::size_t b = 0, e = text.size();
  while (b < e && is_space(text[b])) ++b;
  while (e > b && is_space(text[e - 1])) --e;
  return text.substr(b, e - b);
}

OracleScore oracle_score(const TaskInstance& task, std::string_view response) {
  OracleScore s;
  if (task.answer.empty()) return s;  // nothing to grade against
  if (task.family == TaskFamily::Sort)
    grade_sort(task.answer, response, s);
  else if (task.family == TaskFamily::Reverse)
    grade_reverse(task.answer, response, s);
  else
    grade_numeric(task.answer, response, s);
  s.met[4] = trim_ascii(response) == task.answer;
  bool all = true;
  for (int k = 0; k < kOracleCriteria; ++k) {
    all = all && s.met[static_cast<std::size_t>(k)];
    s.awarded[static_cast<std::size_t>(k)] = all;
    if (all) ++s.score;
  }
  return s;
}

}  // namespace mr::plugins::testbed
