/// @file tokenizer.hpp
/// A text-level reader of Hugging Face `tokenizer.json` files for byte-level BPE models
/// (GPT-2, Llama-3, Qwen2/3 and small from-scratch byte-level models), matching the ids of HF
/// `tokenizers` exactly. No libtorch: the torch backend links this as a static library.
///
/// Supported components (anything else is rejected with a BackendError naming the file):
/// - normalizer: null, NFC, Sequence of those;
/// - pre_tokenizer: Split (Regex or String pattern, every behavior, invert), ByteLevel
///   (add_prefix_space, use_regex), Digits, Sequence of those;
/// - model: BPE (merges as "a b" strings or [a, b] pairs, ignore_merges, byte_fallback, unk_token,
///   fuse_unk, continuing_subword_prefix, end_of_word_suffix);
/// - post_processor: null, ByteLevel, TemplateProcessing, BertProcessing, RobertaProcessing,
///   Sequence (applied only when encode() is asked to add special tokens);
/// - decoder: ByteLevel or null (HF then joins tokens with spaces).
///
/// Like HF, added tokens go through the decoder too (so a non-ASCII added token spelled with
/// byte-level characters decodes as those bytes; HF issues #1392/#1996).
/// Differences from HF, all on input HF cannot even represent: encode() accepts ill-formed UTF-8
/// (such bytes never match a regex and go through byte-level BPE as themselves, so byte-level
/// tokenizers round-trip arbitrary bytes); decode() replaces ill-formed UTF-8 with U+FFFD exactly
/// like HF and throws on ids HF would silently drop (negative, out of range, unassigned).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mr::tokenizer {

/// A token id (int64 to match the SDK's id vectors and torch's index type).
using TokenId = std::int64_t;

/// A token that is matched in raw text before pre-tokenization (HF "added token").
struct AddedToken {
  TokenId id = 0;            ///< Its id (may also be a regular vocabulary id).
  std::string content;       ///< The exact text it matches.
  bool special = false;      ///< Special tokens are dropped by decode(skip_special_tokens).
  bool lstrip = false;       ///< Also swallow whitespace to its left.
  bool rstrip = false;       ///< Also swallow whitespace to its right.
  bool single_word = false;  ///< Only match when not inside a word.
  bool normalized = false;   ///< Match in normalized text (else in the raw text).
};

/// What tokenizer_config.json says (all optional; absent file = defaults).
struct TokenizerConfig {
  std::optional<std::string> bos_token;  ///< `bos_token` (string or {"content": ...}).
  std::optional<std::string> eos_token;  ///< `eos_token`.
  std::optional<std::string> pad_token;  ///< `pad_token`.
  std::optional<std::string> unk_token;  ///< `unk_token`.
  /// The default chat template, raw Jinja text (`chat_template` string, or the entry named
  /// "default" / the first one when it is a list of {name, template}).
  std::optional<std::string> chat_template;
  /// Every named template when `chat_template` is a list (empty when it is a plain string).
  std::map<std::string, std::string> named_chat_templates;
  std::optional<bool> add_bos_token;  ///< `add_bos_token` (informational; see encode()).
  std::optional<bool> add_eos_token;  ///< `add_eos_token` (informational; see encode()).
  /// `clean_up_tokenization_spaces`: transformers' decode() then runs clean_up_tokenization().
  bool clean_up_tokenization_spaces = false;
  std::optional<std::int64_t> model_max_length;  ///< `model_max_length` (absent when absurd).
  std::string tokenizer_class;                   ///< `tokenizer_class`, e.g. "Qwen2Tokenizer".
  std::vector<AddedToken> added_tokens_decoder;  ///< `added_tokens_decoder`, sorted by id.
};

/// Options of encode().
struct EncodeOptions {
  /// Apply the tokenizer.json post_processor (e.g. a TemplateProcessing that adds BOS). HF's
  /// `add_special_tokens`. The Llama-3 and Qwen3 fixtures were made without it.
  bool add_special_tokens = false;
  /// Treat special added tokens as plain text (HF `split_special_tokens`); use for untrusted text
  /// that must not be able to inject control tokens. Non-special added tokens still match.
  bool split_special_tokens = false;
};

/// A loaded tokenizer. Immutable after loading and safe to use from several threads; copies
/// share the loaded data (and the per-word cache).
class Tokenizer {
 public:
  /// Loads `tokenizer_json` and, when given and present, `tokenizer_config_json`. Throws
  /// mr::sdk::BackendError naming the file on a missing/unreadable file or malformed content.
  static Tokenizer from_files(const std::filesystem::path& tokenizer_json,
                              const std::optional<std::filesystem::path>& tokenizer_config_json);
  /// Loads `dir`/tokenizer.json and `dir`/tokenizer_config.json (the latter optional).
  static Tokenizer from_directory(const std::filesystem::path& dir);
  /// Parses tokenizer.json (and optionally tokenizer_config.json) text; `origin` names the
  /// source in error messages.
  static Tokenizer from_json(std::string_view tokenizer_json,
                             std::string_view tokenizer_config_json = {},
                             std::string_view origin = "<memory>");

  /// Token ids of `text`; see EncodeOptions.
  std::vector<TokenId> encode(std::string_view text, const EncodeOptions& options = {}) const;
  /// Shorthand for encode(text, {add_special_tokens}).
  std::vector<TokenId> encode(std::string_view text, bool add_special_tokens) const {
    return encode(text, EncodeOptions{add_special_tokens, false});
  }

  /// The text of `ids`, as HF `tokenizers` decodes it: bytes of consecutive tokens are joined
  /// before UTF-8 is checked, so a character split across tokens comes back whole; bytes that are
  /// still ill-formed become U+FFFD. Throws mr::sdk::BackendError on an id that is negative,
  /// >= vocab_size() or unassigned.
  std::string decode(std::span<const TokenId> ids, bool skip_special_tokens = false) const;

  /// The raw bytes token `id` contributes to decoded text (byte-level tokens may hold part of a
  /// UTF-8 character). Throws like decode() on a bad id.
  const std::string& token_bytes(TokenId id) const;

  /// One more than the largest id (vocabulary plus added tokens).
  std::size_t vocab_size() const;
  /// The id of a vocabulary or added token spelled exactly `token`.
  std::optional<TokenId> token_to_id(std::string_view token) const;
  /// The vocabulary spelling of `id` (byte-level characters for BPE tokens), if assigned.
  std::optional<std::string> id_to_token(TokenId id) const;
  /// True when `id` is a special added token.
  bool is_special(TokenId id) const;
  /// Added tokens (tokenizer.json plus any only in added_tokens_decoder), sorted by id.
  const std::vector<AddedToken>& added_tokens() const;

  /// tokenizer_config.json content.
  const TokenizerConfig& config() const;
  /// Id of config().bos_token when it names a known token.
  std::optional<TokenId> bos_id() const;
  /// Id of config().eos_token when it names a known token.
  std::optional<TokenId> eos_id() const;
  /// Id of config().pad_token when it names a known token.
  std::optional<TokenId> pad_id() const;

  /// Where the tokenizer was loaded from (the tokenizer.json path or the `origin` given).
  const std::string& origin() const;

  struct Impl;  ///< Implementation (opaque).

 private:
  friend class IncrementalDecoder;
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

/// Streaming decoder for generation: feed ids one at a time and get back the text that is now
/// final. A multi-byte character split across tokens is held back until it is complete, so the
/// pieces never contain a broken character; after finish() the concatenated pieces equal
/// tokenizer.decode(all ids, skip_special_tokens).
class IncrementalDecoder {
 public:
  /// Decodes with `tokenizer` (a cheap shared copy is kept).
  explicit IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false);

  /// Adds one id; returns the newly completed text (possibly empty). Throws like decode().
  std::string push(TokenId id);
  /// Adds several ids; returns the newly completed text.
  std::string push(std::span<const TokenId> ids);
  /// Flushes held-back bytes (an incomplete character becomes U+FFFD) and returns them.
  std::string finish();
  /// All text returned so far.
  const std::string& text() const { return text_; }
  /// Number of bytes currently held back (0 to 3).
  std::size_t pending_bytes() const { return pending_.size(); }
  /// Forgets everything, ready for a new sequence.
  void reset();

 private:
  Tokenizer tokenizer_;
  bool skip_special_;
  bool join_with_spaces_;
  bool first_ = true;
  std::string pending_;
  std::string text_;
};

/// transformers' `clean_up_tokenization`: removes the space before . , ! ? and common English
/// contractions ("do n't" -> "don't"). Only for callers that want transformers' decode() output
/// when config().clean_up_tokenization_spaces is set; it is lossy.
std::string clean_up_tokenization(std::string_view text);

/// Special tokens of a byte-level tokenizer made by write_byte_level_tokenizer().
struct ByteLevelSpecials {
  std::string bos_token = "<|bos|>";             ///< Beginning of text (empty: none).
  std::string eos_token = "<|eos|>";             ///< End of text (empty: none).
  std::string pad_token = "<|pad|>";             ///< Padding (empty: none).
  std::vector<std::string> additional;           ///< More special tokens, e.g. chat turn markers.
  std::optional<std::string> chat_template;      ///< Written to tokenizer_config.json as is.
  std::optional<std::int64_t> model_max_length;  ///< Written to tokenizer_config.json.
};

/// Writes `dir`/tokenizer.json and `dir`/tokenizer_config.json for a byte-level tokenizer with
/// no merges: ids 0..255 are the bytes 0..255 (GPT-2 byte-level spelling, so HF `tokenizers`
/// loads it too), then the special tokens in the order bos, eos, pad, additional. Any bytes
/// round-trip. Creates `dir` if needed. Throws mr::sdk::BackendError on an empty, duplicate or
/// single-character special token or when a file cannot be written.
void write_byte_level_tokenizer(const std::filesystem::path& dir,
                                const ByteLevelSpecials& specials);

}  // namespace mr::tokenizer
