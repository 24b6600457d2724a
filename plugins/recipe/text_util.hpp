/// @file text_util.hpp
/// Small text helpers shared by the recipe plugins: one-pass template substitution, rendering a
/// conversation as an instruction, UTF-8 length and stable hashing/seeding.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "metareward/sdk/config.hpp"
#include "metareward/sdk/types.hpp"

namespace mr::plugins::recipe {

/// A `{name}` placeholder and the text that replaces it.
using Substitution = std::pair<std::string_view, std::string_view>;

/// Replaces every `{name}` of `subs` in `text` in a single left-to-right pass. Substituted text is
/// never scanned again, so a value that itself contains `{response}` or `</response>` is copied
/// verbatim. Braces that do not spell a known placeholder are kept as they are.
std::string substitute(std::string_view text, const std::vector<Substitution>& subs);

/// True when `text` contains the placeholder `{name}`.
bool has_placeholder(std::string_view text, std::string_view name);

/// How the user's conversation becomes the `{instruction}` text of a template.
enum class InstructionTurns {
  All,       ///< Every turn; a lone user turn is shown bare, otherwise as "User: ..." blocks.
  LastUser,  ///< Only the content of the last user turn.
};

/// Parses "all" / "last_user" (the values schema `choices` allow).
InstructionTurns parse_instruction_turns(const std::string& value);

/// Renders `prompt` as plain text for a template. Throws mr::sdk::DataError when `prompt` has no
/// user turn (there is nothing to judge against).
std::string render_instruction(const mr::sdk::Conversation& prompt, InstructionTurns turns);

/// Number of Unicode code points in UTF-8 `text` (continuation bytes are not counted).
std::int64_t utf8_length(std::string_view text);

/// 64-bit FNV-1a hash: stable across platforms and runs (std::hash is not).
std::uint64_t stable_hash(std::string_view text);

/// Uniform index in [0, n) drawn from `seed` (n > 0). Deterministic on every platform.
std::size_t seeded_index(std::uint64_t seed, std::size_t n);

/// Deterministic Fisher–Yates shuffle of `items` driven by `seed`.
template <class T>
void seeded_shuffle(std::vector<T>& items, std::uint64_t seed);

}  // namespace mr::plugins::recipe

// ---- template implementation ----
namespace mr::plugins::recipe {
/// Seed of step `step` of seeded_shuffle (derived, so steps are independent).
std::uint64_t shuffle_step_seed(std::uint64_t seed, std::uint64_t step);

template <class T>
void seeded_shuffle(std::vector<T>& items, std::uint64_t seed) {
  for (std::size_t i = items.size(); i > 1; --i) {
    std::size_t j = seeded_index(shuffle_step_seed(seed, i), i);
    std::swap(items[i - 1], items[j]);
  }
}
}  // namespace mr::plugins::recipe
