// libFuzzer harness: encode and decode of arbitrary bytes with the real Llama-3 and Qwen3
// tokenizers (../shared/fixtures/tokenizers, loaded once; a byte-level tokenizer written by the
// product stands in when the fixtures are absent). The first input byte picks the tokenizer and
// the mode, the rest is the text (encode) or a list of ids (decode). Checked promises:
// - encode never fails and returns ids below vocab_size();
// - byte-level BPE is lossless: the token bytes of encode(text) are exactly text (Llama-3, which
//   has no normalizer), and decode(encode(text)) == text for valid UTF-8;
// - decode throws BackendError only (bad ids), and IncrementalDecoder's pieces add up to decode().
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/tokenizer/tokenizer.hpp"
#include "metareward/tokenizer/unicode.hpp"

namespace {

namespace tk = mr::tokenizer;

struct Loaded {
  tk::Tokenizer tokenizer;
  bool lossless_bytes;  // no normalizer: token bytes concatenate to the input
};

std::vector<Loaded> load_tokenizers() {
  std::vector<Loaded> out;
  for (const char* name : {"llama3", "qwen3"}) {
    const auto dir = mr::fuzz::tokenizer_fixture(name);
    if (std::filesystem::exists(dir / "tokenizer.json"))
      out.push_back({tk::Tokenizer::from_directory(dir), std::strcmp(name, "llama3") == 0});
  }
  if (out.empty()) {
    const auto dir = mr::fuzz::scratch_dir() / "byte_level";
    tk::ByteLevelSpecials specials;
    specials.additional = {"<|user|>", "<|end|>"};
    tk::write_byte_level_tokenizer(dir, specials);
    out.push_back({tk::Tokenizer::from_directory(dir), true});
  }
  return out;
}

const std::vector<Loaded>& tokenizers() {
  static const std::vector<Loaded> loaded = load_tokenizers();
  return loaded;
}

void check_encode(const Loaded& loaded, std::string_view text, const tk::EncodeOptions& options) {
  const tk::Tokenizer& tok = loaded.tokenizer;
  const auto ids = tok.encode(text, options);
  for (const tk::TokenId id : ids)
    MR_FUZZ_CHECK(id >= 0 && static_cast<std::size_t>(id) < tok.vocab_size(), "id out of range");
  if (options.add_special_tokens) return;  // the post-processor adds text that was not there
  if (loaded.lossless_bytes) {
    std::string bytes;
    for (const tk::TokenId id : ids) bytes += tok.token_bytes(id);
    MR_FUZZ_CHECK(bytes == text, "token bytes of encode(text) differ from text");
    if (tk::unicode::is_valid_utf8(text))
      MR_FUZZ_CHECK(tok.decode(ids) == text, "decode(encode(text)) differs from valid UTF-8 text");
  }
  (void)tok.decode(ids, /*skip_special_tokens=*/true);
}

void check_decode(const tk::Tokenizer& tok, const std::uint8_t* data, std::size_t size, bool skip) {
  // Ids as little-endian 24-bit numbers: covers every real id and some past the end.
  std::vector<tk::TokenId> ids;
  for (std::size_t i = 0; i + 3 <= size; i += 3)
    ids.push_back(data[i] | (data[i + 1] << 8) | (data[i + 2] << 16));
  std::string whole;
  try {
    whole = tok.decode(ids, skip);
  } catch (const mr::sdk::BackendError&) {
    return;  // documented for negative, out-of-range or unassigned ids
  }
  MR_FUZZ_CHECK(tk::unicode::is_valid_utf8(whole), "decode() returned ill-formed UTF-8");
  tk::IncrementalDecoder stream(tok, skip);
  std::string pieces;
  for (const tk::TokenId id : ids) pieces += stream.push(id);
  pieces += stream.finish();
  MR_FUZZ_CHECK(pieces == whole, "IncrementalDecoder pieces differ from decode()");
  MR_FUZZ_CHECK(stream.text() == pieces, "IncrementalDecoder text() differs from its pieces");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)tokenizers();  // load before the first input so that its time is not counted as a hang
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  const auto& all = tokenizers();
  const Loaded& loaded = all[(mode & 1) % all.size()];
  ++data;
  --size;
  if (mode & 2) {
    check_decode(loaded.tokenizer, data, size, (mode & 4) != 0);
  } else {
    tk::EncodeOptions options;
    options.add_special_tokens = (mode & 4) != 0;
    options.split_special_tokens = (mode & 8) != 0;
    check_encode(loaded, mr::fuzz::as_text(data, size), options);
  }
  return 0;
}
