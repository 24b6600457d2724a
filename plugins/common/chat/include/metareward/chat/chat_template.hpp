/// @file chat_template.hpp
/// Chat templates as plain text, without Jinja: a ChatFormat is a small table of per-role
/// prefixes/suffixes that reproduces the Hugging Face chat templates this project targets, and a
/// ChatTemplate renders conversations with it. The output is text for mr::tokenizer: special
/// tokens are written as their literal token text and the tokenizer's added-token matching turns
/// them into ids (encode with add_special_tokens = false: the BOS text is already in the text).
/// No libtorch.
///
/// Built-in formats (for a conversation of system S, user U and assistant A):
/// - `llama3` (Meta Llama-3 Instruct template with `add_generation_prompt`):
///   `<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>`
///   `<|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>`
///   `<|start_header_id|>assistant<|end_header_id|>\n\nA<|eot_id|>`; message content is trimmed
///   of leading/trailing whitespace like the template's `| trim`. The BOS text is the
///   tokenizer's `bos_token`. Llama-3.1+ templates also write a "Cutting Knowledge Date" system
///   preamble, which this format does not reproduce.
/// - `chatml` (Qwen2/Qwen2.5): `<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n`
///   `<|im_start|>assistant\nA<|im_end|>\n`. When the conversation does not start with a system
///   message, a default system message is inserted only if the tokenizer's template writes one
///   (Qwen2: "You are a helpful assistant.", Qwen2.5: "You are Qwen, created by Alibaba Cloud.
///   You are a helpful assistant."); Qwen3 templates have none. Qwen3's `<think>` blocks are not
///   reproduced.
/// - `plain` (byte-level from-scratch models): `BOS` + `System: S\n` + `User: U\n` +
///   `Assistant: A` + end_of_turn + `\n`, generation prompt `Assistant: `. BOS and end_of_turn
///   are the tokenizer's `bos_token` (empty when none) and `eos_token`.
/// - `custom`: everything from options (see apply_options()).
///
/// Every format renders `bos`, then (when set and the conversation does not start with a system
/// message) the default system message as a system turn, then each message as
/// prefix(role) + content + suffix(role), then the generation prompt when asked. A system message
/// later in the conversation is rendered as a system turn in place, as the HF templates do.
/// Message text is inserted verbatim, so content containing special-token text (e.g. a user
/// typing "<|eot_id|>") becomes that special token, exactly as with HF's apply_chat_template.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "metareward/sdk/types.hpp"
#include "metareward/tokenizer/tokenizer.hpp"

namespace mr::chat {

/// A token id (same type as the tokenizer's).
using TokenId = mr::tokenizer::TokenId;

/// Format options by key (a flat string map, as a plugin's Config table would give them).
using FormatOptions = std::map<std::string, std::string, std::less<>>;

/// Text written around one message of a role.
struct TurnAffixes {
  std::string prefix;  ///< Before the content.
  std::string suffix;  ///< After the content.
};

/// A text-level chat format. Invariants (checked by validate()): generation_prompt equals
/// assistant.prefix and assistant.suffix starts with a non-empty end_of_turn, so that a training
/// prompt ending in the generation prompt plus a response ending in the assistant suffix is
/// exactly the rendering of the whole conversation.
struct ChatFormat {
  std::string name;               ///< "llama3", "chatml", "plain" or "custom".
  std::string bos;                ///< Written once at the very start (may be empty).
  TurnAffixes system;             ///< Around system messages.
  TurnAffixes user;               ///< Around user messages.
  TurnAffixes assistant;          ///< Around assistant messages.
  std::string generation_prompt;  ///< Appended to ask for an assistant turn.
  /// Text that ends an assistant turn (a special token's text for the built-ins); generation
  /// stops on it (see ChatTemplate::stop_token_ids() / stop_strings()).
  std::string end_of_turn;
  /// System message inserted when the conversation does not start with one; empty = none.
  std::string default_system;
  /// Strip leading/trailing whitespace (Python str.strip(), i.e. Jinja's `trim`) from content.
  bool trim_content = false;

  /// Throws mr::sdk::ConfigError naming the format and the broken invariant.
  void validate() const;
};

/// Names accepted by ChatTemplate::from_tokenizer(): auto, llama3, chatml, plain, custom.
const std::vector<std::string>& format_names();
/// Option keys accepted by apply_options(), in documentation order.
const std::vector<std::string>& option_keys();

/// The `llama3` format with the given BOS text.
ChatFormat llama3_format(std::string bos = "<|begin_of_text|>");
/// The `chatml` format with an optional default system message (empty = none).
ChatFormat chatml_format(std::string default_system = {});
/// The `plain` format; `end_of_turn` may be empty here but validate() then rejects it.
ChatFormat plain_format(std::string bos, std::string end_of_turn);

/// Returns `base` with the given options applied. Keys: bos, system_prefix, system_suffix,
/// user_prefix, user_suffix, assistant_prefix, assistant_suffix, generation_prompt, end_of_turn,
/// default_system (empty = none), trim_content ("true"/"false"). assistant_prefix and
/// generation_prompt set each other when only one is given (giving both with different values is
/// an error). end_of_turn given without assistant_suffix replaces the old end_of_turn at the
/// start of the assistant suffix (e.g. plain's "<|eos|>\n" becomes "<|end|>\n"). Throws
/// mr::sdk::ConfigError on an unknown key (listing the valid ones), a bad trim_content value or
/// a result that fails validate().
ChatFormat apply_options(ChatFormat base, const FormatOptions& options);
/// The `custom` format: an empty format with `options` applied (end_of_turn is required).
ChatFormat custom_format(const FormatOptions& options);

/// The built-in format a raw Jinja `chat_template` uses: "llama3" when it contains
/// "<|start_header_id|>", "chatml" when it contains "<|im_start|>", nullopt otherwise.
std::optional<std::string> detect_format(std::string_view chat_template);
/// The default system message a ChatML Jinja template writes when the conversation has none
/// (the text of a string literal "<|im_start|>system\n...<|im_end|>"), or empty when it has none.
std::string chatml_default_system(std::string_view chat_template);

/// Prompt and response text of one training example; prompt_text + response_text equals the
/// rendering of the prompt conversation followed by the response as an assistant message.
struct TrainingText {
  std::string prompt_text;  ///< The prompt, ending with the generation prompt.
  /// Response content + the assistant suffix (end_of_turn first); content only for a response
  /// that did not end (`complete` false: cut at max_new_tokens).
  std::string response_text;
};

/// Renders conversations with one ChatFormat. Immutable and thread-safe.
class ChatTemplate {
 public:
  /// Uses `format` as is; throws mr::sdk::ConfigError when it fails ChatFormat::validate().
  explicit ChatTemplate(ChatFormat format);

  /// The format `name` (one of format_names()) for `tokenizer`, with `options` applied on top
  /// (apply_options()). "auto" detects llama3/chatml from the tokenizer_config.json
  /// chat_template; "custom" uses only `options`. For llama3/chatml, every marker token must be
  /// an added token of `tokenizer`. Throws mr::sdk::ConfigError naming the tokenizer on an
  /// unknown name, a missing or unrecognised chat_template in auto mode (listing the formats),
  /// a missing marker token or bad options.
  static ChatTemplate from_tokenizer(std::string_view name,
                                     const mr::tokenizer::Tokenizer& tokenizer,
                                     const FormatOptions& options = {});

  /// The format in use.
  const ChatFormat& format() const { return format_; }

  /// The text of `conversation`, followed by the generation prompt when
  /// `add_generation_prompt`. Throws mr::sdk::DataError naming the message on an unknown role.
  std::string render(const mr::sdk::Conversation& conversation, bool add_generation_prompt) const;

  /// Splits a training example at the start of the response: prompt_text is
  /// render(prompt, true) and response_text is the (trimmed, for llama3) response plus the
  /// assistant suffix, so prompt_text + response_text == render(prompt + {assistant, response},
  /// false). Throws mr::sdk::DataError when `prompt` ends with an assistant message (the
  /// response would be a second consecutive assistant turn) or has an unknown role.
  TrainingText render_for_training(const mr::sdk::Conversation& prompt,
                                   std::string_view response,
                                   bool complete = true) const;

  /// The token ids that end generation, sorted and unique: the tokenizer's eos_token id, the
  /// `eos_token_id` of `generation_config_path` (skipped when the path is empty or the file does
  /// not exist) and the id of end_of_turn when it is a single added token of `tokenizer`. Throws
  /// mr::sdk::BackendError naming the file when it is malformed or lists an id the tokenizer
  /// does not have.
  std::vector<TokenId> stop_token_ids(const mr::tokenizer::Tokenizer& tokenizer,
                                      const std::filesystem::path& generation_config_path) const;

  /// Stop strings generation needs besides stop_token_ids(): end_of_turn when it is not a single
  /// added token of `tokenizer` (BPE may then merge it with neighbouring text), else none.
  std::vector<std::string> stop_strings(const mr::tokenizer::Tokenizer& tokenizer) const;

 private:
  void append_message(std::string& out,
                      const mr::sdk::ChatMessage& message,
                      std::size_t index) const;
  ChatFormat format_;
};

/// The `eos_token_id` of a generation_config.json text (an integer, a list of integers, null or
/// absent -> empty). `origin` names the source in errors. Throws mr::sdk::BackendError on
/// malformed JSON, a non-object, or an entry that is not a non-negative integer.
std::vector<TokenId> parse_generation_config_eos(std::string_view json_text,
                                                 std::string_view origin);
/// parse_generation_config_eos() of a file; throws mr::sdk::BackendError when unreadable.
std::vector<TokenId> read_generation_config_eos(const std::filesystem::path& path);

/// `text` without leading/trailing whitespace as Python's str.strip() defines it (Unicode
/// White_Space plus U+001C..U+001F), which is what Jinja's `trim` filter does.
std::string_view trim_whitespace(std::string_view text);

}  // namespace mr::chat
