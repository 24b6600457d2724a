// Task families: seeded generation and the inverse, parsing a prompt back into its instance.
#include "metareward/testbed/tasks.hpp"

#include <algorithm>

#include "metareward/sdk/error.hpp"

namespace mr::plugins::testbed {

namespace {

constexpr std::string_view kSortPrefix = "Sort ascending: ";
constexpr std::string_view kReversePrefix = "Reverse the word: ";
constexpr std::string_view kAddPrefix = "Add the numbers: ";
constexpr std::string_view kMultiplyPrefix = "Multiply the numbers: ";
constexpr std::string_view kCountPrefix = "Count the letter '";
constexpr std::string_view kCountMiddle = "' in: ";

// Limits of what parse_prompt accepts (wider than what generate_instance draws, so that a
// hand-written prompt of a known format is still graded).
constexpr std::size_t kMaxDigits = 6;
constexpr std::size_t kMaxListLength = 16;
constexpr std::size_t kMaxWordLength = 32;

std::string join(const std::vector<std::int64_t>& xs) {
  std::string out;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    if (i > 0) out += ' ';
    out += std::to_string(xs[i]);
  }
  return out;
}

std::string random_word(Rng& rng) {
  const auto length = static_cast<std::size_t>(rng.uniform_int(3, 6));
  std::string w(length, 'a');
  for (char& c : w) c = static_cast<char>('a' + rng.uniform_below(26));
  return w;
}

std::int64_t count_letter(std::string_view word, char letter) {
  return static_cast<std::int64_t>(std::count(word.begin(), word.end(), letter));
}

// A canonical non-negative integer ("0" or no leading zero), at most kMaxDigits digits.
std::optional<std::int64_t> parse_canonical_uint(std::string_view s) {
  if (s.empty() || s.size() > kMaxDigits || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  std::int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

bool is_lower_word(std::string_view s) {
  if (s.empty() || s.size() > kMaxWordLength) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

// "a OP b" with single spaces around OP.
std::optional<std::pair<std::int64_t, std::int64_t>> parse_binary(std::string_view s,
                                                                  std::string_view op) {
  const std::string sep = " " + std::string(op) + " ";
  const std::size_t at = s.find(sep);
  if (at == std::string_view::npos) return std::nullopt;
  auto a = parse_canonical_uint(s.substr(0, at));
  auto b = parse_canonical_uint(s.substr(at + sep.size()));
  if (!a || !b) return std::nullopt;
  return std::make_pair(*a, *b);
}

TaskInstance make_sort(std::vector<std::int64_t> numbers) {
  TaskInstance t;
  t.family = TaskFamily::Sort;
  t.prompt = std::string(kSortPrefix) + join(numbers);
  t.numbers = std::move(numbers);
  std::vector<std::int64_t> sorted = t.numbers;
  std::sort(sorted.begin(), sorted.end());
  t.answer = join(sorted);
  return t;
}

TaskInstance make_reverse(std::string word) {
  TaskInstance t;
  t.family = TaskFamily::Reverse;
  t.prompt = std::string(kReversePrefix) + word;
  t.answer.assign(word.rbegin(), word.rend());
  t.word = std::move(word);
  return t;
}

TaskInstance make_binary(TaskFamily family, std::int64_t a, std::int64_t b) {
  TaskInstance t;
  t.family = family;
  const bool add = family == TaskFamily::Add;
  t.prompt = std::string(add ? kAddPrefix : kMultiplyPrefix) + std::to_string(a) +
             (add ? " + " : " * ") + std::to_string(b);
  t.answer = std::to_string(add ? a + b : a * b);
  t.numbers = {a, b};
  return t;
}

TaskInstance make_count(std::string word, char letter) {
  TaskInstance t;
  t.family = TaskFamily::Count;
  t.prompt = std::string(kCountPrefix) + letter + std::string(kCountMiddle) + word;
  t.answer = std::to_string(count_letter(word, letter));
  t.word = std::move(word);
  t.letter = letter;
  return t;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

std::string_view family_name(TaskFamily family) {
  switch (family) {
    case TaskFamily::Sort:
      return "sort";
    case TaskFamily::Reverse:
      return "reverse";
    case TaskFamily::Add:
      return "add";
    case TaskFamily::Multiply:
      return "multiply";
    case TaskFamily::Count:
      return "count";
  }
  return "unknown";
}

std::optional<TaskFamily> family_from_name(std::string_view name) {
  for (TaskFamily f : kAllFamilies)
    if (family_name(f) == name) return f;
  return std::nullopt;
}

bool is_numeric_family(TaskFamily family) {
  return family == TaskFamily::Add || family == TaskFamily::Multiply || family == TaskFamily::Count;
}

TaskInstance generate_instance(TaskFamily family, Rng& rng) {
  switch (family) {
    case TaskFamily::Sort: {
      std::vector<std::int64_t> numbers(static_cast<std::size_t>(rng.uniform_int(3, 5)));
      for (auto& x : numbers) x = rng.uniform_int(0, 9);
      return make_sort(std::move(numbers));
    }
    case TaskFamily::Reverse:
      return make_reverse(random_word(rng));
    case TaskFamily::Add:
    case TaskFamily::Multiply: {
      const std::int64_t a = rng.uniform_int(0, 9);
      return make_binary(family, a, rng.uniform_int(0, 9));
    }
    case TaskFamily::Count: {
      std::string word = random_word(rng);
      const char letter = rng.bernoulli(0.75)
                              ? word[static_cast<std::size_t>(rng.uniform_below(word.size()))]
                              : static_cast<char>('a' + rng.uniform_below(26));
      return make_count(std::move(word), letter);
    }
  }
  throw mr::sdk::DataError("generate_instance: unknown task family");
}

std::optional<TaskInstance> parse_prompt(std::string_view prompt) {
  if (starts_with(prompt, kSortPrefix)) {
    std::string_view rest = prompt.substr(kSortPrefix.size());
    std::vector<std::int64_t> numbers;
    while (true) {
      const std::size_t space = rest.find(' ');
      auto x = parse_canonical_uint(rest.substr(0, space));
      if (!x || numbers.size() == kMaxListLength) return std::nullopt;
      numbers.push_back(*x);
      if (space == std::string_view::npos) break;
      rest = rest.substr(space + 1);
    }
    return make_sort(std::move(numbers));
  }
  if (starts_with(prompt, kReversePrefix)) {
    std::string_view word = prompt.substr(kReversePrefix.size());
    if (!is_lower_word(word)) return std::nullopt;
    return make_reverse(std::string(word));
  }
  if (starts_with(prompt, kAddPrefix)) {
    auto ab = parse_binary(prompt.substr(kAddPrefix.size()), "+");
    if (!ab) return std::nullopt;
    return make_binary(TaskFamily::Add, ab->first, ab->second);
  }
  if (starts_with(prompt, kMultiplyPrefix)) {
    auto ab = parse_binary(prompt.substr(kMultiplyPrefix.size()), "*");
    if (!ab) return std::nullopt;
    return make_binary(TaskFamily::Multiply, ab->first, ab->second);
  }
  if (starts_with(prompt, kCountPrefix)) {
    std::string_view rest = prompt.substr(kCountPrefix.size());
    if (rest.size() < 1 + kCountMiddle.size() || rest[0] < 'a' || rest[0] > 'z' ||
        rest.substr(1, kCountMiddle.size()) != kCountMiddle)
      return std::nullopt;
    std::string_view word = rest.substr(1 + kCountMiddle.size());
    if (!is_lower_word(word)) return std::nullopt;
    return make_count(std::string(word), rest[0]);
  }
  return std::nullopt;
}

TaskInstance instance_from_row(std::string_view task,
                               std::string_view prompt,
                               std::string_view answer) {
  auto family = family_from_name(task);
  if (!family)
    throw mr::sdk::DataError("unknown testbed task '" + std::string(task) +
                             "' (expected sort, reverse, add, multiply or count)");
  auto instance = parse_prompt(prompt);
  if (!instance || instance->family != *family)
    throw mr::sdk::DataError("prompt '" + std::string(prompt) + "' is not a '" + std::string(task) +
                             "' task prompt");
  if (instance->answer != answer)
    throw mr::sdk::DataError("prompt '" + std::string(prompt) + "': answer '" +
                             std::string(answer) + "' is wrong (expected '" + instance->answer +
                             "')");
  return *instance;
}

}  // namespace mr::plugins::testbed
