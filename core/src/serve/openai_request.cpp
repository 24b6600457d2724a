// OpenAI request parsing for `metareward serve` (openai_request.hpp). A field that is absent or
// null takes its default; unknown fields are ignored; a known field of the wrong type or out of
// range is a 400 naming it; sampling features the backend does not have are accepted only at
// their neutral value.
#include "openai_request.hpp"

#include <cmath>
#include <limits>

#include "api_error.hpp"

namespace mr::core::serve {

using json = nlohmann::json;

namespace {

/// The field `key` of `body`, or nullptr when absent or null.
const json* field(const json& body, const char* key) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string type_name(const json& v) {
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

[[noreturn]] void wrong_type(const std::string& param, const char* expected, const json& v) {
  throw ApiError::bad_field(param, "'" + param + "' must be " + expected + ", not " + type_name(v));
}

double number_field(const json& body, const char* key, double fallback) {
  const json* v = field(body, key);
  if (v == nullptr) return fallback;
  if (!v->is_number()) wrong_type(key, "a number", *v);
  const double x = v->get<double>();
  if (!std::isfinite(x))
    throw ApiError::bad_field(key, std::string("'") + key + "' must be finite");
  return x;
}

/// An integer field within [lo, hi]; `fallback` when absent.
std::int64_t int_field(
    const json& body, const char* key, std::int64_t fallback, std::int64_t lo, std::int64_t hi) {
  const json* v = field(body, key);
  if (v == nullptr) return fallback;
  if (!v->is_number_integer()) wrong_type(key, "an integer", *v);
  const bool too_big =
      v->is_number_unsigned() && v->get<std::uint64_t>() > static_cast<std::uint64_t>(hi);
  const std::int64_t x = too_big ? hi : v->get<std::int64_t>();
  if (too_big || x < lo || x > hi)
    throw ApiError::bad_field(key, "'" + std::string(key) + "' must be between " +
                                       std::to_string(lo) + " and " + std::to_string(hi) +
                                       ", got " + v->dump());
  return x;
}

bool bool_field(const json& body, const char* key, bool fallback) {
  const json* v = field(body, key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) wrong_type(key, "a boolean", *v);
  return v->get<bool>();
}

/// A sampling feature the backend lacks: accepted only at its neutral value.
void neutral_number(const json& body, const char* key, double neutral) {
  const double x = number_field(body, key, neutral);
  if (x != neutral)
    throw ApiError::bad_field(key, std::string("'") + key + "' is not supported by this server (" +
                                       "only " + json(neutral).dump() + " is accepted)");
}

void check_model(const json& body, const RequestLimits& limits) {
  const json* v = field(body, "model");
  if (v == nullptr) return;
  if (!v->is_string()) wrong_type("model", "a string", *v);
  if (v->get<std::string>() != limits.served_model_name)
    throw ApiError(404,
                   "The model '" + v->get<std::string>() +
                       "' does not exist; this server serves '" + limits.served_model_name + "'",
                   "invalid_request_error", "model", "model_not_found");
}

/// The sampling fields both generation endpoints share, n, seed and stream.
void parse_common(const json& body,
                  const RequestLimits& limits,
                  const std::function<std::uint64_t()>& fresh_seed,
                  ParsedGeneration& out) {
  sdk::GenerationRequest& r = out.request;
  r.n = static_cast<int>(int_field(body, "n", 1, 1, limits.max_n));

  sdk::SamplingParams& s = r.sampling;
  s.temperature = number_field(body, "temperature", 1.0);
  if (s.temperature < 0.0 || s.temperature > 2.0)
    throw ApiError::bad_field(
        "temperature", "'temperature' must be between 0 and 2, got " + json(s.temperature).dump());
  s.top_p = number_field(body, "top_p", 1.0);
  if (!(s.top_p > 0.0 && s.top_p <= 1.0))
    throw ApiError::bad_field(
        "top_p", "'top_p' must be greater than 0 and at most 1, got " + json(s.top_p).dump());
  const std::int64_t top_k =
      int_field(body, "top_k", 0, -1, std::numeric_limits<int>::max());  // -1 and 0: off
  s.top_k = static_cast<int>(std::max<std::int64_t>(0, top_k));

  const char* max_key =
      field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (field(body, "max_completion_tokens") && field(body, "max_tokens"))
    int_field(body, "max_tokens", 0, 1, limits.max_tokens_limit);  // Checked even when unused.
  s.max_new_tokens = static_cast<int>(
      int_field(body, max_key, limits.max_tokens_limit, 1, limits.max_tokens_limit));

  if (const json* stop = field(body, "stop")) {
    if (stop->is_string()) {
      if (!stop->get<std::string>().empty()) s.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (std::size_t i = 0; i < stop->size(); ++i) {
        const json& item = (*stop)[i];
        if (!item.is_string()) wrong_type("stop[" + std::to_string(i) + "]", "a string", item);
        if (!item.get<std::string>().empty()) s.stop.push_back(item.get<std::string>());
      }
    } else {
      wrong_type("stop", "a string or an array of strings", *stop);
    }
  }

  if (const json* seed = field(body, "seed")) {
    if (seed->is_number_unsigned())
      r.seed = seed->get<std::uint64_t>();
    else if (seed->is_number_integer())
      r.seed = static_cast<std::uint64_t>(seed->get<std::int64_t>());  // Two's complement.
    else if (seed->is_number())
      throw ApiError::bad_field("seed",
                                "'seed' must be an integer in [-2^63, 2^64), got " + seed->dump());
    else
      wrong_type("seed", "an integer", *seed);
  } else {
    r.seed = fresh_seed();
  }

  out.stream = bool_field(body, "stream", false);
  if (const json* options = field(body, "stream_options")) {
    if (!options->is_object()) wrong_type("stream_options", "an object", *options);
    if (const json* usage = field(*options, "include_usage")) {
      if (!usage->is_boolean()) wrong_type("stream_options.include_usage", "a boolean", *usage);
      out.include_usage = usage->get<bool>();
    }
  }

  neutral_number(body, "presence_penalty", 0.0);
  neutral_number(body, "frequency_penalty", 0.0);
  neutral_number(body, "repetition_penalty", 1.0);
  neutral_number(body, "min_p", 0.0);
}

/// A message's content: a string, or an array of {"type": "text", "text": ...} parts (joined).
std::string message_content(const json& content, const std::string& param) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) wrong_type(param, "a string or an array of text parts", content);
  std::string text;
  for (std::size_t i = 0; i < content.size(); ++i) {
    const json& part = content[i];
    const std::string p = param + "[" + std::to_string(i) + "]";
    if (!part.is_object()) wrong_type(p, "an object", part);
    const json* type = field(part, "type");
    if (type == nullptr || !type->is_string() || type->get<std::string>() != "text")
      throw ApiError::bad_field(p + ".type", "only content parts of type 'text' are supported");
    const json* t = field(part, "text");
    if (t == nullptr) throw ApiError::bad_field(p + ".text", "'" + p + ".text' is required");
    if (!t->is_string()) wrong_type(p + ".text", "a string", *t);
    text += t->get<std::string>();
  }
  return text;
}

}  // namespace

json parse_body(const std::string& text) {
  json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded())
    throw ApiError(400, "the request body is not valid JSON", "invalid_request_error");
  if (!body.is_object())
    throw ApiError(400, "the request body must be a JSON object, not " + type_name(body),
                   "invalid_request_error");
  return body;
}

ParsedGeneration parse_chat_request(const json& body,
                                    const RequestLimits& limits,
                                    const std::function<std::uint64_t()>& fresh_seed) {
  check_model(body, limits);
  ParsedGeneration out;
  const json* messages = field(body, "messages");
  if (messages == nullptr) throw ApiError::bad_field("messages", "'messages' is required");
  if (!messages->is_array()) wrong_type("messages", "an array", *messages);
  if (messages->empty())
    throw ApiError::bad_field("messages", "'messages' must contain at least one message");
  for (std::size_t i = 0; i < messages->size(); ++i) {
    const json& m = (*messages)[i];
    const std::string p = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) wrong_type(p, "an object", m);
    const json* role = field(m, "role");
    if (role == nullptr) throw ApiError::bad_field(p + ".role", "'" + p + ".role' is required");
    if (!role->is_string()) wrong_type(p + ".role", "a string", *role);
    const std::string r = role->get<std::string>();
    if (r != "system" && r != "user" && r != "assistant")
      throw ApiError::bad_field(p + ".role", "unsupported role '" + r + "' in '" + p +
                                                 ".role' (system, user or assistant)");
    const json* content = field(m, "content");
    if (content == nullptr)
      throw ApiError::bad_field(p + ".content", "'" + p + ".content' is required");
    out.request.messages.push_back({r, message_content(*content, p + ".content")});
  }
  if (bool_field(body, "logprobs", false))
    throw ApiError::bad_field("logprobs", "'logprobs' is not supported by this server");
  parse_common(body, limits, fresh_seed, out);
  return out;
}

ParsedGeneration parse_completion_request(const json& body,
                                          const RequestLimits& limits,
                                          const std::function<std::uint64_t()>& fresh_seed) {
  check_model(body, limits);
  ParsedGeneration out;
  const json* prompt = field(body, "prompt");
  if (prompt == nullptr) throw ApiError::bad_field("prompt", "'prompt' is required");
  if (prompt->is_array()) {
    if (prompt->size() != 1 || !(*prompt)[0].is_string())
      throw ApiError::bad_field("prompt",
                                "'prompt' must be a string or an array of exactly one string "
                                "(batched and token-id prompts are not supported)");
    out.request.prompt_text = (*prompt)[0].get<std::string>();
  } else if (prompt->is_string()) {
    out.request.prompt_text = prompt->get<std::string>();
  } else {
    wrong_type("prompt", "a string or an array of one string", *prompt);
  }
  if (out.request.prompt_text.empty())
    throw ApiError::bad_field("prompt", "'prompt' must not be empty");
  if (bool_field(body, "echo", false))
    throw ApiError::bad_field("echo", "'echo' is not supported by this server");
  if (const json* logprobs = field(body, "logprobs")) {
    if (!(logprobs->is_boolean() && !logprobs->get<bool>()))
      throw ApiError::bad_field("logprobs", "'logprobs' is not supported by this server");
  }
  parse_common(body, limits, fresh_seed, out);
  return out;
}

std::string parse_tokenize_request(const json& body, const RequestLimits& limits) {
  check_model(body, limits);
  if (bool_field(body, "add_special_tokens", false))
    throw ApiError::bad_field("add_special_tokens",
                              "'add_special_tokens' true is not supported (tokens are counted "
                              "without special tokens)");
  for (const char* key : {"prompt", "content"}) {
    if (const json* v = field(body, key)) {
      if (!v->is_string()) wrong_type(key, "a string", *v);
      return v->get<std::string>();
    }
  }
  throw ApiError::bad_field("prompt", "'prompt' (or 'content') is required");
}

}  // namespace mr::core::serve
