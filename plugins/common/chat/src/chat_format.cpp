// ChatFormat: the built-in formats, options, validation and detection from a Jinja template.
#include <algorithm>
#include <string>

#include "metareward/chat/chat_template.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::chat {

using mr::sdk::ConfigError;

namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// The rest of a Jinja string literal quoted with `quote`, read from `from`: the unescaped text up
// to the closing quote, or nullopt when the literal is unterminated.
std::optional<std::string> rest_of_literal(std::string_view text, std::size_t from, char quote) {
  std::string out;
  for (std::size_t i = from; i < text.size(); ++i) {
    const char c = text[i];
    if (c == quote) return out;
    if (c != '\\' || i + 1 == text.size()) {
      out += c;
      continue;
    }
    // \n \t \r are control characters; \\ \' \" and any other escape are the character itself.
    const char e = text[++i];
    out += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
  }
  return std::nullopt;
}

}  // namespace

void ChatFormat::validate() const {
  const std::string where = "chat format '" + name + "'";
  if (end_of_turn.empty()) {
    throw ConfigError(where +
                      ": end_of_turn is empty; set it to the text that ends an assistant turn "
                      "(e.g. the tokenizer's eos token), or generation could never stop");
  }
  if (!assistant.suffix.starts_with(end_of_turn)) {
    throw ConfigError(where + ": assistant_suffix \"" + assistant.suffix +
                      "\" must start with end_of_turn \"" + end_of_turn +
                      "\" (a trained response ends with the assistant suffix)");
  }
  if (generation_prompt != assistant.prefix) {
    throw ConfigError(where + ": generation_prompt \"" + generation_prompt +
                      "\" must equal assistant_prefix \"" + assistant.prefix +
                      "\" (a generated reply must render like a stored assistant turn)");
  }
}

const std::vector<std::string>& format_names() {
  static const std::vector<std::string> names = {"auto", "llama3", "chatml", "plain", "custom"};
  return names;
}

const std::vector<std::string>& option_keys() {
  static const std::vector<std::string> keys = {
      "bos",         "system_prefix",    "system_suffix",    "user_prefix",
      "user_suffix", "assistant_prefix", "assistant_suffix", "generation_prompt",
      "end_of_turn", "default_system",   "trim_content"};
  return keys;
}

ChatFormat llama3_format(std::string bos) {
  const auto header = [](const std::string& role) {
    return "<|start_header_id|>" + role + "<|end_header_id|>\n\n";
  };
  ChatFormat f;
  f.name = "llama3";
  f.bos = std::move(bos);
  f.system = {header("system"), "<|eot_id|>"};
  f.user = {header("user"), "<|eot_id|>"};
  f.assistant = {header("assistant"), "<|eot_id|>"};
  f.generation_prompt = header("assistant");
  f.end_of_turn = "<|eot_id|>";
  f.trim_content = true;  // The template writes `message['content'] | trim`.
  return f;
}

ChatFormat chatml_format(std::string default_system) {
  ChatFormat f;
  f.name = "chatml";
  f.system = {"<|im_start|>system\n", "<|im_end|>\n"};
  f.user = {"<|im_start|>user\n", "<|im_end|>\n"};
  f.assistant = {"<|im_start|>assistant\n", "<|im_end|>\n"};
  f.generation_prompt = "<|im_start|>assistant\n";
  f.end_of_turn = "<|im_end|>";
  f.default_system = std::move(default_system);
  return f;
}

ChatFormat plain_format(std::string bos, std::string end_of_turn) {
  ChatFormat f;
  f.name = "plain";
  f.bos = std::move(bos);
  f.system = {"System: ", "\n"};
  f.user = {"User: ", "\n"};
  f.assistant = {"Assistant: ", end_of_turn + "\n"};
  f.generation_prompt = "Assistant: ";
  f.end_of_turn = std::move(end_of_turn);
  return f;
}

ChatFormat apply_options(ChatFormat base, const FormatOptions& options) {
  ChatFormat f = std::move(base);
  std::map<std::string_view, std::string*> fields = {{"bos", &f.bos},
                                                     {"system_prefix", &f.system.prefix},
                                                     {"system_suffix", &f.system.suffix},
                                                     {"user_prefix", &f.user.prefix},
                                                     {"user_suffix", &f.user.suffix},
                                                     {"assistant_prefix", &f.assistant.prefix},
                                                     {"assistant_suffix", &f.assistant.suffix},
                                                     {"generation_prompt", &f.generation_prompt},
                                                     {"end_of_turn", &f.end_of_turn},
                                                     {"default_system", &f.default_system}};
  const std::string old_end_of_turn = f.end_of_turn;
  for (const auto& [key, value] : options) {
    if (key == "trim_content") {
      if (value != "true" && value != "false") {
        throw ConfigError("chat format option trim_content must be \"true\" or \"false\", got \"" +
                          value + "\"");
      }
      f.trim_content = value == "true";
      continue;
    }
    const auto it = fields.find(key);
    if (it == fields.end()) {
      throw ConfigError("chat format option '" + key +
                        "' is unknown; expected one of: " + join(option_keys()));
    }
    *it->second = value;
  }
  const auto given = [&](std::string_view key) { return options.find(key) != options.end(); };
  if (given("assistant_prefix") && !given("generation_prompt")) {
    f.generation_prompt = f.assistant.prefix;
  } else if (given("generation_prompt") && !given("assistant_prefix")) {
    f.assistant.prefix = f.generation_prompt;
  }
  if (given("end_of_turn") && !given("assistant_suffix")) {
    // Keep what the format writes after the end-of-turn text (chatml/plain: a newline).
    const std::string tail = f.assistant.suffix.starts_with(old_end_of_turn)
                                 ? f.assistant.suffix.substr(old_end_of_turn.size())
                                 : std::string();
    f.assistant.suffix = f.end_of_turn + tail;
  }
  f.validate();
  return f;
}

ChatFormat custom_format(const FormatOptions& options) {
  ChatFormat base;
  base.name = "custom";
  return apply_options(std::move(base), options);
}

std::optional<std::string> detect_format(std::string_view chat_template) {
  if (chat_template.find("<|start_header_id|>") != std::string_view::npos) return "llama3";
  if (chat_template.find("<|im_start|>") != std::string_view::npos) return "chatml";
  return std::nullopt;
}

std::string chatml_default_system(std::string_view chat_template) {
  static constexpr std::string_view kStart = "<|im_start|>system";
  static constexpr std::string_view kEnd = "<|im_end|>";
  for (std::size_t pos = chat_template.find(kStart); pos != std::string_view::npos;
       pos = chat_template.find(kStart, pos + 1)) {
    // Only a string literal that opens right before the marker and holds the whole system turn
    // ('<|im_start|>system\n...<|im_end|>') is a default; '<|im_start|>system\n' + content is not.
    if (pos == 0 || (chat_template[pos - 1] != '\'' && chat_template[pos - 1] != '"')) continue;
    const auto literal =
        rest_of_literal(chat_template, pos + kStart.size(), chat_template[pos - 1]);
    if (!literal || !literal->starts_with("\n")) continue;
    const std::size_t end = literal->find(kEnd);
    if (end == std::string::npos || end <= 1) continue;
    return literal->substr(1, end - 1);
  }
  return {};
}

}  // namespace mr::chat
