/// @file jsonl.hpp
/// JSONL input and output for the host: prompts, preference pairs, SFT conversations. Bad rows
/// are counted, logged with file:line and skipped; they never crash the reader or vanish silently.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <istream>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "metareward/sdk/types.hpp"

namespace mr::core {

/// Counted reasons for skipped rows ("line 12: 'messages' is not an array" -> counted under
/// the first words of the reason).
struct JsonlStats {
  std::int64_t rows = 0;  ///< Non-blank lines read.
  std::int64_t accepted = 0;
  std::map<std::string, std::int64_t> dropped;  ///< reason -> count
  std::int64_t dropped_total() const;
  /// "1200 rows, 1198 accepted, 2 dropped (not valid JSON: 1, no prompt: 1)".
  std::string summary() const;
};

/// A prompt row: {"prompt": str} | {"messages": [...]} | {"instruction": str, "input"?: str},
/// with an optional "id" (else "<source>:<line>").
struct PromptRow {
  std::string id;
  sdk::Conversation messages;
  std::int64_t line = 0;
};

/// A preference pair row: {"prompt" | "messages", "chosen", "rejected"}; "prompt" is a string or
/// (conversational format) a message list; chosen/rejected are strings or message lists whose
/// last message is the assistant's.
struct PairRow {
  std::string id;
  sdk::Conversation prompt;
  std::string chosen;
  std::string rejected;
  /// "chosen_truncated" / "rejected_truncated" of a pair row: the response was cut at
  /// max_new_tokens (trained without an end-of-turn token).
  bool chosen_truncated = false;
  bool rejected_truncated = false;
};

/// Reads prompt rows from `in`; `source` names the input in messages.
std::vector<PromptRow> read_prompt_rows(std::istream& in,
                                        const std::string& source,
                                        JsonlStats& stats);
/// Reads preference pairs.
std::vector<PairRow> read_pair_rows(std::istream& in, const std::string& source, JsonlStats& stats);
/// Reads SFT conversations {"messages": [...]}: one example per assistant turn (the turns before
/// it are the prompt), so every assistant turn carries loss and no other text does.
std::vector<PairRow> read_sft_rows(std::istream& in, const std::string& source, JsonlStats& stats);
/// Reads {"prompt" | "messages", "completion"} rows for scoring; completion in `chosen`.
std::vector<PairRow> read_score_rows(std::istream& in,
                                     const std::string& source,
                                     JsonlStats& stats);

/// Pair rows as the pairs an optimizer trains on (id = prompt_id = the row id; SFT rows leave
/// `rejected` empty; a truncated side is marked incomplete).
std::vector<sdk::PreferencePair> to_preference_pairs(std::vector<PairRow> rows);

/// Opens `path` for reading ("-" = stdin); throws sdk::DataError naming the file.
std::unique_ptr<std::istream> open_input(const std::string& path);

/// Writes `lines` (each one JSON document) to `path` atomically: temp file in the same
/// directory, fsync, rename. "-" writes to stdout.
void write_lines_atomic(const std::string& path, const std::vector<std::string>& lines);

/// Converts a conversation to a JSON array text [{"role":..,"content":..}, ...].
std::string conversation_json(const sdk::Conversation& conversation);

}  // namespace mr::core
