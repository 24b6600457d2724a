// GPT-2's reversible byte <-> printable-character mapping used by byte-level BPE vocabularies.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace mr::tokenizer::detail {

/// The mapping tables (built once, immutable).
struct ByteLevelTables {
  /// UTF-8 of the character that stands for each byte.
  std::array<std::string, 256> byte_to_utf8;
  /// The code point that stands for each byte.
  std::array<char32_t, 256> byte_to_cp{};
  /// Inverse: code point (< 0x144) -> byte, or -1.
  std::array<std::int16_t, 0x144> cp_to_byte{};
};

/// The process-wide tables.
const ByteLevelTables& byte_level_tables();

/// Appends the byte-level characters for `bytes` to `out`.
void byte_level_encode(std::string_view bytes, std::string& out);

/// Maps a vocabulary token back to bytes; false (and `out` untouched) when some character of
/// `token` is not a byte-level character (HF then keeps the token's own UTF-8).
bool byte_level_decode(std::string_view token, std::string& out);

}  // namespace mr::tokenizer::detail
