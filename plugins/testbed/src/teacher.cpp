// The imperfect teacher: seeded right / plausibly wrong / verbose answers.
#include "metareward/testbed/teacher.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

namespace mr::plugins::testbed {

namespace {

// Chatty wrappers of a verbose answer ({} = the answer). No digits, so the numeric oracle's
// "last integer" is still the answer; kept short so a tiny byte-level model can learn them.
constexpr std::array<std::string_view, 5> kWrappers = {
    "Sure! The answer is {}. Let me know if you need more help.",
    "The answer is {}.",
    "Here you go: {}. Hope this helps!",
    "Great question! The result is {}.",
    "Let me think... it is {}. I hope that helps!",
};

// Attempts at a random mistake before the deterministic fallback.
constexpr int kMistakeAttempts = 16;

std::string join(const std::vector<std::int64_t>& xs) {
  std::string out;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    if (i > 0) out += ' ';
    out += std::to_string(xs[i]);
  }
  return out;
}

std::vector<std::int64_t> split_numbers(std::string_view text) {
  std::vector<std::int64_t> out;
  std::int64_t v = 0;
  bool in_number = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      v = v * 10 + (c - '0');
      in_number = true;
    } else if (in_number) {
      out.push_back(v);
      v = 0;
      in_number = false;
    }
  }
  if (in_number) out.push_back(v);
  return out;
}

std::string wrong_sort(const TaskInstance& task, Rng& rng) {
  const std::vector<std::int64_t> sorted = split_numbers(task.answer);
  if (sorted.empty()) return "0";
  for (int attempt = 0; attempt < kMistakeAttempts; ++attempt) {
    std::vector<std::int64_t> xs = sorted;
    switch (rng.uniform_below(4)) {
      case 0:  // swapped neighbours
        if (xs.size() >= 2) {
          const auto i = static_cast<std::size_t>(rng.uniform_below(xs.size() - 1));
          std::swap(xs[i], xs[i + 1]);
        }
        break;
      case 1:  // dropped element
        if (xs.size() >= 2)
          xs.erase(xs.begin() + static_cast<std::ptrdiff_t>(rng.uniform_below(xs.size())));
        break;
      case 2:  // the input order echoed
        if (!task.numbers.empty()) xs = task.numbers;
        break;
      default: {  // one element off by one
        auto& x = xs[static_cast<std::size_t>(rng.uniform_below(xs.size()))];
        x = (x == 0 || rng.bernoulli(0.5)) ? x + 1 : x - 1;
        break;
      }
    }
    if (std::string s = join(xs); s != task.answer) return s;
  }
  std::vector<std::int64_t> xs = sorted;
  xs.back() += 1;
  return join(xs);
}

std::string wrong_reverse(const TaskInstance& task, Rng& rng) {
  const std::string& r = task.answer;
  if (r.empty()) return "a";
  for (int attempt = 0; attempt < kMistakeAttempts; ++attempt) {
    std::string w = r;
    switch (rng.uniform_below(4)) {
      case 0:  // swapped neighbours
        if (w.size() >= 2) {
          const auto i = static_cast<std::size_t>(rng.uniform_below(w.size() - 1));
          std::swap(w[i], w[i + 1]);
        }
        break;
      case 1:  // dropped letter
        if (w.size() >= 2) w.erase(static_cast<std::size_t>(rng.uniform_below(w.size())), 1);
        break;
      case 2:  // the word echoed unreversed
        if (!task.word.empty()) w = task.word;
        break;
      default: {  // one letter replaced by another
        auto& c = w[static_cast<std::size_t>(rng.uniform_below(w.size()))];
        c = static_cast<char>('a' + (c - 'a' + 1 + static_cast<int>(rng.uniform_below(25))) % 26);
        break;
      }
    }
    if (w != r) return w;
  }
  std::string w = r;
  w[0] = static_cast<char>(w[0] == 'z' ? 'a' : w[0] + 1);
  return w;
}

std::string wrong_number(const TaskInstance& task, Rng& rng) {
  const std::vector<std::int64_t> parsed = split_numbers(task.answer);
  const std::int64_t v = parsed.empty() ? 0 : parsed.front();
  const bool operands = task.numbers.size() == 2;
  const std::int64_t a = operands ? task.numbers[0] : 0, b = operands ? task.numbers[1] : 0;
  for (int attempt = 0; attempt < kMistakeAttempts; ++attempt) {
    const int sign = rng.bernoulli(0.5) ? 1 : -1;
    std::int64_t w = v + sign;  // off by one (also the fallback of the inapplicable cases)
    switch (rng.uniform_below(3)) {
      case 0:
        break;
      case 1:
        if (task.family == TaskFamily::Add) w = v + 10 * sign;  // carry slip
        if (task.family == TaskFamily::Multiply && operands)
          w = v + (rng.bernoulli(0.5) ? a : b) * sign;  // one group too many / too few
        if (task.family == TaskFamily::Count && !task.word.empty())
          w = static_cast<std::int64_t>(task.word.size());  // counted every letter
        break;
      default:
        if (task.family == TaskFamily::Multiply && operands) w = a + b;  // added instead
        if (task.family == TaskFamily::Add && operands) w = a > b ? a - b : b - a;
        break;
    }
    if (w >= 0 && w != v) return std::to_string(w);
  }
  return std::to_string(v + 1);
}

}  // namespace

std::string wrong_answer(const TaskInstance& task, Rng& rng) {
  switch (task.family) {
    case TaskFamily::Sort:
      return wrong_sort(task, rng);
    case TaskFamily::Reverse:
      return wrong_reverse(task, rng);
    default:
      return wrong_number(task, rng);
  }
}

std::string wrap_verbose(std::string_view answer, Rng& rng) {
  const std::string_view wrapper =
      kWrappers[static_cast<std::size_t>(rng.uniform_below(kWrappers.size()))];
  const std::size_t at = wrapper.find("{}");
  std::string out(wrapper.substr(0, at));
  out += answer;
  out += wrapper.substr(at + 2);
  return out;
}

TeacherAnswer teacher_answer(const TaskInstance& task, const TeacherOptions& options, Rng& rng) {
  TeacherAnswer t;
  t.correct = rng.bernoulli(options.p_correct);
  t.text = t.correct ? task.answer : wrong_answer(task, rng);
  t.verbose = rng.bernoulli(options.p_verbose);
  if (t.verbose) t.text = wrap_verbose(t.text, rng);
  return t;
}

}  // namespace mr::plugins::testbed
