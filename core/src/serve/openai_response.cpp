// OpenAI response bodies and stream chunks for `metareward serve` (openai_response.hpp).
#include "openai_response.hpp"

#include "api_error.hpp"

namespace mr::core::serve {

using json = nlohmann::json;

namespace {

json object_base(const ResponseHeader& header, bool chunk) {
  const char* object = header.endpoint == Endpoint::Completion ? "text_completion"
                       : chunk                                 ? "chat.completion.chunk"
                                                               : "chat.completion";
  return {{"id", header.id},
          {"object", object},
          {"created", header.created},
          {"model", header.model},
          {"system_fingerprint", header.system_fingerprint}};
}

}  // namespace

const char* finish_reason_name(sdk::FinishReason reason) {
  return reason == sdk::FinishReason::Length ? "length" : "stop";
}

json usage_json(const sdk::GenerationResult& result) {
  const std::int64_t prompt = result.prompt_tokens < 0 ? 0 : result.prompt_tokens;
  std::int64_t completion = 0;
  for (const auto& c : result.completions) completion += c.tokens;
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion}};
}

json response_json(const ResponseHeader& header, const sdk::GenerationResult& result) {
  json out = object_base(header, false);
  json choices = json::array();
  for (std::size_t i = 0; i < result.completions.size(); ++i) {
    const sdk::Completion& c = result.completions[i];
    json choice = {{"index", i}};
    if (header.endpoint == Endpoint::Chat) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
    } else {
      choice["text"] = c.text;
      choice["logprobs"] = nullptr;
    }
    choice["finish_reason"] = finish_reason_name(c.finish_reason);
    choice["completion_tokens"] = c.tokens;  // Extension: this choice's generated tokens.
    choices.push_back(std::move(choice));
  }
  out["choices"] = std::move(choices);
  out["usage"] = usage_json(result);
  return out;
}

const sdk::GenerationResult& result_or_throw(const GenerationOutcome& outcome) {
  if (!outcome.backend_failure.empty())
    throw ApiError(500, "the model backend failed: " + outcome.backend_failure, "server_error");
  if (!outcome.result.error.empty()) throw ApiError(400, outcome.result.error);
  return outcome.result;
}

std::string sse_event(const json& data) {
  return "data: " + dump_json(data) + "\n\n";
}

std::vector<std::string> stream_events(const ResponseHeader& header,
                                       const sdk::GenerationResult& result,
                                       bool include_usage) {
  std::vector<std::string> events;
  const bool chat = header.endpoint == Endpoint::Chat;
  const auto chunk = [&](std::size_t index, json delta_or_text, json finish) {
    json out = object_base(header, true);
    json choice = {{"index", index}};
    if (chat) {
      choice["delta"] = std::move(delta_or_text);
    } else {
      choice["text"] = std::move(delta_or_text);
      choice["logprobs"] = nullptr;
    }
    choice["finish_reason"] = std::move(finish);
    out["choices"] = json::array({std::move(choice)});
    if (include_usage) out["usage"] = nullptr;  // As OpenAI: only the last chunk carries usage.
    return out;
  };
  for (std::size_t i = 0; i < result.completions.size(); ++i) {
    const sdk::Completion& c = result.completions[i];
    if (chat) {
      events.push_back(sse_event(chunk(i, {{"role", "assistant"}, {"content", ""}}, nullptr)));
      if (!c.text.empty()) events.push_back(sse_event(chunk(i, {{"content", c.text}}, nullptr)));
    } else if (!c.text.empty()) {
      events.push_back(sse_event(chunk(i, c.text, nullptr)));
    }
    json last = chunk(i, chat ? json::object() : json(""), finish_reason_name(c.finish_reason));
    last["choices"][0]["completion_tokens"] = c.tokens;
    events.push_back(sse_event(last));
  }
  if (include_usage) {
    json out = object_base(header, true);
    out["choices"] = json::array();
    out["usage"] = usage_json(result);
    events.push_back(sse_event(out));
  }
  events.push_back("data: [DONE]\n\n");
  return events;
}

}  // namespace mr::core::serve
