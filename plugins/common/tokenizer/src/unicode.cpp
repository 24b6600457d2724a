// UTF-8 helpers and NFC. NFC follows UAX #15: full canonical decomposition, canonical ordering,
// then canonical composition of primary composites; Hangul is algorithmic.
#include "metareward/tokenizer/unicode.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace mr::tokenizer::unicode {
namespace {

struct CccRange {
  char32_t first;
  char32_t last;
  std::uint8_t ccc;
};
struct DecompEntry {
  char32_t cp;
  std::uint16_t offset;
  std::uint8_t length;
};
struct CompositionEntry {
  char32_t first;
  char32_t second;
  char32_t composite;
};

#include "nfc_tables.inc"

// Hangul syllable arithmetic (Unicode chapter 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28;
constexpr char32_t kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

// Raw (ill-formed) bytes travel through NFC as values above the Unicode range.
constexpr char32_t kRawByteBase = 0x200000;

std::uint8_t combining_class(char32_t cp) {
  if (cp < 0x300 || cp >= kRawByteBase) return 0;
  const auto* end = std::end(kCccRanges);
  const auto* it = std::upper_bound(std::begin(kCccRanges), end, cp,
                                    [](char32_t c, const CccRange& r) { return c < r.first; });
  if (it == std::begin(kCccRanges)) return 0;
  --it;
  return cp <= it->last ? it->ccc : 0;
}

void decompose(char32_t cp, std::vector<char32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const char32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    return;
  }
  if (cp >= 0xC0 && cp < kRawByteBase) {
    const auto* end = std::end(kDecompEntries);
    const auto* it = std::lower_bound(std::begin(kDecompEntries), end, cp,
                                      [](const DecompEntry& e, char32_t c) { return e.cp < c; });
    if (it != end && it->cp == cp) {
      out.insert(out.end(), kDecompData + it->offset, kDecompData + it->offset + it->length);
      return;
    }
  }
  out.push_back(cp);
}

// The primary composite of (first, second), or 0 when there is none.
char32_t compose(char32_t first, char32_t second) {
  if (first >= kLBase && first < kLBase + kLCount && second >= kVBase &&
      second < kVBase + kVCount) {
    return kSBase + ((first - kLBase) * kVCount + (second - kVBase)) * kTCount;
  }
  if (first >= kSBase && first < kSBase + kSCount && (first - kSBase) % kTCount == 0 &&
      second > kTBase && second < kTBase + kTCount) {
    return first + (second - kTBase);
  }
  if (first >= kRawByteBase || second >= kRawByteBase) return 0;
  const auto* end = std::end(kCompositions);
  const auto* it =
      std::lower_bound(std::begin(kCompositions), end, std::pair{first, second},
                       [](const CompositionEntry& e, std::pair<char32_t, char32_t> k) {
                         return e.first < k.first || (e.first == k.first && e.second < k.second);
                       });
  if (it != end && it->first == first && it->second == second) return it->composite;
  return 0;
}

}  // namespace

const char* nfc_unicode_version() {
  return kNfcUnicodeVersion;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

char32_t decode_utf8(std::string_view text, std::size_t& pos) {
  const auto b0 = static_cast<unsigned char>(text[pos]);
  if (b0 < 0x80) {
    ++pos;
    return b0;
  }
  int need = 0;
  char32_t cp = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    ++pos;
    return kInvalid;
  }
  std::size_t p = pos + 1;
  for (int i = 0; i < need; ++i) {
    if (p >= text.size()) {
      pos = p;
      return kInvalid;
    }
    const auto b = static_cast<unsigned char>(text[p]);
    if (b < lo || b > hi) {
      pos = p;  // the offending byte starts the next unit
      return kInvalid;
    }
    lo = 0x80;
    hi = 0xBF;
    cp = (cp << 6) | (b & 0x3F);
    ++p;
  }
  pos = p;
  return cp;
}

bool is_valid_utf8(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (decode_utf8(text, pos) == kInvalid) return false;
  }
  return true;
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    const std::size_t start = pos;
    const char32_t cp = decode_utf8(bytes, pos);
    if (cp == kInvalid) {
      out += "\xEF\xBF\xBD";
    } else {
      out.append(bytes.substr(start, pos - start));
    }
  }
  return out;
}

std::size_t utf8_incomplete_tail(std::string_view bytes) {
  const std::size_t n = bytes.size();
  for (std::size_t i = n > 3 ? n - 3 : 0; i < n; ++i) {
    const auto b0 = static_cast<unsigned char>(bytes[i]);
    std::size_t need = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      need = 1;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      need = 2;
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      need = 3;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    } else {
      continue;
    }
    const std::size_t have = n - i - 1;
    if (have >= need) continue;
    bool ok = true;
    for (std::size_t k = i + 1; k < n; ++k) {
      const auto b = static_cast<unsigned char>(bytes[k]);
      if (b < lo || b > hi) {
        ok = false;
        break;
      }
      lo = 0x80;
      hi = 0xBF;
    }
    // A lead byte is never a continuation byte, so at most one candidate can qualify.
    if (ok) return n - i;
  }
  return 0;
}

std::string nfc(std::string_view text) {
  // Every code point below U+0300 is NFC-stable and never composes with its predecessor; the
  // first byte of any code point >= U+0300 is >= 0xCC. Most ASCII/Latin-1 text stops here.
  if (std::none_of(text.begin(), text.end(),
                   [](char c) { return static_cast<unsigned char>(c) >= 0xCC; })) {
    return std::string(text);
  }

  std::vector<char32_t> buf;
  buf.reserve(text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t start = pos;
    const char32_t cp = decode_utf8(text, pos);
    if (cp == kInvalid) {
      for (std::size_t k = start; k < pos; ++k) {
        buf.push_back(kRawByteBase + static_cast<unsigned char>(text[k]));
      }
    } else {
      decompose(cp, buf);
    }
  }

  // Canonical ordering: stable sort each run of non-starters by combining class.
  for (std::size_t i = 0; i < buf.size();) {
    if (combining_class(buf[i]) == 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < buf.size() && combining_class(buf[j]) != 0) ++j;
    if (j - i > 1) {
      std::stable_sort(buf.begin() + static_cast<std::ptrdiff_t>(i),
                       buf.begin() + static_cast<std::ptrdiff_t>(j), [](char32_t a, char32_t b) {
                         return combining_class(a) < combining_class(b);
                       });
    }
    i = j;
  }

  // Canonical composition (the reference algorithm of UAX #15).
  if (!buf.empty()) {
    std::size_t starter_pos = 0;
    char32_t starter = buf[0];
    int last_class = combining_class(starter);
    if (last_class != 0) last_class = 256;  // a leading non-starter blocks everything after it
    std::size_t out_pos = 1;
    for (std::size_t i = 1; i < buf.size(); ++i) {
      const char32_t ch = buf[i];
      const int ch_class = combining_class(ch);
      const char32_t composite = compose(starter, ch);
      if (composite != 0 && (last_class < ch_class || last_class == 0)) {
        buf[starter_pos] = composite;
        starter = composite;
        continue;
      }
      if (ch_class == 0) {
        starter_pos = out_pos;
        starter = ch;
      }
      last_class = ch_class;
      buf[out_pos++] = ch;
    }
    buf.resize(out_pos);
  }

  std::string out;
  out.reserve(text.size());
  for (const char32_t cp : buf) {
    if (cp >= kRawByteBase) {
      out.push_back(static_cast<char>(cp - kRawByteBase));
    } else {
      append_utf8(out, cp);
    }
  }
  return out;
}

bool is_white_space(char32_t cp) {
  switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

}  // namespace mr::tokenizer::unicode
