// PCRE2-backed one-group patterns with "last match" extraction.
#include "regex_pattern.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "metareward/sdk/error.hpp"

namespace mr::plugins::recipe {

struct Pattern::Code {
  pcre2_code* code = nullptr;
  int groups = 0;
  ~Code() { pcre2_code_free(code); }
};

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  int n = pcre2_get_error_message(code, buf, sizeof buf);
  return n < 0 ? "PCRE2 error " + std::to_string(code) : std::string(reinterpret_cast<char*>(buf));
}

struct MatchData {
  pcre2_match_data* data;
  explicit MatchData(const pcre2_code* code)
      : data(pcre2_match_data_create_from_pattern(code, nullptr)) {}
  ~MatchData() { pcre2_match_data_free(data); }
  MatchData(const MatchData&) = delete;
  MatchData& operator=(const MatchData&) = delete;
};

}  // namespace

std::shared_ptr<const Pattern::Code> Pattern::try_compile(const std::string& pattern,
                                                          std::string& problem) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_CASELESS, &error, &offset, nullptr);
  if (code == nullptr) {
    problem = "is not a valid regular expression (" + pcre2_message(error) + " at offset " +
              std::to_string(offset) + "): " + pattern;
    return nullptr;
  }
  auto owned = std::make_shared<Code>();
  owned->code = code;
  std::uint32_t groups = 0;
  pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &groups);
  owned->groups = static_cast<int>(groups);
  if (groups != 1) {
    problem = "must have exactly one capture group (the value to extract), got " +
              std::to_string(groups) + ": " + pattern;
    return nullptr;
  }
  return owned;
}

Pattern Pattern::compile(const std::string& pattern,
                         const mr::sdk::Config& config,
                         std::string_view key) {
  std::string problem;
  auto code = try_compile(pattern, problem);
  if (!code) config.fail(key, problem);
  return Pattern(std::move(code), pattern);
}

Pattern Pattern::compile(const std::string& pattern, std::string_view key) {
  std::string problem;
  auto code = try_compile(pattern, problem);
  if (!code) throw mr::sdk::ConfigError("[" + std::string(key) + "] " + problem);
  return Pattern(std::move(code), pattern);
}

int Pattern::capture_count() const {
  return code_->groups;
}

Pattern::LastMatch Pattern::last_capture(std::string_view text) const {
  LastMatch result;
  MatchData md(code_->code);
  if (md.data == nullptr) {
    result.error = "out of memory for PCRE2 match data";
    return result;
  }
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  PCRE2_SIZE start = 0;
  while (start <= text.size()) {
    int rc = pcre2_match(code_->code, subject, text.size(), start, 0, md.data, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      result = LastMatch{};
      result.error = pcre2_message(rc);
      return result;
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.data);
    result.matched = true;
    result.captured = rc >= 2 && ov[2] != PCRE2_UNSET;
    result.capture =
        result.captured ? std::string(text.substr(ov[2], ov[3] - ov[2])) : std::string();
    // Continue after this match; an empty match advances one byte so the loop terminates.
    start = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
  }
  return result;
}

}  // namespace mr::plugins::recipe
