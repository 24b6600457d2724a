// libFuzzer harness: tokenizer.json text loaded by mr::tokenizer::Tokenizer::from_json (normalizer,
// pre-tokenizer, BPE model, added tokens, post-processor, decoder), then a few encodes and a
// decode of every small id. A malformed or unsupported file must be a BackendError; a loaded
// tokenizer must encode and decode without crashing.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/tokenizer/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace tk = mr::tokenizer;
  std::optional<tk::Tokenizer> tok;
  try {
    tok = tk::Tokenizer::from_json(mr::fuzz::as_text(data, size), {}, "tokenizer.json");
  } catch (const mr::sdk::Error&) {
    return 0;  // the documented outcome for a malformed or unsupported tokenizer.json
  }
  static constexpr std::string_view kTexts[] = {"",
                                                "Hello, world! 123 4567",
                                                "  leading\n\n\ttabs \r\n",
                                                "don't STOP'LL",
                                                "\xc3\xa9t\xc3\xa9 \xe4\xb8\xad",
                                                "\xff\xfe bad utf8 \xe2\x82",
                                                "<|begin_of_text|><|eot_id|><|im_start|>"};
  for (const auto text : kTexts) {
    for (const bool special : {false, true}) {
      const auto ids = tok->encode(text, tk::EncodeOptions{special, !special});
      for (const tk::TokenId id : ids)
        MR_FUZZ_CHECK(id >= 0 && static_cast<std::size_t>(id) < tok->vocab_size(),
                      "encode() returned an id out of range");
      (void)tok->decode(ids);
    }
  }
  const std::size_t n = std::min<std::size_t>(tok->vocab_size(), 512);
  std::vector<tk::TokenId> ids;
  for (std::size_t id = 0; id < n; ++id) {
    if (!tok->id_to_token(static_cast<tk::TokenId>(id))) continue;
    ids.push_back(static_cast<tk::TokenId>(id));
    (void)tok->token_bytes(static_cast<tk::TokenId>(id));
  }
  try {
    (void)tok->decode(ids);
    (void)tok->decode(ids, /*skip_special_tokens=*/true);
  } catch (const mr::sdk::BackendError&) {
    // An id with a spelling but no bytes is reported, not crashed on.
  }
  (void)tok->bos_id();
  (void)tok->eos_id();
  return 0;
}
