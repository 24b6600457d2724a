// What the evaluators read and keep: instruction sets (AlpacaEval / Arena-Hard / prompt rows),
// labelled preference pairs, and the durable, content-keyed record store that caches answers
// and verdicts across re-runs, resumes and iterations.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "metareward/sdk/host.hpp"
#include "metareward/sdk/types.hpp"

namespace mr::plugins::evaluators {

/// One evaluation instruction.
struct Instruction {
  std::string id;                     ///< `id` / `question_id`, else "line N".
  std::string text;                   ///< The instruction (user turn).
  std::optional<std::string> output;  ///< A reference output (AlpacaEval's `output`), if any.
  std::string generator;              ///< Who wrote `output` (AlpacaEval's `generator`).
  std::optional<double> difficulty;   ///< AlpacaEval's `instruction_difficulty`.
};

/// Rows of a file that were not used, with why (each "FILE:LINE: reason").
struct Drops {
  std::vector<std::string> reasons;
  std::size_t count() const { return reasons.size(); }
};

/// Reads a JSON array or JSONL file of instructions: AlpacaEval records (`instruction`,
/// `output`, `generator`, `instruction_difficulty`, `dataset`), Arena-Hard questions
/// (`question_id`, `turns: [{"content"}]`) or `{"prompt": "..."}` rows. A row without an
/// instruction, or one that does not parse, is dropped into `drops` naming its line; a file that
/// cannot be read, or yields no instruction, throws sdk::DataError naming it. Ids must be unique.
std::vector<Instruction> read_instructions(const std::filesystem::path& file, Drops& drops);

/// A preference pair with its label: `chosen` is the better response.
struct LabelledPair {
  std::string id;
  sdk::Conversation prompt;
  std::string chosen, rejected;
  /// Graded labels (e.g. the run's judge's mean scores), for Spearman; optional.
  std::optional<double> chosen_score, rejected_score;
};

/// Reads `{"prompt", "chosen", "rejected"}` rows (strings, or conversations as a run's
/// actor_pairs.jsonl holds them), with optional `id`, `chosen_score`, `rejected_score`. Bad rows
/// are dropped naming their line; an unreadable or empty file throws sdk::DataError.
std::vector<LabelledPair> read_labelled_pairs(const std::filesystem::path& file, Drops& drops);

/// A JSONL file of records, each with a string "key", loaded at construction and appended to
/// durably (each append written with one write(2) and fsync'd). A torn last line (a crash
/// mid-append) is cut off and logged; other unparsable lines are skipped and counted. Errors name
/// the file and strerror(errno). Not thread-safe.
class RecordStore {
 public:
  RecordStore(std::filesystem::path file, sdk::Logger& log);
  /// The record for `key`, or null.
  const nlohmann::json* find(const std::string& key) const;
  /// Appends `records` (each with "key") and makes them durable; later keys win on reload.
  void append(const std::vector<nlohmann::json>& records);
  std::size_t size() const { return records_.size(); }
  const std::filesystem::path& file() const { return file_; }

 private:
  std::filesystem::path file_;
  std::map<std::string, nlohmann::json> records_;
};

/// True when `text` is valid UTF-8 (JSON can hold it as a string).
bool valid_utf8(const std::string& text);
/// Stores `text` losslessly in `record`: as `field` when valid UTF-8, else as `field`_hex (a
/// model's raw bytes must come back from the cache exactly as generated).
void put_text(nlohmann::json& record, const std::string& field, const std::string& text);
/// The text put_text() stored; nullopt when neither field is present and well-formed.
std::optional<std::string> get_text(const nlohmann::json& record, const std::string& field);

/// A 128-bit content key (hex) of `parts`, stable across machines and runs.
std::string content_key(const std::vector<std::string>& parts);

/// Writes `rows` as JSONL to `file` atomically (temp file, fsync, rename); errors name the file.
void write_rows_atomic(const std::filesystem::path& file, const std::vector<nlohmann::json>& rows);

}  // namespace mr::plugins::evaluators
