#include "byte_level.hpp"

#include "metareward/tokenizer/unicode.hpp"

namespace mr::tokenizer::detail {

const ByteLevelTables& byte_level_tables() {
  static const ByteLevelTables tables = [] {
    ByteLevelTables t;
    t.cp_to_byte.fill(-1);
    // Printable bytes stand for themselves; the others take code points from U+0100 upwards.
    auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const char32_t cp = printable(b) ? static_cast<char32_t>(b) : next++;
      t.byte_to_cp[b] = cp;
      unicode::append_utf8(t.byte_to_utf8[b], cp);
      t.cp_to_byte[cp] = static_cast<std::int16_t>(b);
    }
    return t;
  }();
  return tables;
}

void byte_level_encode(std::string_view bytes, std::string& out) {
  const ByteLevelTables& t = byte_level_tables();
  for (const char c : bytes) out += t.byte_to_utf8[static_cast<unsigned char>(c)];
}

bool byte_level_decode(std::string_view token, std::string& out) {
  const ByteLevelTables& t = byte_level_tables();
  std::string bytes;
  bytes.reserve(token.size());
  std::size_t pos = 0;
  while (pos < token.size()) {
    const char32_t cp = unicode::decode_utf8(token, pos);
    if (cp == unicode::kInvalid || cp >= t.cp_to_byte.size() || t.cp_to_byte[cp] < 0) {
      return false;
    }
    bytes.push_back(static_cast<char>(t.cp_to_byte[cp]));
  }
  out += bytes;
  return true;
}

}  // namespace mr::tokenizer::detail
