// Every row of the HF reference fixtures (text -> ids made by HF `tokenizers`, no special tokens
// added) must match exactly, and decoding must give the text back (NFC-normalized for Qwen).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "metareward/sdk/error.hpp"
#include "metareward/tokenizer/tokenizer.hpp"
#include "metareward/tokenizer/unicode.hpp"
#include "skip.hpp"

namespace fs = std::filesystem;
using mr::tokenizer::TokenId;
using mr::tokenizer::Tokenizer;

namespace {

fs::path fixture_dir(const std::string& name) {
  return fs::path(MR_SHARED_DIR) / "fixtures" / "tokenizers" / name;
}

// Loading takes ~1 s per tokenizer, so each is loaded once per test binary.
const Tokenizer* fixture_tokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    std::unique_ptr<Tokenizer> tok;
    if (fs::exists(fixture_dir(name) / "tokenizer.json")) {
      tok = std::make_unique<Tokenizer>(Tokenizer::from_directory(fixture_dir(name)));
    }
    it = cache.emplace(name, std::move(tok)).first;
  }
  return it->second.get();
}

struct Case {
  std::string text;
  std::vector<TokenId> ids;
};

std::vector<Case> read_cases(const std::string& name) {
  std::ifstream in(fixture_dir(name) / "cases.jsonl");
  std::vector<Case> cases;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto row = nlohmann::json::parse(line);
    cases.push_back(
        Case{row.at("text").get<std::string>(), row.at("ids").get<std::vector<TokenId>>()});
  }
  return cases;
}

std::string show(const std::vector<TokenId>& ids) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < ids.size(); ++i) out << (i ? ", " : "") << ids[i];
  out << ']';
  return out.str();
}

void check_fixture(const std::string& name, bool nfc) {
  const Tokenizer* tok = fixture_tokenizer(name);
  if (tok == nullptr || !fs::exists(fixture_dir(name) / "cases.jsonl")) {
    MR_SKIP("tokenizer fixture " << fixture_dir(name).string() << " is absent");
  }
  const auto cases = read_cases(name);
  REQUIRE(!cases.empty());
  std::size_t encode_ok = 0, decode_ok = 0;
  for (std::size_t row = 0; row < cases.size(); ++row) {
    const auto& c = cases[row];
    const auto ids = tok->encode(c.text);
    const std::string expected_text = nfc ? mr::tokenizer::unicode::nfc(c.text) : c.text;
    const std::string decoded = tok->decode(c.ids);
    INFO(name << " row " << row << " text " << nlohmann::json(c.text).dump());
    INFO("expected " << show(c.ids) << "\n got      " << show(ids));
    CHECK(ids == c.ids);
    CHECK(decoded == expected_text);
    encode_ok += ids == c.ids ? 1 : 0;
    decode_ok += decoded == expected_text ? 1 : 0;
  }
  WARN(name << ": " << cases.size() << " rows, encode matches " << encode_ok << "/" << cases.size()
            << ", decode round-trips " << decode_ok << "/" << cases.size());
}

}  // namespace

TEST_CASE("tokenizer fixtures: Llama-3 ids match HF for every row", "[tokenizer][fixtures]") {
  check_fixture("llama3", false);
}

TEST_CASE("tokenizer fixtures: Qwen3 ids match HF for every row", "[tokenizer][fixtures]") {
  check_fixture("qwen3", true);
}

TEST_CASE("tokenizer fixtures: special tokens and config of the reference tokenizers",
          "[tokenizer][fixtures]") {
  const Tokenizer* llama = fixture_tokenizer("llama3");
  const Tokenizer* qwen = fixture_tokenizer("qwen3");
  if (llama == nullptr || qwen == nullptr) {
    MR_SKIP("tokenizer fixtures under " << MR_SHARED_DIR << " are absent");
  }

  SECTION("tokenizer_config.json provides bos/eos/pad and the raw chat template") {
    CHECK(llama->bos_id() == TokenId{128000});
    CHECK(llama->eos_id() == TokenId{128001});
    CHECK(llama->config().clean_up_tokenization_spaces);
    CHECK(llama->config().chat_template.value_or("").find("<|start_header_id|>") !=
          std::string::npos);
    CHECK_FALSE(qwen->bos_id().has_value());
    CHECK(qwen->eos_id() == TokenId{151645});
    CHECK(qwen->pad_id() == TokenId{151643});
    CHECK(qwen->config().add_bos_token == false);
    CHECK(qwen->config().tokenizer_class == "Qwen2Tokenizer");
    CHECK(qwen->config().chat_template.value_or("").find("<|im_start|>") != std::string::npos);
    CHECK(qwen->config().added_tokens_decoder.size() == qwen->added_tokens().size());
  }

  SECTION("vocabulary sizes include the added tokens") {
    CHECK(llama->vocab_size() == 128256);
    CHECK(qwen->vocab_size() == 151669);
    CHECK(qwen->token_to_id("<think>") == TokenId{151667});
    CHECK(qwen->id_to_token(151667) == std::string("<think>"));
    CHECK(qwen->token_to_id("Hello") == TokenId{9707});
  }

  SECTION("add_special_tokens applies the post-processor, which for these files adds nothing") {
    // Both files use a ByteLevel post_processor, so HF adds no BOS either.
    CHECK(llama->encode("Hello", true) == llama->encode("Hello", false));
    CHECK(qwen->encode("Hello", true) == std::vector<TokenId>{9707});
  }

  SECTION("special tokens in the text are matched, non-special added tokens too") {
    CHECK(llama->encode("<|begin_of_text|>Hi<|eot_id|>") ==
          std::vector<TokenId>{128000, 13347, 128009});
    CHECK(qwen->encode("<think>\nok</think>").front() == 151667);
    CHECK(qwen->encode("<think>\nok</think>").back() == 151668);
  }

  SECTION("split_special_tokens encodes special tokens as plain text") {
    mr::tokenizer::EncodeOptions options;
    options.split_special_tokens = true;
    const auto ids = llama->encode("<|eot_id|>", options);
    CHECK(std::find(ids.begin(), ids.end(), 128009) == ids.end());
    CHECK(llama->decode(ids) == "<|eot_id|>");
    // <think> is not special in Qwen3, so it is still one token.
    CHECK(qwen->encode("<think>", options) == std::vector<TokenId>{151667});
  }

  SECTION("decode can drop special tokens but keeps non-special added tokens") {
    const std::vector<TokenId> ids{128000, 13347, 128009};
    CHECK(llama->decode(ids) == "<|begin_of_text|>Hi<|eot_id|>");
    CHECK(llama->decode(ids, true) == "Hi");
    CHECK(qwen->decode(std::vector<TokenId>{151644, 151667, 151645}, true) == "<think>");
  }

  SECTION("ids outside the vocabulary are rejected with the range in the message") {
    CHECK_THROWS_WITH(llama->decode(std::vector<TokenId>{128256}),
                      Catch::Contains("out of range [0, 128256)"));
    CHECK_THROWS_AS(llama->decode(std::vector<TokenId>{-1}), mr::sdk::BackendError);
    CHECK_THROWS_AS(llama->token_bytes(1 << 30), mr::sdk::BackendError);
  }

  SECTION("a character split across tokens decodes whole, a lone half becomes U+FFFD") {
    const std::vector<TokenId> emoji{9468, 97, 245};  // 🤗 in Llama-3: three byte tokens
    CHECK(llama->decode(emoji) == "\xF0\x9F\xA4\x97");
    CHECK(llama->decode(std::vector<TokenId>{9468, 97}) == "\xEF\xBF\xBD");
    CHECK(llama->decode(std::vector<TokenId>{64, 9468, 65}) ==
          "a\xEF\xBF\xBD"
          "b");
  }

  SECTION("incremental decoding never emits a broken character and ends equal to decode()") {
    const std::string text = "a😀b 日本語 👨‍👩‍👧‍👦 ok";
    for (const Tokenizer* tok : {llama, qwen}) {
      const auto ids = tok->encode(text);
      mr::tokenizer::IncrementalDecoder dec(*tok);
      std::string streamed;
      for (const TokenId id : ids) {
        const std::string piece = dec.push(id);
        CHECK(mr::tokenizer::unicode::is_valid_utf8(piece));
        streamed += piece;
      }
      streamed += dec.finish();
      CHECK(streamed == text);
      CHECK(dec.text() == text);
    }
  }

  SECTION("ill-formed UTF-8 never crashes and its bytes survive byte-level BPE") {
    std::mt19937 rng(7);
    for (int n = 0; n < 50; ++n) {
      std::string bytes;
      for (int i = 0; i < 300; ++i) bytes.push_back(static_cast<char>(rng() & 0xFF));
      std::string raw;
      for (const TokenId id : llama->encode(bytes)) raw += llama->token_bytes(id);
      CHECK(raw == bytes);
      CHECK(qwen->decode(qwen->encode(bytes)) ==
            mr::tokenizer::unicode::utf8_lossy(mr::tokenizer::unicode::nfc(bytes)));
    }
  }

  SECTION("long and repetitive input encodes and round-trips") {
    const std::string spaces(200000, ' ');
    const auto ids = llama->encode(spaces + "x" + spaces);
    CHECK(llama->decode(ids) == spaces + "x" + spaces);
    std::string mixed;
    for (int i = 0; i < 2000; ++i) mixed += "héllo wörld 123 ";
    CHECK(qwen->decode(qwen->encode(mixed)) == mixed);
  }
}
