// ChatTemplate: format selection for a tokenizer, rendering, and stop tokens.
#include "metareward/chat/chat_template.hpp"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <limits>
#include <sstream>
#include <system_error>

#include <nlohmann/json.hpp>

#include "metareward/sdk/error.hpp"

namespace mr::chat {

using mr::sdk::BackendError;
using mr::sdk::ConfigError;
using mr::sdk::DataError;
using mr::tokenizer::Tokenizer;

namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// The id of the added token spelled exactly `text`. Added tokens are matched in raw text before
// BPE, so such a token always encodes to that one id whatever surrounds it.
std::optional<TokenId> added_token_id(const Tokenizer& tokenizer, std::string_view text) {
  for (const auto& token : tokenizer.added_tokens()) {
    if (token.content == text) return token.id;
  }
  return std::nullopt;
}

void require_added_tokens(const Tokenizer& tokenizer,
                          const std::string& format,
                          const std::vector<std::string>& markers) {
  for (const auto& marker : markers) {
    if (marker.empty() || added_token_id(tokenizer, marker)) continue;
    throw ConfigError("chat format '" + format + "' needs '" + marker +
                      "' to be an added token of the tokenizer " + tokenizer.origin() +
                      ", which has no such token; choose a format that matches the tokenizer "
                      "(plain or custom for byte-level models)");
  }
}

// Python's str.isspace() code points (what Jinja's `trim` strips).
bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// Decodes the UTF-8 character at `pos`; returns its length (0 when ill-formed) and sets `cp`.
std::size_t decode_utf8(std::string_view s, std::size_t pos, char32_t& cp) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  std::size_t len = b0 < 0x80           ? 1
                    : (b0 >> 5) == 0x6  ? 2
                    : (b0 >> 4) == 0xE  ? 3
                    : (b0 >> 3) == 0x1E ? 4
                                        : 0;
  if (len == 0 || pos + len > s.size()) return 0;
  cp = len == 1 ? b0 : b0 & (0x7F >> len);
  for (std::size_t i = 1; i < len; ++i) {
    const auto b = static_cast<unsigned char>(s[pos + i]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  static constexpr char32_t kMin[] = {0, 0, 0x80, 0x800,
                                      0x10000};  // Overlong forms are ill-formed.
  return cp < kMin[len] || cp > 0x10FFFF ? 0 : len;
}

}  // namespace

std::string_view trim_whitespace(std::string_view text) {
  char32_t cp = 0;
  while (!text.empty()) {
    const std::size_t len = decode_utf8(text, 0, cp);
    if (len == 0 || !is_python_space(cp)) break;
    text.remove_prefix(len);
  }
  while (!text.empty()) {
    std::size_t start = text.size() - 1;
    while (start > 0 && text.size() - start < 4 &&
           (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) {
      --start;
    }
    const std::size_t len = decode_utf8(text, start, cp);
    if (len != text.size() - start || !is_python_space(cp)) break;
    text.remove_suffix(len);
  }
  return text;
}

ChatTemplate::ChatTemplate(ChatFormat format) : format_(std::move(format)) {
  format_.validate();
}

ChatTemplate ChatTemplate::from_tokenizer(std::string_view name,
                                          const Tokenizer& tokenizer,
                                          const FormatOptions& options) {
  const auto& config = tokenizer.config();
  const std::string origin = tokenizer.origin();
  std::string chosen(name);
  if (name == "auto") {
    const std::string choices =
        "; set the chat format explicitly to one of: llama3, chatml, "
        "plain, custom";
    if (!config.chat_template) {
      throw ConfigError("chat format 'auto': the tokenizer " + origin +
                        " has no chat_template in its tokenizer_config.json" + choices);
    }
    const auto detected = detect_format(*config.chat_template);
    if (!detected) {
      throw ConfigError("chat format 'auto': the chat_template of the tokenizer " + origin +
                        " is not a known format (it contains neither <|start_header_id|> "
                        "(llama3) nor <|im_start|> (chatml))" +
                        choices);
    }
    chosen = *detected;
  }

  ChatFormat base;
  if (chosen == "llama3") {
    base = llama3_format(config.bos_token.value_or("<|begin_of_text|>"));
    require_added_tokens(tokenizer, chosen,
                         {base.bos, "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"});
  } else if (chosen == "chatml") {
    base = chatml_format(config.chat_template ? chatml_default_system(*config.chat_template)
                                              : std::string());
    require_added_tokens(tokenizer, chosen, {"<|im_start|>", "<|im_end|>"});
  } else if (chosen == "plain") {
    if (!config.eos_token && options.find("end_of_turn") == options.end()) {
      throw ConfigError("chat format 'plain': the tokenizer " + origin +
                        " has no eos_token in its tokenizer_config.json; set end_of_turn to "
                        "the text that ends an assistant turn");
    }
    base = plain_format(config.bos_token.value_or(""), config.eos_token.value_or(""));
  } else if (chosen == "custom") {
    base.name = "custom";
  } else {
    throw ConfigError("chat format '" + std::string(name) +
                      "' is unknown; expected one of: " + join(format_names()));
  }
  return ChatTemplate(apply_options(std::move(base), options));
}

void ChatTemplate::append_message(std::string& out,
                                  const mr::sdk::ChatMessage& message,
                                  std::size_t index) const {
  const TurnAffixes* affixes = nullptr;
  if (message.role == "system") affixes = &format_.system;
  if (message.role == "user") affixes = &format_.user;
  if (message.role == "assistant") affixes = &format_.assistant;
  if (affixes == nullptr) {
    throw DataError("chat message " + std::to_string(index + 1) + " has role '" + message.role +
                    "'; expected one of: system, user, assistant");
  }
  out += affixes->prefix;
  out += format_.trim_content ? trim_whitespace(message.content) : message.content;
  out += affixes->suffix;
}

std::string ChatTemplate::render(const mr::sdk::Conversation& conversation,
                                 bool add_generation_prompt) const {
  std::string out = format_.bos;
  if (!format_.default_system.empty() &&
      (conversation.empty() || conversation.front().role != "system")) {
    append_message(out, {"system", format_.default_system}, 0);
  }
  for (std::size_t i = 0; i < conversation.size(); ++i) append_message(out, conversation[i], i);
  if (add_generation_prompt) out += format_.generation_prompt;
  return out;
}

TrainingText ChatTemplate::render_for_training(const mr::sdk::Conversation& prompt,
                                               std::string_view response,
                                               bool complete) const {
  if (!prompt.empty() && prompt.back().role == "assistant") {
    throw DataError("training prompt ends with an assistant message (message " +
                    std::to_string(prompt.size()) +
                    "); the response would be a second consecutive assistant turn");
  }
  TrainingText text;
  text.prompt_text = render(prompt, /*add_generation_prompt=*/true);
  text.response_text = format_.trim_content ? trim_whitespace(response) : response;
  if (complete) text.response_text += format_.assistant.suffix;
  return text;
}

std::vector<TokenId> ChatTemplate::stop_token_ids(
    const Tokenizer& tokenizer, const std::filesystem::path& generation_config_path) const {
  std::vector<TokenId> ids;
  if (const auto eos = tokenizer.eos_id()) ids.push_back(*eos);
  std::error_code ec;
  if (!generation_config_path.empty() && std::filesystem::exists(generation_config_path, ec)) {
    for (const TokenId id : read_generation_config_eos(generation_config_path)) {
      if (!tokenizer.id_to_token(id)) {
        throw BackendError(generation_config_path.string() + ": eos_token_id " +
                           std::to_string(id) + " is not a token of the tokenizer " +
                           tokenizer.origin() + " (vocabulary size " +
                           std::to_string(tokenizer.vocab_size()) + ")");
      }
      ids.push_back(id);
    }
  }
  if (const auto id = added_token_id(tokenizer, format_.end_of_turn)) ids.push_back(*id);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

std::vector<std::string> ChatTemplate::stop_strings(const Tokenizer& tokenizer) const {
  if (added_token_id(tokenizer, format_.end_of_turn)) return {};
  return {format_.end_of_turn};
}

std::vector<TokenId> parse_generation_config_eos(std::string_view json_text,
                                                 std::string_view origin) {
  const std::string where(origin);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::parse_error& e) {
    throw BackendError(where + ": malformed JSON: " + e.what());
  }
  if (!j.is_object()) {
    throw BackendError(where + ": expected a JSON object, got " + j.type_name());
  }
  const auto it = j.find("eos_token_id");
  if (it == j.end() || it->is_null()) return {};
  const auto bad = [&]() {
    std::string got = it->dump();
    if (got.size() > 80) got = got.substr(0, 77) + "...";
    return BackendError(
        where + ": eos_token_id must be a non-negative integer or a list of them, got " + got);
  };
  const auto one = [&](const nlohmann::json& v) -> TokenId {
    if (v.is_number_unsigned()) {
      const auto u = v.get<std::uint64_t>();
      if (u <= static_cast<std::uint64_t>(std::numeric_limits<TokenId>::max())) {
        return static_cast<TokenId>(u);
      }
    } else if (v.is_number_integer() && v.get<std::int64_t>() >= 0) {
      return v.get<std::int64_t>();
    }
    throw bad();
  };
  std::vector<TokenId> ids;
  if (it->is_array()) {
    for (const auto& v : *it) ids.push_back(one(v));
  } else {
    ids.push_back(one(*it));
  }
  return ids;
}

std::vector<TokenId> read_generation_config_eos(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw BackendError(path.string() + ": cannot open generation config");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw BackendError(path.string() + ": cannot read generation config");
  return parse_generation_config_eos(text.str(), path.string());
}

}  // namespace mr::chat
