/// @file regex_pattern.hpp
/// A compiled, case-insensitive PCRE2 pattern with exactly one capture group, and "last match"
/// extraction. PCRE2 rather than std::regex because libstdc++'s std::regex recurses once per
/// repeated character and overflows the stack on long model outputs (e.g. `Score:` followed by
/// 100k spaces); PCRE2 matches on the heap under a match limit and reports failure instead.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "metareward/sdk/config.hpp"

namespace mr::plugins::recipe {

/// Immutable compiled pattern; copies share the compiled code. All methods are thread-safe.
class Pattern {
 public:
  /// Compiles `pattern` (PCRE2 syntax, caseless, byte-oriented). Throws mr::sdk::ConfigError
  /// through `config.fail(key, ...)` when it does not compile or has not exactly one capture
  /// group, so the message names the TOML key.
  static Pattern compile(const std::string& pattern,
                         const mr::sdk::Config& config,
                         std::string_view key);
  /// Same checks; the mr::sdk::ConfigError names `key` without a Config (defaults, tests).
  static Pattern compile(const std::string& pattern, std::string_view key);

  /// Number of capture groups (always 1 for a compiled Pattern; kept for tests).
  int capture_count() const;
  /// The source text.
  const std::string& source() const { return source_; }

  /// Outcome of last_capture().
  struct LastMatch {
    bool matched = false;   ///< Some match exists.
    bool captured = false;  ///< The last match's group participated.
    std::string capture;    ///< Its text (empty when !captured).
    std::string error;      ///< Non-empty when matching failed (match/heap limit): no result.
  };
  /// The last non-overlapping match of the pattern in `text`, scanning left to right.
  LastMatch last_capture(std::string_view text) const;

 private:
  struct Code;
  Pattern(std::shared_ptr<const Code> code, std::string source)
      : code_(std::move(code)), source_(std::move(source)) {}
  /// Compiles `pattern`; on failure returns nullptr and sets `problem`.
  static std::shared_ptr<const Code> try_compile(const std::string& pattern, std::string& problem);
  std::shared_ptr<const Code> code_;
  std::string source_;
};

}  // namespace mr::plugins::recipe
