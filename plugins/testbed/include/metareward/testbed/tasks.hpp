/// @file tasks.hpp
/// The testbed's task families: short prompts with one exact answer, generated from a seeded
/// stream so that a seed always yields the same instances.
///
/// | family   | prompt                              | answer    |
/// |----------|-------------------------------------|-----------|
/// | sort     | `Sort ascending: 42 7 19`           | `7 19 42` |
/// | reverse  | `Reverse the word: hello`           | `olleh`   |
/// | add      | `Add the numbers: 42 + 17`          | `59`      |
/// | multiply | `Multiply the numbers: 7 * 12`      | `84`      |
/// | count    | `Count the letter 'a' in: banana`   | `3`       |
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "metareward/testbed/rng.hpp"

namespace mr::plugins::testbed {

/// One family of tasks with exact answers.
enum class TaskFamily { Sort, Reverse, Add, Multiply, Count };

/// Every family, in the order train/eval prompts cycle through them.
inline constexpr std::array<TaskFamily, 5> kAllFamilies = {TaskFamily::Sort, TaskFamily::Reverse,
                                                           TaskFamily::Add, TaskFamily::Multiply,
                                                           TaskFamily::Count};

/// Lowercase name used in data files: "sort", "reverse", "add", "multiply", "count".
std::string_view family_name(TaskFamily family);

/// The family named `name` (as family_name writes it), or nullopt.
std::optional<TaskFamily> family_from_name(std::string_view name);

/// Whether the family's answer is a single integer (add, multiply, count).
bool is_numeric_family(TaskFamily family);

/// One task: its prompt, its exact answer and the inputs the prompt was made from.
struct TaskInstance {
  TaskFamily family = TaskFamily::Add;
  std::string prompt;  ///< The user's message, e.g. "Add the numbers: 42 + 17".
  std::string answer;  ///< The exact answer text, e.g. "59"; a bare response equal to it scores 5.
  /// sort: the list as shown; add / multiply: the two operands; others: empty.
  std::vector<std::int64_t> numbers;
  std::string word;  ///< reverse / count: the word shown; others: empty.
  char letter = 0;   ///< count: the letter to count; others: 0.
};

/// Draws one instance of `family` from `rng`. The ranges are small on purpose: a seed model of
/// under a million parameters must solve (and so be able to check) a good share of them, or
/// its judge can only grade the form of an answer (docs/results.md):
/// - sort: 3–5 digits 0..9 (repeats allowed);
/// - reverse: a word of 3–6 random lowercase letters;
/// - add, multiply: two digits 0..9 (a table of 100 facts each);
/// - count: a word of 3–6 random lowercase letters and a letter that is one of the word's
///   letters with probability 3/4, otherwise any letter (so 0 is a possible answer).
TaskInstance generate_instance(TaskFamily family, Rng& rng);

/// Recognises a prompt in one of the formats above (exactly as generate_instance writes them)
/// and rebuilds the instance with its computed answer; nullopt for any other text. Lets the
/// oracle grade prompts that arrive without their answer.
std::optional<TaskInstance> parse_prompt(std::string_view prompt);

/// The instance for a data row's (task, prompt, answer) triple. Throws mr::sdk::DataError when
/// the task name is unknown, the prompt is not of that family or `answer` is not its answer.
TaskInstance instance_from_row(std::string_view task,
                               std::string_view prompt,
                               std::string_view answer);

}  // namespace mr::plugins::testbed
