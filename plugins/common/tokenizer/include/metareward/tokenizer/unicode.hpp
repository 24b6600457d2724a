/// @file unicode.hpp
/// The small amount of Unicode the tokenizer needs: strict UTF-8 decoding, lossy repair of
/// invalid UTF-8 (as Rust's `String::from_utf8_lossy`, which HF `tokenizers` uses when it decodes),
/// NFC normalization (Qwen's normalizer) and the White_Space property.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mr::tokenizer::unicode {

/// The Unicode version the NFC tables were generated from (tools/gen_nfc_tables.py).
const char* nfc_unicode_version();

/// Appends the UTF-8 encoding of `cp` to `out`. Code points above U+10FFFF and surrogates are
/// written as U+FFFD.
void append_utf8(std::string& out, char32_t cp);

/// Decodes one code point of `text` starting at byte `pos`. Returns the code point and advances
/// `pos` past it; on an ill-formed sequence returns `kInvalid` and advances `pos` past its
/// maximal subpart (at least one byte), the unit U+FFFD replaces in lossy decoding.
char32_t decode_utf8(std::string_view text, std::size_t& pos);

/// Marker `decode_utf8` returns for an ill-formed sequence.
inline constexpr char32_t kInvalid = 0xFFFFFFFFu;

/// True when `text` is well-formed UTF-8.
bool is_valid_utf8(std::string_view text);

/// `bytes` as valid UTF-8: each maximal subpart of an ill-formed sequence becomes U+FFFD, the same
/// result as Rust's `String::from_utf8_lossy` and Python's `bytes.decode(errors="replace")`.
std::string utf8_lossy(std::string_view bytes);

/// Length of the trailing bytes of `bytes` that start a multi-byte sequence which is well-formed
/// so far but incomplete (0 to 3). Streaming decoders hold these back until more bytes arrive.
std::size_t utf8_incomplete_tail(std::string_view bytes);

/// Unicode Normalization Form C of `text`. Bytes that are not well-formed UTF-8 are copied
/// through unchanged (they act as starters that never compose).
std::string nfc(std::string_view text);

/// The Unicode White_Space property (what Rust's `char::is_whitespace` and Oniguruma's `\s` use).
bool is_white_space(char32_t cp);

}  // namespace mr::tokenizer::unicode
