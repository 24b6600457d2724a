// libFuzzer harness: chat-template rendering of arbitrary conversations. The input is a JSON
// object {"format", "options", "chat_template", "bos_token", "eos_token", "messages",
// "add_generation_prompt", "response"} (seeds are real conversations); anything else is read as
// raw bytes by FuzzedDataProvider. It drives ChatTemplate::from_tokenizer over a byte-level
// tokenizer whose tokenizer_config.json carries the fuzzed template and special tokens, render(),
// render_for_training() (whose documented identity is checked), stop_strings(), and the
// generation_config.json and chat_template text helpers.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz_support.hpp"
#include "metareward/chat/chat_template.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/tokenizer/tokenizer.hpp"

namespace {

namespace chat = mr::chat;
namespace tk = mr::tokenizer;
using nlohmann::json;

struct Case {
  std::string format = "auto";
  chat::FormatOptions options;
  json tokenizer_config = json::object();
  mr::sdk::Conversation messages;
  bool add_generation_prompt = true;
  std::string response;
};

// tokenizer.json of a byte-level tokenizer with every marker token of the built-in formats.
const std::string& byte_level_tokenizer_json() {
  static const std::string text = [] {
    const auto dir = mr::fuzz::scratch_dir() / "chat_tokenizer";
    tk::ByteLevelSpecials specials;
    specials.additional = {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                           "<|eot_id|>",        "<|im_start|>",        "<|im_end|>"};
    tk::write_byte_level_tokenizer(dir, specials);
    std::ifstream in(dir / "tokenizer.json", std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }();
  return text;
}

std::string string_or_empty(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The JSON form; false when `text` is not such an object.
bool case_from_json(std::string_view text, Case& out) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("messages") || !j["messages"].is_array()) return false;
  if (j.contains("format")) out.format = string_or_empty(j, "format");
  if (const auto it = j.find("options"); it != j.end() && it->is_object())
    for (const auto& [key, value] : it->items())
      if (value.is_string()) out.options[key] = value.get<std::string>();
  for (const char* key : {"chat_template", "bos_token", "eos_token"})
    if (j.contains(key)) out.tokenizer_config[key] = j[key];
  for (const auto& m : j["messages"])
    if (m.is_object())
      out.messages.push_back({string_or_empty(m, "role"), string_or_empty(m, "content")});
  if (const auto it = j.find("add_generation_prompt"); it != j.end() && it->is_boolean())
    out.add_generation_prompt = it->get<bool>();
  out.response = string_or_empty(j, "response");
  return true;
}

// The raw-bytes form: the same fields drawn from the provider.
Case case_from_bytes(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  static const char* const kFormats[] = {"auto", "llama3", "chatml", "plain", "custom", "x"};
  static const char* const kRoles[] = {"system", "user", "assistant", "tool"};
  Case c;
  c.format = kFormats[in.ConsumeIntegralInRange<int>(0, 5)];
  const auto& keys = chat::option_keys();
  for (int n = in.ConsumeIntegralInRange<int>(0, 3); n > 0; --n)
    c.options[keys[in.ConsumeIntegralInRange<std::size_t>(0, keys.size() - 1)]] =
        in.ConsumeRandomLengthString(64);
  if (in.ConsumeBool()) c.tokenizer_config["chat_template"] = in.ConsumeRandomLengthString(128);
  if (in.ConsumeBool()) c.tokenizer_config["eos_token"] = in.ConsumeRandomLengthString(16);
  if (in.ConsumeBool()) c.tokenizer_config["bos_token"] = in.ConsumeRandomLengthString(16);
  c.add_generation_prompt = in.ConsumeBool();
  c.response = in.ConsumeRandomLengthString(256);
  while (in.remaining_bytes() > 0) {
    const char* role = kRoles[in.ConsumeIntegralInRange<int>(0, 3)];
    c.messages.push_back({role, in.ConsumeRandomLengthString(256)});
  }
  return c;
}

void run_case(const Case& c) {
  // The fuzzed strings may be ill-formed UTF-8; the product reads tokenizer_config.json as text.
  const std::string config_text =
      c.tokenizer_config.dump(-1, ' ', false, json::error_handler_t::replace);
  const tk::Tokenizer tok = tk::Tokenizer::from_json(byte_level_tokenizer_json(), config_text);
  const chat::ChatTemplate tmpl = chat::ChatTemplate::from_tokenizer(c.format, tok, c.options);
  (void)tmpl.stop_strings(tok);
  (void)tmpl.render(c.messages, c.add_generation_prompt);
  const chat::TrainingText training = tmpl.render_for_training(c.messages, c.response);
  mr::sdk::Conversation whole = c.messages;
  whole.push_back({"assistant", c.response});
  MR_FUZZ_CHECK(training.prompt_text + training.response_text == tmpl.render(whole, false),
                "render_for_training() halves differ from render(prompt + response)");
  (void)tmpl.render_for_training(c.messages, c.response, /*complete=*/false);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = mr::fuzz::as_text(data, size);
  // The text helpers take any string.
  (void)chat::detect_format(text);
  (void)chat::chatml_default_system(text);
  const std::string_view trimmed = chat::trim_whitespace(text);
  MR_FUZZ_CHECK(trimmed.data() >= text.data() && trimmed.size() <= text.size(),
                "trim out of range");
  try {
    (void)chat::parse_generation_config_eos(text, "generation_config.json");
  } catch (const mr::sdk::BackendError&) {
    // Documented for malformed generation_config.json.
  }
  Case c;
  if (!case_from_json(text, c)) c = case_from_bytes(data, size);
  try {
    run_case(c);
  } catch (const mr::sdk::Error&) {
    // ConfigError (format, options, markers), DataError (roles), BackendError (tokenizer_config).
  }
  return 0;
}
