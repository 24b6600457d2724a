// libFuzzer harness: the recipe's judge-score and meta-judge-verdict parsers (PCRE2, last match)
// on arbitrary model output, with the built-in patterns and with the input's first line compiled
// as a user `score_regex` / `verdict_regex` (a bad one must be a ConfigError). Checked promises:
// a parse gives exactly one of score and error, a score inside the range, a verdict in {-1, 0, 1}.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "fuzz_support.hpp"
#include "metareward/sdk/error.hpp"
#include "score_parser.hpp"

namespace {

namespace recipe = mr::plugins::recipe;

void check_score(const recipe::ScoreParser& parser, std::string_view text) {
  const mr::sdk::ParsedScore parsed = parser.parse(text);
  MR_FUZZ_CHECK(parsed.score.has_value() != !parsed.error.empty(),
                "a parse must give exactly one of score and error");
  if (parsed.score) {
    MR_FUZZ_CHECK(std::isfinite(*parsed.score), "non-finite score");
    MR_FUZZ_CHECK(*parsed.score >= parser.range().min && *parsed.score <= parser.range().max,
                  "score outside its range");
  }
}

void check_verdict(const recipe::VerdictParser& parser, std::string_view text) {
  const int verdict = parser.parse(text);
  MR_FUZZ_CHECK(verdict >= -1 && verdict <= 1, "verdict outside {-1, 0, 1}");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = mr::fuzz::as_text(data, size);
  static const recipe::ScoreParser additive5(mr::sdk::ScoreRange{0, 5});
  static const recipe::ScoreParser likert10(mr::sdk::ScoreRange{1, 10});
  static const recipe::VerdictParser verdicts;
  check_score(additive5, text);
  check_score(likert10, text);
  check_verdict(verdicts, text);

  const std::size_t newline = text.find('\n');
  if (newline == std::string_view::npos) return 0;
  std::optional<recipe::Pattern> pattern;
  try {
    pattern = recipe::Pattern::compile(std::string(text.substr(0, newline)), "score_regex");
  } catch (const mr::sdk::ConfigError&) {
    return 0;  // documented for a pattern that does not compile or lacks exactly one group
  }
  const std::string_view rest = text.substr(newline + 1);
  check_score(recipe::ScoreParser(*pattern, mr::sdk::ScoreRange{-2.5, 7}), rest);
  check_verdict(recipe::VerdictParser(*pattern), rest);
  return 0;
}
