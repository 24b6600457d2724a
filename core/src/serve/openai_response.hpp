// `metareward serve`: OpenAI response bodies (chat.completion, text_completion) and the
// server-sent-event chunks of a streamed response, from one sdk::GenerationResult.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "batch_queue.hpp"
#include "metareward/sdk/types.hpp"

namespace mr::core::serve {

enum class Endpoint { Chat, Completion };

/// What every response object of one request shares.
struct ResponseHeader {
  Endpoint endpoint = Endpoint::Chat;
  std::string id;  ///< "chatcmpl-…" or "cmpl-…".
  std::int64_t created = 0;
  std::string model;
  std::string system_fingerprint;
};

/// "stop" or "length" (an errored completion reads "stop": its request failed as a whole).
const char* finish_reason_name(sdk::FinishReason reason);

/// {"prompt_tokens", "completion_tokens", "total_tokens"} of `result`.
nlohmann::json usage_json(const sdk::GenerationResult& result);

/// The whole non-streamed response.
nlohmann::json response_json(const ResponseHeader& header, const sdk::GenerationResult& result);

/// The `data: …` events of a streamed response, in order, up to and including `data: [DONE]`:
/// per choice a first chunk (chat: delta {"role": "assistant", "content": ""}), the text as one
/// delta, a chunk with finish_reason; with `include_usage` a last chunk with "choices": [] and
/// usage.
std::vector<std::string> stream_events(const ResponseHeader& header,
                                       const sdk::GenerationResult& result,
                                       bool include_usage);

/// The result of `outcome`; ApiError 500 (server_error) when the backend failed, 400 with the
/// backend's message when the request failed (e.g. the prompt does not fit the context).
const sdk::GenerationResult& result_or_throw(const GenerationOutcome& outcome);

/// `data: {JSON}\n\n`.
std::string sse_event(const nlohmann::json& data);

}  // namespace mr::core::serve
