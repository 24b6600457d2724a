// Score and verdict parsers (last match of a configurable one-group pattern).
#include "score_parser.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace mr::plugins::recipe {

namespace {
std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
}  // namespace

ScoreParser::ScoreParser(Pattern pattern, mr::sdk::ScoreRange range)
    : pattern_(std::move(pattern)), range_(range) {}

ScoreParser::ScoreParser(mr::sdk::ScoreRange range)
    : ScoreParser(Pattern::compile(kDefaultScorePattern, "score_regex"), range) {}

mr::sdk::ParsedScore ScoreParser::parse(std::string_view judgment) const {
  mr::sdk::ParsedScore out;
  const Pattern::LastMatch m = pattern_.last_capture(judgment);
  if (!m.error.empty()) {
    out.error = "score pattern failed on this text (" + m.error + ")";
    return out;
  }
  if (!m.matched) {
    out.error = "no 'Score:' line";
    return out;
  }
  if (!m.captured || m.capture.empty()) {
    out.error = "last 'Score:' has no number";
    return out;
  }
  std::string_view number = m.capture;
  if (number.front() == '+') number.remove_prefix(1);
  double value = 0.0;
  auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc() || ptr != number.data() + number.size() || !std::isfinite(value)) {
    out.error = "score '" + m.capture + "' is not a number";
    return out;
  }
  if (value < range_.min || value > range_.max) {
    out.error = format_number(value) + " outside [" + format_number(range_.min) + ", " +
                format_number(range_.max) + "]";
    return out;
  }
  out.score = value;
  return out;
}

VerdictParser::VerdictParser(Pattern pattern) : pattern_(std::move(pattern)) {}

VerdictParser::VerdictParser()
    : VerdictParser(Pattern::compile(kDefaultVerdictPattern, "verdict_regex")) {}

int VerdictParser::parse(std::string_view verdict) const {
  const Pattern::LastMatch m = pattern_.last_capture(verdict);
  if (!m.error.empty() || !m.captured || m.capture.size() != 1) return 0;
  const char c = m.capture[0];
  if (c == 'a' || c == 'A') return +1;
  if (c == 'b' || c == 'B') return -1;
  return 0;
}

}  // namespace mr::plugins::recipe
