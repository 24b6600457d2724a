// libFuzzer harness: the host's JSONL row readers (prompts, preference pairs, SFT conversations,
// score rows) over the same arbitrary bytes, then the pairs an optimizer would get and the
// conversation JSON the host writes back. Bad rows are documented to be counted and skipped, so
// the only exception allowed is an sdk::Error (DataError), and the counts must add up.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <spdlog/spdlog.h>

#include "fuzz_support.hpp"
#include "metareward/core/jsonl.hpp"
#include "metareward/sdk/error.hpp"

namespace {

template <class Reader>
void read_with(Reader read, const std::string& text) {
  std::istringstream in(text);
  mr::core::JsonlStats stats;
  try {
    auto rows = read(in, "fuzz.jsonl", stats);
    MR_FUZZ_CHECK(stats.accepted + stats.dropped_total() == stats.rows,
                  "accepted + dropped differs from the rows read");
    (void)stats.summary();
    if constexpr (std::is_same_v<decltype(rows), std::vector<mr::core::PromptRow>>) {
      for (const auto& row : rows) (void)mr::core::conversation_json(row.messages);
    } else {
      for (const auto& row : rows) (void)mr::core::conversation_json(row.prompt);
      (void)mr::core::to_preference_pairs(std::move(rows));
    }
  } catch (const mr::sdk::Error&) {
    // Documented for input that cannot be skipped safely.
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);  // dropped rows are logged; keep the fuzzer's output clean
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(mr::fuzz::as_text(data, size));
  read_with(mr::core::read_prompt_rows, text);
  read_with(mr::core::read_pair_rows, text);
  read_with(mr::core::read_sft_rows, text);
  read_with(mr::core::read_score_rows, text);
  return 0;
}
