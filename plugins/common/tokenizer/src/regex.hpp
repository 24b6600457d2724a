// PCRE2 wrapper for the pre-tokenizer patterns of HF tokenizer.json files (written for Oniguruma).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mr::tokenizer::detail {

/// A compiled pattern (UTF + UCP, JIT when available). Immutable and safe to share across threads.
class Regex {
 public:
  /// Compiles an Oniguruma-style `pattern` (or a literal string when `literal`). `origin` names
  /// the file for error messages. Throws mr::sdk::BackendError on a bad pattern.
  Regex(std::string_view pattern, bool literal, std::string_view origin);

  /// All non-overlapping matches in `text`, left to right, as [begin, end) byte offsets. Ill-formed
  /// UTF-8 in `text` never matches. Throws mr::sdk::BackendError when PCRE2 gives up (limits).
  void find_all(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>>& out) const;

  /// True when `text` has a match starting exactly at `pos` (used for word/space checks).
  bool matches_at(std::string_view text, std::size_t pos) const;

 private:
  struct Code;
  std::shared_ptr<const Code> code_;
  std::string pattern_;
};

/// Rewrites Oniguruma's `\s`/`\S` (the White_Space property) into explicit classes, because PCRE2's
/// UCP `\s` differs (it omits U+0085). Everything else in these patterns means the same in both.
std::string translate_oniguruma(std::string_view pattern);

}  // namespace mr::tokenizer::detail
