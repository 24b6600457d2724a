// UTF-8 repair, streaming boundaries and NFC (expected values computed with Python 3.11's
// bytes.decode(errors="replace") and unicodedata.normalize("NFC")).
#include <catch2/catch.hpp>

#include <string>

#include "metareward/tokenizer/unicode.hpp"

using namespace mr::tokenizer::unicode;

namespace {
const std::string kReplacement = "\xEF\xBF\xBD";
}

TEST_CASE("tokenizer unicode: utf8_lossy: each maximal ill-formed subpart becomes one U+FFFD",
          "[tokenizer][unicode]") {
  SECTION("valid text is unchanged") {
    CHECK(utf8_lossy("héllo 日本 \xF0\x9F\x98\x80") == "héllo 日本 \xF0\x9F\x98\x80");
  }
  SECTION("a truncated sequence is one replacement") {
    CHECK(utf8_lossy("\xF0\x9F\x98") == kReplacement);
    CHECK(utf8_lossy("\xE2\x82"
                     "A") == kReplacement + "A");
  }
  SECTION("overlongs, surrogates and values above U+10FFFF are replaced byte by byte") {
    CHECK(utf8_lossy("\xC0\xAF") == kReplacement + kReplacement);
    CHECK(utf8_lossy("\xED\xA0\x80") == kReplacement + kReplacement + kReplacement);
    CHECK(utf8_lossy("\xF4\x90\x80\x80") ==
          kReplacement + kReplacement + kReplacement + kReplacement);
  }
  SECTION("a stray byte between characters") {
    CHECK(utf8_lossy("a\xFF"
                     "b") == "a" + kReplacement + "b");
  }
}

TEST_CASE(
    "tokenizer unicode: utf8_incomplete_tail: only a well-formed but unfinished character is held",
    "[tokenizer][unicode]") {
  CHECK(utf8_incomplete_tail("") == 0);
  CHECK(utf8_incomplete_tail("abc") == 0);
  CHECK(utf8_incomplete_tail("a\xC3") == 1);
  CHECK(utf8_incomplete_tail("a\xF0\x9F") == 2);
  CHECK(utf8_incomplete_tail("a\xF0\x9F\x98") == 3);
  CHECK(utf8_incomplete_tail("a\xF0\x9F\x98\x80") == 0);
  CHECK(utf8_incomplete_tail("\xED\xA0") == 0);  // surrogate: can never complete
  CHECK(utf8_incomplete_tail("\xE2\x28") == 0);  // broken already
  CHECK(utf8_incomplete_tail("\x80\x80") == 0);  // stray continuation bytes
}

TEST_CASE("tokenizer unicode: is_valid_utf8 and append_utf8 agree", "[tokenizer][unicode]") {
  std::string s;
  for (char32_t cp : {U'a', U'\u00e9', U'\u65e5', U'\U0001F600', U'\U0010FFFF'}) append_utf8(s, cp);
  CHECK(s == "a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF");
  CHECK(is_valid_utf8(s));
  CHECK_FALSE(is_valid_utf8("\xC3"));
  std::string bad;
  append_utf8(bad, 0xD800);  // a surrogate cannot be encoded
  CHECK(bad == kReplacement);
}

TEST_CASE("tokenizer unicode: nfc: canonical decomposition, reordering and composition",
          "[tokenizer][unicode]") {
  SECTION("ASCII and precomposed text are unchanged") {
    CHECK(nfc("plain ascii") == "plain ascii");
    CHECK(nfc("caf\u00e9 \u65e5\u672c") == "caf\u00e9 \u65e5\u672c");
  }
  SECTION("a base letter and a combining mark compose") {
    CHECK(nfc("e\u0301") == "\u00e9");
    CHECK(nfc("e\u0327\u0301") == "\u0229\u0301");
  }
  SECTION("marks are reordered by combining class before composing") {
    CHECK(nfc("a\u0302\u0323") == "\u1ead");
  }
  SECTION("a second mark of the same class is blocked") {
    CHECK(nfc("a\u0301\u0301") == "\u00e1\u0301");
  }
  SECTION("singletons and composition exclusions stay decomposed") {
    CHECK(nfc("\u212b") == "\u00c5");
    CHECK(nfc("\u095b") == "\u091c\u093c");
    CHECK(nfc("\u0344") == "\u0308\u0301");
  }
  SECTION("Hangul jamo compose algorithmically") {
    CHECK(nfc("\u1100\u1161\u11a8") == "\uac01");
    CHECK(nfc("\uac00\u11a8") == "\uac01");
  }
  SECTION("ill-formed bytes pass through and block composition") {
    CHECK(nfc("e\xFF\u0301") == "e\xFF\u0301");
    CHECK(nfc("\xC3") == "\xC3");
  }
}

TEST_CASE("tokenizer unicode: is_white_space follows the White_Space property",
          "[tokenizer][unicode]") {
  for (char32_t cp : {U' ', U'\t', U'\n', U'\r', U'\u0085', U'\u00a0', U'\u2007', U'\u3000'}) {
    CHECK(is_white_space(cp));
  }
  for (char32_t cp : {U'a', U'\u200b', U'\u180e', U'_'}) CHECK_FALSE(is_white_space(cp));
}
