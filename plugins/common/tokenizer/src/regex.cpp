#include "regex.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <optional>

#include "metareward/sdk/error.hpp"
#include "metareward/tokenizer/unicode.hpp"

namespace mr::tokenizer::detail {

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

namespace {

// Oniguruma's \s: the White_Space property.
constexpr std::string_view kWhiteSpaceItems =
    "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}";

// Per-thread match state: PCRE2 match data and a JIT stack big enough for long whitespace runs
// (`\s+(?!\S)` backtracks once per character).
struct ThreadMatchState {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, nullptr);
  ThreadMatchState() {
    if (context != nullptr && stack != nullptr) pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~ThreadMatchState() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
  ThreadMatchState(const ThreadMatchState&) = delete;
  ThreadMatchState& operator=(const ThreadMatchState&) = delete;
};

ThreadMatchState& thread_state() {
  thread_local ThreadMatchState state;
  if (state.data == nullptr || state.context == nullptr) {
    throw sdk::BackendError("tokenizer: out of memory allocating PCRE2 match data");
  }
  return state;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  const int n = pcre2_get_error_message(code, buffer, sizeof(buffer));
  if (n < 0) return "PCRE2 error " + std::to_string(code);
  return std::string(reinterpret_cast<const char*>(buffer), static_cast<std::size_t>(n));
}

}  // namespace

std::string translate_oniguruma(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  std::size_t i = 0;
  const std::size_t n = pattern.size();
  while (i < n) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < n) {
      const char e = pattern[i + 1];
      if (e == 's' || e == 'S') {
        if (in_class) {
          // Inside a class only \s can be spelled out; \S keeps PCRE2's meaning.
          if (e == 's') {
            out += kWhiteSpaceItems;
          } else {
            out += "\\S";
          }
        } else {
          out += e == 's' ? "[" : "[^";
          out += kWhiteSpaceItems;
          out += "]";
        }
        i += 2;
        continue;
      }
      if (e == 'Q') {  // \Q...\E quotes literally
        const std::size_t end = pattern.find("\\E", i + 2);
        const std::size_t stop = end == std::string_view::npos ? n : end + 2;
        out.append(pattern.substr(i, stop - i));
        i = stop;
        continue;
      }
      if ((e == 'x' || e == 'p' || e == 'P' || e == 'o') && i + 2 < n && pattern[i + 2] == '{') {
        const std::size_t end = pattern.find('}', i + 3);
        const std::size_t stop = end == std::string_view::npos ? n : end + 1;
        out.append(pattern.substr(i, stop - i));
        i = stop;
        continue;
      }
      out.append(pattern.substr(i, 2));
      i += 2;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out.push_back(c);
      ++i;
      if (i < n && pattern[i] == '^') out.push_back(pattern[i++]);
      if (i < n && pattern[i] == ']') out.push_back(pattern[i++]);  // literal ']' first in class
      continue;
    }
    if (in_class && c == '[' && i + 1 < n && pattern[i + 1] == ':') {  // [:alpha:]
      const std::size_t end = pattern.find(":]", i + 2);
      const std::size_t stop = end == std::string_view::npos ? i + 1 : end + 2;
      out.append(pattern.substr(i, stop - i));
      i = stop;
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out.push_back(c);
    ++i;
  }
  return out;
}

Regex::Regex(std::string_view pattern, bool literal, std::string_view origin) : pattern_(pattern) {
  const std::string source = literal ? std::string(pattern) : translate_oniguruma(pattern);
  // Ruby syntax (what Oniguruma uses for tokenizers) treats ^ and $ as line anchors.
  std::uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
  options |= literal ? PCRE2_LITERAL : PCRE2_UCP | PCRE2_MULTILINE;
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(),
                                   options, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    throw sdk::BackendError(sdk::detail::concat(origin, ": bad pre-tokenizer regex '", pattern,
                                                "': ", pcre2_message(error_code), " at offset ",
                                                error_offset));
  }
  auto holder = std::make_shared<Code>();
  holder->code = code;
  // JIT is an optimisation only; the interpreter gives the same matches.
  holder->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  code_ = std::move(holder);
}

void Regex::find_all(std::string_view text,
                     std::vector<std::pair<std::size_t, std::size_t>>& out) const {
  ThreadMatchState& state = thread_state();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  const std::size_t n = text.size();
  std::size_t last_end = 0;
  std::optional<std::size_t> last_match_end;
  // Iteration follows the onig crate's find_iter (what HF's Split uses): an empty match right
  // after the previous match is skipped by advancing one character.
  while (last_end <= n) {
    const int rc = pcre2_match(code_->code, subject, n, last_end, 0, state.data, state.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      throw sdk::BackendError(sdk::detail::concat("tokenizer: regex '", pattern_, "' failed on a ",
                                                  n, "-byte input: ", pcre2_message(rc)));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state.data);
    const std::size_t begin = ovector[0];
    const std::size_t end = ovector[1];
    if (begin == end && last_match_end && *last_match_end == end) {
      if (last_end >= n) break;
      std::size_t next = last_end;
      unicode::decode_utf8(text, next);
      last_end = next;
      continue;
    }
    last_end = end;
    last_match_end = end;
    out.emplace_back(begin, end);
  }
}

bool Regex::matches_at(std::string_view text, std::size_t pos) const {
  ThreadMatchState& state = thread_state();
  const int rc = pcre2_match(code_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(),
                             pos, PCRE2_ANCHORED, state.data, state.context);
  return rc >= 0;
}

}  // namespace mr::tokenizer::detail
