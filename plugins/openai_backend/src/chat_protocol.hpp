// Internal: request bodies and response parsing of the OpenAI chat and completions APIs, with
// the sampling pinned per server dialect so that no server default applies silently.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "metareward/sdk/error.hpp"
#include "metareward/sdk/types.hpp"

namespace mr::plugins::openai_backend {

/// Which server family a backend talks to: decides the extra sampling keys it pins.
enum class Dialect { Metareward, Vllm, Sglang, LlamaCpp, OpenAI };

/// "metareward", "vllm", "sglang", "llama.cpp", "openai".
const char* dialect_name(Dialect dialect);
/// Parses a config value (not "auto"); throws sdk::ConfigError for anything else.
Dialect parse_dialect(const std::string& name);
/// The dialect `/v1/models` implies through data[0].owned_by ("vllm", "sglang", "llamacpp",
/// "metareward"); anything else (OpenAI, hosted APIs, unknown servers) is OpenAI.
Dialect dialect_from_owned_by(const std::string& owned_by);

/// One HTTP call's worth of a GenerationRequest: `n` samples from `seed`.
struct SampleCall {
  const mr::sdk::GenerationRequest* request = nullptr;
  int n = 1;
  std::uint64_t seed = 0;
};

/// The body of POST /chat/completions (or /completions when request.prompt_text is set).
/// Throws sdk::DataError when `dialect` cannot express a setting (top_k on OpenAI).
nlohmann::json request_body(const SampleCall& call, Dialect dialect, const std::string& model);

/// The path of `call`'s endpoint under the base URL: "/chat/completions" or "/completions".
const char* request_path(const SampleCall& call);

/// The seed as sent: the full 64 bits to metareward, the non-negative int64 range to vLLM,
/// SGLang and OpenAI (vLLM rejects larger values), 32 bits to llama.cpp (avoiding its
/// "random" value 0xFFFFFFFF).
std::uint64_t wire_seed(std::uint64_t seed, Dialect dialect);

/// A 2xx answer with another number of choices than asked for (servers that ignore `n`).
class ChoiceCountError : public mr::sdk::DataError {
 public:
  using mr::sdk::DataError::DataError;
};

/// The completions of a 2xx body, in choice order; throws sdk::DataError describing what is
/// wrong when the body is not a well-formed answer (ChoiceCountError: not exactly `n` choices).
/// Completion::tokens is the choice's `completion_tokens` (metareward serve), else
/// usage.completion_tokens when n == 1, else -1.
std::vector<mr::sdk::Completion> parse_choices(const std::string& body, int n, bool chat);

}  // namespace mr::plugins::openai_backend
