/// @file types.hpp
/// Plain value types that flow between the host and plugins: chat messages, sampling parameters,
/// generation requests and completions, judged responses and preference pairs with provenance.
/// All are copyable aggregates with no behaviour; no libtorch.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mr::sdk {

/// One chat turn. `role` is "system", "user" or "assistant".
struct ChatMessage {
  std::string role;
  std::string content;
  friend bool operator==(const ChatMessage& a, const ChatMessage& b) {
    return a.role == b.role && a.content == b.content;
  }
};

/// A conversation, oldest message first.
using Conversation = std::vector<ChatMessage>;

/// Sampling settings of one generation request. temperature 0 means greedy.
struct SamplingParams {
  double temperature = 0.8;
  double top_p = 0.95;
  int top_k = 0;  ///< 0 disables top-k.
  int max_new_tokens = 512;
  std::vector<std::string> stop;  ///< Stop strings (not included in the returned text).
};

/// A request to continue a conversation as the assistant, `n` times.
struct GenerationRequest {
  std::string id;         ///< Caller's id, echoed in the result.
  Conversation messages;  ///< Rendered with the backend's chat template + generation prompt.
  SamplingParams sampling;
  int n = 1;  ///< Samples to draw; backends should share the prompt's prefill.
  /// Seed of sample 0; sample i uses a seed derived from (seed, i). Same seed -> same text on the
  /// same machine, regardless of batching.
  std::uint64_t seed = 0;
  /// When non-empty, the prompt verbatim (no chat template; `messages` is ignored), as
  /// OpenAI's /v1/completions sends it. A backend that cannot take raw text
  /// (ModelBackend::supports_prompt_text() false) fails such a request.
  std::string prompt_text;
};

/// Why a completion ended.
enum class FinishReason { Stop, Length, Error };

/// One sampled continuation.
struct Completion {
  std::string text;
  std::int64_t tokens = 0;  ///< Generated tokens (excluding the stop token/string).
  FinishReason finish_reason = FinishReason::Stop;
};

/// The `n` completions of one request, in sample order. `error` is non-empty when the request
/// failed as a whole (then `completions` may be empty); the host counts and logs such failures.
struct GenerationResult {
  std::string request_id;
  std::vector<Completion> completions;
  std::string error;
  /// Tokens of the rendered prompt, -1 when the backend does not know (usage counts).
  std::int64_t prompt_tokens = -1;
};

/// The position of the current iteration within a run.
struct IterationInfo {
  int iteration = 1;  ///< 1-based.
  int total_iterations = 1;
  std::uint64_t seed = 0;  ///< Seed for this (iteration, stage); plugins derive their RNGs from it.
};

/// One judge output for a response.
struct Judgment {
  std::string id;               ///< Unique within the run, e.g. "p12/r3/j7".
  std::string text;             ///< Full judge output (justification + score line).
  std::optional<double> score;  ///< Parsed score; nullopt when the text did not parse.
};

/// One actor response with its judgments.
struct ResponseCandidate {
  std::string id;  ///< Unique within the run, e.g. "p12/r3".
  std::string text;
  std::int64_t length_chars = 0;    ///< Unicode code points of `text`.
  std::int64_t length_tokens = -1;  ///< Tokens, -1 when the backend cannot count.
  /// Why generation ended. Length: cut at max_new_tokens, not a complete answer (pair policies
  /// skip such responses unless told otherwise).
  FinishReason finish_reason = FinishReason::Stop;
  std::vector<Judgment> judgments;
  /// Mean of the valid judgment scores; nullopt when no judgment parsed.
  std::optional<double> mean_score;
};

/// All responses to one prompt.
struct PromptGroup {
  std::string prompt_id;
  Conversation prompt;
  std::vector<ResponseCandidate> responses;
};

/// Which role a preference pair trains.
enum class PairRole { Actor, Judge };

/// A chosen/rejected pair. `prompt` is the conversation up to the assistant turn: the user prompt
/// for actor pairs, the judge conversation for judge pairs.
struct PreferencePair {
  std::string id;
  PairRole role = PairRole::Actor;
  Conversation prompt;
  std::string chosen;
  std::string rejected;
  // Provenance: enough ids to trace the pair back to its prompt, responses and judgments.
  std::string prompt_id;
  std::string chosen_id;
  std::string rejected_id;
  std::optional<double> chosen_score;  ///< Mean judge score (actor) or Elo (judge).
  std::optional<double> rejected_score;
  std::map<std::string, std::string> meta;  ///< Free-form extra provenance (policy-specific).
  /// False for a response cut at max_new_tokens: it did not end, so the trainer appends no
  /// end-of-turn token after it (unless the optimizer is told to).
  bool chosen_complete = true;
  bool rejected_complete = true;
};

/// Counted reasons for dropping candidates ("all_scores_equal" -> 12); the host logs and records
/// them so no input disappears silently.
using DropCounts = std::map<std::string, std::int64_t>;

}  // namespace mr::sdk
