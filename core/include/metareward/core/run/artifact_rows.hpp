/// @file artifact_rows.hpp
/// The row codecs of a run's artifacts (docs/run_artifacts.md): how each stage's results become
/// the JSONL rows of iter_T/*.jsonl, and how the next stage reads them back. One place for every
/// row schema, so the writer and the readers cannot drift apart.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "metareward/core/prompt_pool.hpp"
#include "metareward/sdk/judge_rubric.hpp"
#include "metareward/sdk/meta_judge.hpp"
#include "metareward/sdk/model_backend.hpp"
#include "metareward/sdk/types.hpp"

namespace mr::core::rows {

using json = nlohmann::json;

// ---- values ----------------------------------------------------------------------------------

/// [{"role", "content"}, ...].
json conversation_to_json(const sdk::Conversation& c);
/// Inverse of conversation_to_json; throws json::exception on a malformed array.
sdk::Conversation conversation_from_json(const json& a);
/// Code points of UTF-8 text (what length_chars counts).
std::int64_t utf8_length(const std::string& s);
/// "stop", "length", "error".
const char* finish_name(sdk::FinishReason r);
/// The number, or null.
json opt_number(const std::optional<double>& v);
/// Mean and population standard deviation; 0 for an empty list.
double mean(const std::vector<double>& v);
double stddev(const std::vector<double>& v);

/// Every row of a complete JSONL artifact; DataError "FILE:LINE: not valid JSON (...)".
std::vector<json> read_artifact(const std::filesystem::path& file);

// ---- writing ---------------------------------------------------------------------------------

/// A prompts.jsonl row.
std::string prompt_row(const std::string& prompt_id,
                       const sdk::Conversation& messages,
                       const std::string& source);
/// The responses.jsonl rows of one actor request: one per completion ("PROMPT/rK"), or one
/// error row with a null response_id.
void response_rows(const sdk::GenerationResult& r, std::vector<std::string>& lines);
/// "RESPONSE/jK".
std::string judgment_id(const std::string& response_id, std::size_t sample);
/// The judgments.jsonl rows of one judge request; `parse` gives each completion's score (the
/// rubric's parse() through its guard).
void judgment_rows(
    const std::string& prompt_id,
    const sdk::GenerationResult& r,
    const std::function<sdk::ParsedScore(std::size_t sample, const std::string& text)>& parse,
    std::vector<std::string>& lines);
/// A meta_judgments.jsonl row (outcome added later by write_battles).
json battle_row(const sdk::BattleRequest& b, const sdk::GenerationResult& r);
/// An actor_pairs.jsonl / judge_pairs.jsonl row (conversational prompt/chosen/rejected).
std::string pair_json(const sdk::PreferencePair& p);
/// Writes a pairs file atomically.
void write_pairs(const std::filesystem::path& file, const std::vector<sdk::PreferencePair>& pairs);

// ---- reading back ----------------------------------------------------------------------------

/// responses.jsonl as prompt groups, in file order (prompt ids must be in `prompt_by_id`).
std::vector<sdk::PromptGroup> read_responses(
    const std::filesystem::path& file,
    const std::map<std::string, const PoolPrompt*>& prompt_by_id);
/// Attaches judgments.jsonl to `groups` (mean of the valid scores per response) and returns the
/// judge metrics of metrics.json.
json read_judgments(const std::filesystem::path& file, std::vector<sdk::PromptGroup>& groups);
/// The actor metrics of metrics.json, from responses.jsonl.
json actor_metrics(const std::filesystem::path& file);
/// meta_judgments.jsonl as battles of `plan` (same order; DataError when they do not match);
/// `rows` receives the rows for write_battles.
std::vector<sdk::Battle> read_battles(const std::filesystem::path& file,
                                      const std::vector<sdk::BattleRequest>& plan,
                                      std::vector<json>& rows);
/// Rewrites meta_judgments.jsonl: `rows` with each battle's outcome added.
void write_battles(const std::filesystem::path& file,
                   const std::vector<sdk::Battle>& battles,
                   const std::vector<json>& rows);
/// Pair counts and mean lengths (and scores, with `scores`) for metrics.json.
json pair_metrics(const std::vector<sdk::PreferencePair>& pairs, bool scores);

/// Writes train_metrics.jsonl from the streamed rows of `partial`: one row per step (the last
/// one written for a step wins), torn lines from a crash skipped; removes `partial`.
void finalize_train_metrics(const std::filesystem::path& partial,
                            const std::filesystem::path& file);

}  // namespace mr::core::rows
