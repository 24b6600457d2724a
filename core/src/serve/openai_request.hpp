// `metareward serve`: OpenAI request bodies (chat completions, completions, tokenize) checked
// field by field and turned into one sdk::GenerationRequest. Every problem is an ApiError
// naming the field (400), or 404 model_not_found for another model's name.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "metareward/sdk/types.hpp"

namespace mr::core::serve {

/// What the server allows; every request is checked against it.
struct RequestLimits {
  std::string served_model_name;  ///< A request's "model", when present, must equal it.
  int max_tokens_limit = 4096;    ///< Upper bound and default of max_tokens.
  int max_n = 128;                ///< Upper bound of n.
};

/// One generation endpoint's request, parsed.
struct ParsedGeneration {
  sdk::GenerationRequest request;  ///< id left empty: the server names it.
  bool stream = false;
  bool include_usage = false;  ///< stream_options.include_usage.
};

/// The request body as a JSON object; 400 for malformed JSON or anything but an object.
nlohmann::json parse_body(const std::string& text);

/// POST /v1/chat/completions. `fresh_seed` gives the seed of a request without one.
ParsedGeneration parse_chat_request(const nlohmann::json& body,
                                    const RequestLimits& limits,
                                    const std::function<std::uint64_t()>& fresh_seed);

/// POST /v1/completions: the prompt goes to GenerationRequest::prompt_text.
ParsedGeneration parse_completion_request(const nlohmann::json& body,
                                          const RequestLimits& limits,
                                          const std::function<std::uint64_t()>& fresh_seed);

/// POST /tokenize: the text of {"prompt"} (vLLM) or {"content"} (llama.cpp).
std::string parse_tokenize_request(const nlohmann::json& body, const RequestLimits& limits);

}  // namespace mr::core::serve
