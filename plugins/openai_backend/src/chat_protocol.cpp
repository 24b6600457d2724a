// The OpenAI wire format (chat_protocol.hpp).
#include "chat_protocol.hpp"

#include <algorithm>

#include "metareward/sdk/error.hpp"

namespace mr::plugins::openai_backend {

using json = nlohmann::json;

const char* dialect_name(Dialect dialect) {
  switch (dialect) {
    case Dialect::Metareward:
      return "metareward";
    case Dialect::Vllm:
      return "vllm";
    case Dialect::Sglang:
      return "sglang";
    case Dialect::LlamaCpp:
      return "llama.cpp";
    case Dialect::OpenAI:
      return "openai";
  }
  return "openai";
}

Dialect parse_dialect(const std::string& name) {
  for (Dialect d :
       {Dialect::Metareward, Dialect::Vllm, Dialect::Sglang, Dialect::LlamaCpp, Dialect::OpenAI})
    if (name == dialect_name(d)) return d;
  throw mr::sdk::ConfigError("dialect '" + name +
                             "' is not one of: auto, metareward, vllm, sglang, llama.cpp, openai");
}

Dialect dialect_from_owned_by(const std::string& owned_by) {
  if (owned_by == "metareward") return Dialect::Metareward;
  if (owned_by == "vllm") return Dialect::Vllm;
  if (owned_by == "sglang") return Dialect::Sglang;
  if (owned_by == "llamacpp" || owned_by == "llama.cpp") return Dialect::LlamaCpp;
  return Dialect::OpenAI;
}

std::uint64_t wire_seed(std::uint64_t seed, Dialect dialect) {
  switch (dialect) {
    case Dialect::Metareward:
      return seed;
    case Dialect::LlamaCpp: {
      const std::uint64_t s = seed & 0xFFFFFFFFULL;
      return s == 0xFFFFFFFFULL ? 0xFFFFFFFEULL : s;
    }
    default:
      return seed & 0x7FFFFFFFFFFFFFFFULL;
  }
}

const char* request_path(const SampleCall& call) {
  return call.request->prompt_text.empty() ? "/chat/completions" : "/completions";
}

json request_body(const SampleCall& call, Dialect dialect, const std::string& model) {
  const mr::sdk::GenerationRequest& r = *call.request;
  const mr::sdk::SamplingParams& s = r.sampling;
  json body = json::object();
  body["model"] = model;
  if (r.prompt_text.empty()) {
    json messages = json::array();
    for (const auto& m : r.messages) messages.push_back({{"role", m.role}, {"content", m.content}});
    body["messages"] = std::move(messages);
  } else {
    body["prompt"] = r.prompt_text;
  }
  body["n"] = call.n;
  body["seed"] = wire_seed(call.seed, dialect);
  body["temperature"] = s.temperature;
  body["top_p"] = s.top_p;
  body["max_tokens"] = s.max_new_tokens;
  body["stop"] = s.stop;
  body["stream"] = false;
  // Every sampling knob the server has, at its neutral value: vLLM applies the model's
  // generation_config.json to unset keys, llama.cpp has top_k 40 / min_p 0.05 / repeat_penalty
  // 1.1 style defaults; none of those may change what the config asked for.
  body["presence_penalty"] = 0.0;
  body["frequency_penalty"] = 0.0;
  switch (dialect) {
    case Dialect::Metareward:
      body["top_k"] = s.top_k;
      break;
    case Dialect::Vllm:
    case Dialect::Sglang:
      body["top_k"] = s.top_k > 0 ? s.top_k : -1;
      body["min_p"] = 0.0;
      body["repetition_penalty"] = 1.0;
      if (dialect == Dialect::Vllm) {
        body["min_tokens"] = 0;
        body["ignore_eos"] = false;
        body["include_stop_str_in_output"] = false;
        body["skip_special_tokens"] = true;
      }
      break;
    case Dialect::LlamaCpp:
      body["top_k"] = s.top_k > 0 ? s.top_k : 0;  // 0: no top-k in llama.cpp
      body["min_p"] = 0.0;
      body["typical_p"] = 1.0;
      body["repeat_penalty"] = 1.0;
      body["repeat_last_n"] = 0;
      body["mirostat"] = 0;
      body["dry_multiplier"] = 0.0;
      body["xtc_probability"] = 0.0;
      body["top_n_sigma"] = -1.0;
      body["n_probs"] = 0;
      // A reused KV cache can change the logits' batch layout; results must not depend on it.
      body["cache_prompt"] = false;
      break;
    case Dialect::OpenAI:
      if (s.top_k > 0)
        throw mr::sdk::DataError("top_k = " + std::to_string(s.top_k) +
                                 " cannot be sent to an OpenAI-dialect server (the API has no "
                                 "top_k); set top_k = 0 or the model's dialect");
      break;
  }
  return body;
}

namespace {

mr::sdk::FinishReason finish_reason(const json& value) {
  if (!value.is_string()) return mr::sdk::FinishReason::Stop;  // llama.cpp may send null
  const auto& s = value.get_ref<const std::string&>();
  if (s == "length") return mr::sdk::FinishReason::Length;
  if (s == "stop" || s == "eos" || s == "stop_sequence" || s == "end_turn")
    return mr::sdk::FinishReason::Stop;
  return mr::sdk::FinishReason::Error;  // content_filter, tool_calls, ...
}

}  // namespace

std::vector<mr::sdk::Completion> parse_choices(const std::string& body, int n, bool chat) {
  const json parsed = json::parse(body, nullptr, false);
  if (parsed.is_discarded()) throw mr::sdk::DataError("the response body is not JSON");
  if (!parsed.is_object() || !parsed.contains("choices") || !parsed["choices"].is_array())
    throw mr::sdk::DataError("the response has no \"choices\" array");
  const json& choices = parsed["choices"];
  if (choices.size() != static_cast<std::size_t>(n))
    throw ChoiceCountError("the response has " + std::to_string(choices.size()) + " choices; " +
                           std::to_string(n) + " were asked for");
  std::vector<mr::sdk::Completion> out(static_cast<std::size_t>(n));
  std::vector<bool> seen(static_cast<std::size_t>(n), false);
  for (std::size_t k = 0; k < choices.size(); ++k) {
    const json& c = choices[k];
    if (!c.is_object())
      throw mr::sdk::DataError("choice " + std::to_string(k) + " is not an object");
    std::size_t index = k;
    if (c.contains("index")) {
      if (!c["index"].is_number_integer() || c["index"].get<std::int64_t>() < 0 ||
          c["index"].get<std::int64_t>() >= n)
        throw mr::sdk::DataError("choice " + std::to_string(k) + " has a bad index");
      index = c["index"].get<std::size_t>();
    }
    if (seen[index]) throw mr::sdk::DataError("two choices have index " + std::to_string(index));
    seen[index] = true;
    const json* text = nullptr;
    if (chat) {
      if (c.contains("message") && c["message"].is_object() && c["message"].contains("content"))
        text = &c["message"]["content"];
    } else if (c.contains("text")) {
      text = &c["text"];
    }
    if (text == nullptr || !(text->is_string() || text->is_null()))
      throw mr::sdk::DataError("choice " + std::to_string(index) + " has no " +
                               (chat ? "message.content" : "text") + " string");
    mr::sdk::Completion& out_c = out[index];
    out_c.text = text->is_string() ? text->get<std::string>() : std::string();
    out_c.finish_reason = finish_reason(c.value("finish_reason", json()));
    out_c.tokens = -1;
    if (c.contains("completion_tokens") && c["completion_tokens"].is_number_integer())
      out_c.tokens = c["completion_tokens"].get<std::int64_t>();
  }
  if (n == 1 && out[0].tokens < 0 && parsed.contains("usage") && parsed["usage"].is_object()) {
    const json& usage = parsed["usage"];
    if (usage.contains("completion_tokens") && usage["completion_tokens"].is_number_integer())
      out[0].tokens = usage["completion_tokens"].get<std::int64_t>();
  }
  return out;
}

}  // namespace mr::plugins::openai_backend
