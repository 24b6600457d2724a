// Behaviour of mr::tokenizer on small hand-made tokenizer.json files: BPE merge order, the
// pre-tokenizer split behaviours, added tokens, post-processors, the byte-level writer, streaming
// decode and the errors malformed files produce.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "metareward/sdk/error.hpp"
#include "metareward/tokenizer/tokenizer.hpp"
#include "metareward/tokenizer/unicode.hpp"

namespace fs = std::filesystem;
using mr::tokenizer::ByteLevelSpecials;
using mr::tokenizer::IncrementalDecoder;
using mr::tokenizer::TokenId;
using mr::tokenizer::Tokenizer;
using nlohmann::json;
using Ids = std::vector<TokenId>;

namespace {

// A character-level BPE tokenizer: no normalizer, no pre-tokenizer, no decoder.
json char_bpe(const std::vector<std::string>& vocab, const json& merges) {
  json v = json::object();
  for (std::size_t i = 0; i < vocab.size(); ++i) v[vocab[i]] = i;
  return json{{"version", "1.0"},
              {"added_tokens", json::array()},
              {"normalizer", nullptr},
              {"pre_tokenizer", nullptr},
              {"post_processor", nullptr},
              {"decoder", nullptr},
              {"model", {{"type", "BPE"}, {"vocab", v}, {"merges", merges}}}};
}

Tokenizer load(const json& j, const json& config = json()) {
  return Tokenizer::from_json(j.dump(), config.is_null() ? std::string() : config.dump(),
                              "test.json");
}

json added(TokenId id, const std::string& content, bool special = true) {
  return json{{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
              {"rstrip", false}, {"normalized", false}, {"special", special}};
}

// GPT-2's byte -> character table, written independently of the library.
std::string byte_char(int b) {
  const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
  int cp = b;
  if (!printable) {
    int n = 0;
    for (int k = 0; k < b; ++k) {
      if (!((k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE))) ++n;
    }
    cp = 256 + n;
  }
  std::string s;
  mr::tokenizer::unicode::append_utf8(s, static_cast<char32_t>(cp));
  return s;
}

fs::path scratch_dir(const std::string& name) {
  const fs::path dir = fs::path(MR_BINARY_DIR) / "tests" / "tokenizer_scratch" / name;
  fs::remove_all(dir);
  return dir;
}

}  // namespace

TEST_CASE("tokenizer bpe: merges apply lowest rank first, leftmost on ties", "[tokenizer][bpe]") {
  const std::vector<std::string> vocab{"a", "b", "c", "ab", "bc", "abc", "aa"};
  SECTION("the lower rank wins whatever its position") {
    const auto tok = load(char_bpe(vocab, {"b c", "a b", "ab c"}));
    CHECK(tok.encode("abc") == Ids{0, 4});  // b c first, then no merge for a+bc
    const auto tok2 = load(char_bpe(vocab, {"a b", "b c", "ab c"}));
    CHECK(tok2.encode("abc") == Ids{5});
  }
  SECTION("equal pairs merge from the left") {
    const auto tok = load(char_bpe(vocab, {"a a"}));
    CHECK(tok.encode("aaaa") == Ids{6, 6});
    CHECK(tok.encode("aaa") == Ids{6, 0});
  }
  SECTION("merges given as [a, b] pairs mean the same as \"a b\" strings") {
    const auto strings = load(char_bpe(vocab, {"a b", "ab c"}));
    const auto pairs = load(char_bpe(vocab, json::array({{"a", "b"}, {"ab", "c"}})));
    for (const char* text : {"abc", "cab", "abcabc", "ccba"}) {
      CHECK(strings.encode(text) == pairs.encode(text));
    }
    CHECK(pairs.encode("abcab") == Ids{5, 3});
  }
  SECTION("ignore_merges emits a pre-token that is itself in the vocabulary") {
    auto j = char_bpe(vocab, json::array());
    CHECK(load(j).encode("abc") == Ids{0, 1, 2});
    j["model"]["ignore_merges"] = true;
    CHECK(load(j).encode("abc") == Ids{5});
  }
  SECTION("without a decoder HF joins tokens with spaces") {
    const auto tok = load(char_bpe(vocab, {"a b"}));
    CHECK(tok.decode(Ids{3, 2}) == "ab c");
  }
  SECTION("repeated words come from the cache with the same ids") {
    const auto tok = load(char_bpe(vocab, {"a b", "b c"}));
    const auto first = tok.encode("abcab");
    CHECK(tok.encode("abcab") == first);
  }
}

TEST_CASE("tokenizer bpe: unknown characters, unk, fuse_unk and byte fallback",
          "[tokenizer][bpe]") {
  const std::vector<std::string> vocab{"a", "b", "<unk>", "<0xC3>", "<0xA9>"};
  SECTION("without unk_token an unknown character is dropped, as HF does") {
    CHECK(load(char_bpe(vocab, json::array())).encode("aZb") == Ids{0, 1});
  }
  SECTION("unk_token replaces each unknown character, fuse_unk merges runs") {
    auto j = char_bpe(vocab, json::array());
    j["model"]["unk_token"] = "<unk>";
    CHECK(load(j).encode("aZZb") == Ids{0, 2, 2, 1});
    j["model"]["fuse_unk"] = true;
    CHECK(load(j).encode("aZZb") == Ids{0, 2, 1});
  }
  SECTION("byte_fallback spells an unknown character as <0xXX> tokens") {
    auto j = char_bpe(vocab, json::array());
    j["model"]["byte_fallback"] = true;
    j["model"]["unk_token"] = "<unk>";
    CHECK(load(j).encode("a\u00e9") == Ids{0, 3, 4});
    CHECK(load(j).encode("a\u00ea") == Ids{0, 2});  // <0xAA> missing: unk
  }
}

TEST_CASE("tokenizer pre_tokenizer: Split behaviours follow HF", "[tokenizer][pre_tokenizer]") {
  // ignore_merges makes every piece that is in the vocabulary visible as one id.
  const std::vector<std::string> vocab{"a", "b", "c", "-", "a-", "b-", "-b", "-c", "--"};
  auto make = [&](const std::string& behavior, bool invert) {
    auto j = char_bpe(vocab, json::array());
    j["model"]["ignore_merges"] = true;
    j["pre_tokenizer"] = {{"type", "Split"},
                          {"pattern", {{"String", "-"}}},
                          {"behavior", behavior},
                          {"invert", invert}};
    return load(j);
  };
  const std::string text = "a-b--c";
  CHECK(make("Removed", false).encode(text) == Ids{0, 1, 2});
  CHECK(make("Isolated", false).encode(text) == Ids{0, 3, 1, 3, 3, 2});
  CHECK(make("MergedWithPrevious", false).encode(text) == Ids{4, 5, 3, 2});
  CHECK(make("MergedWithNext", false).encode(text) == Ids{0, 6, 3, 7});
  CHECK(make("Contiguous", false).encode(text) == Ids{0, 3, 1, 8, 2});
  CHECK(make("Removed", true).encode(text) == Ids{3, 3, 3});

  SECTION("a Regex pattern uses Oniguruma's \\s, which includes U+0085") {
    auto j = char_bpe({"a", "b", "\u0085"}, json::array());
    j["pre_tokenizer"] = {{"type", "Split"},
                          {"pattern", {{"Regex", "\\s+"}}},
                          {"behavior", "Removed"},
                          {"invert", false}};
    CHECK(load(j).encode("a\u0085b") == Ids{0, 1});
  }
  SECTION("Digits splits ASCII digit runs or single digits") {
    auto j = char_bpe({"1", "2", "x", "12"}, json::array());
    j["model"]["ignore_merges"] = true;
    j["pre_tokenizer"] = {{"type", "Digits"}, {"individual_digits", false}};
    CHECK(load(j).encode("x12") == Ids{2, 3});
    j["pre_tokenizer"]["individual_digits"] = true;
    CHECK(load(j).encode("x12") == Ids{2, 0, 1});
  }
}

TEST_CASE("tokenizer pre_tokenizer: GPT-2 style ByteLevel with use_regex and add_prefix_space",
          "[tokenizer][pre_tokenizer]") {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  vocab["\u0120h"] = 256;  // "Ġh"
  vocab["\u0120hi"] = 257;
  json j = {
      {"added_tokens", json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"\u0120 h", "\u0120h i"}}}}};
  const auto tok = load(j);
  CHECK(tok.encode("hi") == Ids{257});  // a space is prepended
  CHECK(tok.encode("hi hi") == Ids{257, 257});
  CHECK(tok.encode("hi!") == Ids{257, '!'});
  CHECK(tok.decode(Ids{257, 257}) == " hi hi");
}

TEST_CASE("tokenizer added tokens: matched in raw text before pre-tokenization",
          "[tokenizer][added]") {
  auto base = char_bpe({"a", "b", "<", ">", " "}, json::array());
  SECTION("the longest token wins at the leftmost position") {
    auto j = base;
    j["added_tokens"] = {added(10, "<a>"), added(11, "<a>b")};
    const auto tok = load(j);
    CHECK(tok.encode("a<a>ba<a>") == Ids{0, 11, 0, 10});
    CHECK(tok.is_special(10));
    CHECK_FALSE(tok.is_special(0));
  }
  SECTION("lstrip and rstrip swallow neighbouring whitespace") {
    auto j = base;
    auto t = added(10, "<a>");
    t["lstrip"] = true;
    t["rstrip"] = true;
    // json::array: clang reads `= {t}` with one json as a copy of t, not a one-element array.
    j["added_tokens"] = json::array({t});
    CHECK(load(j).encode("a  <a>  b") == Ids{0, 10, 1});
  }
  SECTION("single_word tokens only match outside words") {
    auto j = base;
    auto t = added(10, "ab", false);
    t["single_word"] = true;
    j["added_tokens"] = json::array({t});
    const auto tok = load(j);
    CHECK(tok.encode("ab") == Ids{10});
    CHECK(tok.encode("a ab") == Ids{0, 4, 10});
    CHECK(tok.encode("aab") == Ids{0, 0, 1});
  }
  SECTION("normalized tokens are matched after normalization") {
    auto j = char_bpe({"a", "e", "\u0301", "\u00e9"}, json::array());
    j["normalizer"] = {{"type", "NFC"}};
    auto t = added(10, "e\u0301", false);  // its content is normalized too
    t["normalized"] = true;
    j["added_tokens"] = json::array({t});
    CHECK(load(j).encode("ae\u0301") == Ids{0, 10});
    CHECK(load(j).encode("a\u00e9") == Ids{0, 10});
  }
  SECTION("tokens only in tokenizer_config.json's added_tokens_decoder are added") {
    const json config = {
        {"added_tokens_decoder", {{"20", {{"content", "<x>"}, {"special", true}}}}},
        {"eos_token", "<x>"}};
    const auto tok = load(base, config);
    CHECK(tok.encode("a<x>") == Ids{0, 20});
    CHECK(tok.eos_id() == TokenId{20});
    CHECK(tok.vocab_size() == 21);
  }
}

TEST_CASE("tokenizer post_processor: applied only with add_special_tokens", "[tokenizer][post]") {
  auto j = char_bpe({"a", "<s>", "</s>"}, json::array());
  j["added_tokens"] = {added(1, "<s>"), added(2, "</s>")};
  SECTION("TemplateProcessing inside a Sequence") {
    j["post_processor"] = json::parse(R"({
      "type": "Sequence",
      "processors": [
        {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": "</s>", "type_id": 0}}],
         "pair": [],
         "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                            "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}]})");
    const auto tok = load(j);
    CHECK(tok.encode("aa") == Ids{0, 0});
    CHECK(tok.encode("aa", true) == Ids{1, 0, 0, 2});
    CHECK(tok.encode("", true) == Ids{1, 2});
  }
  SECTION("RobertaProcessing wraps in cls ... sep") {
    j["post_processor"] = {
        {"type", "RobertaProcessing"}, {"cls", {"<s>", 1}}, {"sep", {"</s>", 2}}};
    CHECK(load(j).encode("a", true) == Ids{1, 0, 2});
  }
}

TEST_CASE("tokenizer byte-level writer: a no-merge tokenizer round-trips any bytes",
          "[tokenizer][byte_level]") {
  const fs::path dir = scratch_dir("byte_level");
  ByteLevelSpecials specials;
  specials.additional = {"<|user|>", "<|assistant|>"};
  specials.chat_template = "{{ messages }}";
  specials.model_max_length = 2048;
  mr::tokenizer::write_byte_level_tokenizer(dir, specials);
  REQUIRE(fs::exists(dir / "tokenizer.json"));
  const auto tok = Tokenizer::from_directory(dir);

  SECTION("ids are the bytes, then the specials in order") {
    CHECK(tok.vocab_size() == 256 + 5);
    CHECK(tok.encode("Hi\n") == Ids{'H', 'i', '\n'});
    CHECK(tok.encode("\u00e9") == Ids{0xC3, 0xA9});
    CHECK(tok.bos_id() == TokenId{256});
    CHECK(tok.eos_id() == TokenId{257});
    CHECK(tok.pad_id() == TokenId{258});
    CHECK(tok.token_to_id("<|assistant|>") == TokenId{260});
    CHECK(tok.config().chat_template == std::string("{{ messages }}"));
    CHECK(tok.config().model_max_length == std::int64_t{2048});
  }
  SECTION("special tokens are matched in text and can be skipped when decoding") {
    const auto ids = tok.encode("<|bos|><|user|>hi<|eos|>");
    CHECK(ids == Ids{256, 259, 'h', 'i', 257});
    CHECK(tok.decode(ids) == "<|bos|><|user|>hi<|eos|>");
    CHECK(tok.decode(ids, true) == "hi");
  }
  SECTION("arbitrary UTF-8 and arbitrary bytes round-trip") {
    const std::string utf8 = "a\u00e9\u65e5\u672c\U0001F917 \t\r\n\u200b\u0301 <|not_special|>";
    CHECK(tok.decode(tok.encode(utf8)) == utf8);
    std::mt19937 rng(42);
    std::string bytes;
    for (int i = 0; i < 5000; ++i) bytes.push_back(static_cast<char>(rng() & 0xFF));
    const auto ids = tok.encode(bytes);
    CHECK(ids.size() == bytes.size());
    std::string raw;
    for (const TokenId id : ids) raw += tok.token_bytes(id);
    CHECK(raw == bytes);
    CHECK(tok.decode(ids) == mr::tokenizer::unicode::utf8_lossy(bytes));
  }
  SECTION("invalid specials are refused") {
    ByteLevelSpecials dup;
    dup.additional = {"<|eos|>"};
    CHECK_THROWS_WITH(mr::tokenizer::write_byte_level_tokenizer(scratch_dir("dup"), dup),
                      Catch::Contains("listed twice"));
    ByteLevelSpecials single;
    single.bos_token = "!";
    CHECK_THROWS_WITH(mr::tokenizer::write_byte_level_tokenizer(scratch_dir("single"), single),
                      Catch::Contains("longer than one character"));
  }
}

TEST_CASE("tokenizer incremental decoder: holds back split characters", "[tokenizer][decode]") {
  const fs::path dir = scratch_dir("incremental");
  mr::tokenizer::write_byte_level_tokenizer(dir, ByteLevelSpecials{});
  const auto tok = Tokenizer::from_directory(dir);

  SECTION("a two-byte character appears only when complete") {
    IncrementalDecoder dec(tok);
    CHECK(dec.push(0xC3) == "");
    CHECK(dec.pending_bytes() == 1);
    CHECK(dec.push(0xA9) == "\u00e9");
    CHECK(dec.push('x') == "x");
    CHECK(dec.finish() == "");
    CHECK(dec.text() == "\u00e9x");
  }
  SECTION("a broken sequence is replaced as soon as it cannot complete") {
    IncrementalDecoder dec(tok);
    CHECK(dec.push(0xE2) == "");
    CHECK(dec.push('A') ==
          "\xEF\xBF\xBD"
          "A");
  }
  SECTION("finish() replaces an unfinished character, reset() starts over") {
    IncrementalDecoder dec(tok);
    CHECK(dec.push(Ids{'o', 'k', 0xF0, 0x9F}) == "ok");
    CHECK(dec.finish() == "\xEF\xBF\xBD");
    dec.reset();
    CHECK(dec.text().empty());
    CHECK(dec.push(Ids{0xF0, 0x9F, 0xA4, 0x97}) == "\xF0\x9F\xA4\x97");
  }
  SECTION("skip_special_tokens drops specials from the stream") {
    IncrementalDecoder dec(tok, true);
    CHECK(dec.push(Ids{256, 'h', 257}) == "h");
  }
  SECTION("bad ids throw") {
    IncrementalDecoder dec(tok);
    CHECK_THROWS_AS(dec.push(9999), mr::sdk::BackendError);
  }
}

TEST_CASE("tokenizer sharing: copies and threads see the same results", "[tokenizer][threads]") {
  const auto tok = load(char_bpe({"a", "b", "ab", "abab"}, {"a b", "ab ab"}));
  const Tokenizer copy = tok;  // NOLINT(performance-unnecessary-copy-initialization)
  CHECK(copy.encode("ababab") == tok.encode("ababab"));
  std::vector<Ids> results(4);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i)
        results[t] = tok.encode(std::string(static_cast<std::size_t>(i % 7 + 1), 'a') + "bab");
    });
  }
  for (auto& th : threads) th.join();
  const Ids expected = tok.encode("aaaabab");  // the last iteration (i = 199) in every thread
  for (const auto& r : results) CHECK(r == expected);
}

TEST_CASE("tokenizer clean_up_tokenization: transformers' space clean-up", "[tokenizer][decode]") {
  CHECK(mr::tokenizer::clean_up_tokenization("Hello , world ! do n't I 'm") ==
        "Hello, world! don't I'm");
}

TEST_CASE("tokenizer errors: malformed files give clear BackendErrors", "[tokenizer][errors]") {
  const auto good = char_bpe({"a", "b", "ab"}, {"a b"});
  auto expect_error = [](const json& j, const std::string& fragment) {
    CHECK_THROWS_AS(load(j), mr::sdk::BackendError);
    CHECK_THROWS_WITH(load(j), Catch::Contains(fragment) && Catch::Contains("test.json"));
  };
  SECTION("models other than BPE are named") {
    auto j = good;
    j["model"]["type"] = "Unigram";
    expect_error(j, "unsupported tokenizer model 'Unigram' in test.json");
    j["model"]["type"] = "WordPiece";
    expect_error(j, "unsupported tokenizer model 'WordPiece'");
  }
  SECTION("missing fields") {
    auto j = good;
    j.erase("model");
    expect_error(j, "missing field 'tokenizer.model'");
    j = good;
    j["model"].erase("vocab");
    expect_error(j, "model.vocab is missing");
    j = good;
    j["model"].erase("merges");
    expect_error(j, "model.merges is missing");
  }
  SECTION("merges that do not fit the vocabulary") {
    auto j = good;
    j["model"]["merges"] = {"a c"};
    expect_error(j, "'c', which is not in model.vocab");
    j["model"]["merges"] = {"a b"};
    j["model"]["vocab"] = {{"a", 0}, {"b", 1}};
    expect_error(j, "produces 'ab'");
    j["model"]["merges"] = {"abc"};
    expect_error(j, "not two tokens separated by one space");
    j["model"]["merges"] = {42};
    expect_error(j, "must be a string");
  }
  SECTION("bad ids") {
    auto j = good;
    j["model"]["vocab"]["b"] = -3;
    expect_error(j, "non-negative integer id");
    j = good;
    j["added_tokens"] = json::array({added(0, "<x>")});
    expect_error(j, "which model.vocab gives to 'a'");
    j["added_tokens"] = json::array({added(2000000000, "<x>")});
    expect_error(j, "implausibly far beyond the vocabulary");
    j = good;
    j["model"]["vocab"]["b"] = 2000000000;
    expect_error(j, "implausibly large");
  }
  SECTION("a bad regex names the pattern") {
    auto j = good;
    j["pre_tokenizer"] = {{"type", "Split"},
                          {"pattern", {{"Regex", "(unclosed"}}},
                          {"behavior", "Isolated"},
                          {"invert", false}};
    expect_error(j, "bad pre-tokenizer regex '(unclosed'");
  }
  SECTION("unsupported components") {
    auto j = good;
    j["normalizer"] = {{"type", "NFKC"}};
    expect_error(j, "unsupported normalizer 'NFKC'");
    j = good;
    j["pre_tokenizer"] = {{"type", "Metaspace"}};
    expect_error(j, "unsupported pre_tokenizer 'Metaspace'");
    j = good;
    j["decoder"] = {{"type", "WordPiece"}};
    expect_error(j, "unsupported decoder 'WordPiece'");
    j = good;
    j["model"]["dropout"] = 0.1;
    expect_error(j, "dropout is not supported");
  }
  SECTION("wrong JSON types and invalid JSON") {
    auto j = good;
    j["model"]["vocab"] = json::array();
    expect_error(j, "model.vocab is missing or not an object");
    CHECK_THROWS_WITH(Tokenizer::from_json("{not json", "", "x.json"),
                      Catch::Contains("x.json: invalid JSON"));
    CHECK_THROWS_WITH(Tokenizer::from_json("[]", "", "x.json"),
                      Catch::Contains("must be a JSON object"));
    CHECK_THROWS_WITH(Tokenizer::from_json(good.dump(), "{\"bos_token\": 5}", "x.json"),
                      Catch::Contains("tokenizer_config.json") && Catch::Contains("bos_token"));
  }
  SECTION("missing files") {
    CHECK_THROWS_WITH(Tokenizer::from_directory(scratch_dir("empty")),
                      Catch::Contains("no tokenizer.json in"));
    CHECK_THROWS_WITH(Tokenizer::from_files(scratch_dir("none") / "tokenizer.json", std::nullopt),
                      Catch::Contains("cannot open tokenizer file"));
  }
}
