// Loading tokenizer.json / tokenizer_config.json and the encode/decode pipelines. The order of
// steps mirrors HF `tokenizers` (TokenizerImpl::encode_single_sequence): added tokens are cut out
// of the raw text, the rest is normalized, normalized added tokens are cut out, then each piece
// is pre-tokenized and run through the model.
//
// One file (~950 lines) on purpose: the loader and the encode/decode pipelines share the private
// Tokenizer::Impl, the added-token matcher and the pre-tokenizer step types; splitting it would
// move those into a header that nothing else needs.
#include "metareward/tokenizer/tokenizer.hpp"

#include <algorithm>
#include <array>
#include <fstream>
#include <sstream>
#include <variant>

#include <nlohmann/json.hpp>

#include "bpe.hpp"
#include "byte_level.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/tokenizer/unicode.hpp"
#include "regex.hpp"

namespace mr::tokenizer {

using detail::BpeModel;
using detail::Regex;
using nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& origin, const std::string& what) {
  throw sdk::BackendError(origin + ": " + what);
}

// GPT-2's pre-tokenizer regex (ByteLevel with use_regex = true).
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct SplitStep {
  std::shared_ptr<const Regex> regex;  // null: empty literal pattern, which never matches
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
};
struct ByteLevelStep {
  bool add_prefix_space = false;
  bool use_regex = true;
};
struct DigitsStep {
  bool individual_digits = false;
};
using PreTokenizerStep = std::variant<SplitStep, ByteLevelStep, DigitsStep>;

// One [begin, end) span of a string and whether it was a pattern match.
struct Span {
  std::size_t begin;
  std::size_t end;
  bool is_match;
};

// HF NormalizedString::split: turn matches into pieces according to the behavior, dropping empty
// pieces (PreTokenizedString::split filters them).
void split_with_behavior(const std::string& s,
                         std::vector<Span> spans,
                         SplitBehavior behavior,
                         bool invert,
                         std::vector<std::string>& out) {
  if (invert) {
    for (auto& sp : spans) sp.is_match = !sp.is_match;
  }
  // (span, remove)
  std::vector<std::pair<std::pair<std::size_t, std::size_t>, bool>> pieces;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const auto& sp : spans) pieces.push_back({{sp.begin, sp.end}, false});
      break;
    case SplitBehavior::kRemoved:
      for (const auto& sp : spans) pieces.push_back({{sp.begin, sp.end}, sp.is_match});
      break;
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const auto& sp : spans) {
        if (sp.is_match == previous_match && !pieces.empty()) {
          pieces.back().first.second = sp.end;
        } else {
          pieces.push_back({{sp.begin, sp.end}, false});
        }
        previous_match = sp.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const auto& sp : spans) {
        if (sp.is_match && !previous_match && !pieces.empty()) {
          pieces.back().first.second = sp.end;
        } else {
          pieces.push_back({{sp.begin, sp.end}, false});
        }
        previous_match = sp.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !pieces.empty()) {
          pieces.back().first.first = it->begin;
        } else {
          pieces.push_back({{it->begin, it->end}, false});
        }
        previous_match = it->is_match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
    }
  }
  for (const auto& [range, remove] : pieces) {
    if (!remove && range.second > range.first) {
      out.emplace_back(s.substr(range.first, range.second - range.first));
    }
  }
}

// Matches of `regex` in `s` plus the gaps between them, covering all of `s` (HF find_matches).
std::vector<Span> regex_spans(const Regex* regex, const std::string& s) {
  std::vector<Span> spans;
  if (s.empty()) return {Span{0, 0, false}};
  if (regex == nullptr) return {Span{0, s.size(), false}};
  std::vector<std::pair<std::size_t, std::size_t>> matches;
  regex->find_all(s, matches);
  std::size_t prev = 0;
  for (const auto& [b, e] : matches) {
    if (prev != b) spans.push_back(Span{prev, b, false});
    spans.push_back(Span{b, e, true});
    prev = e;
  }
  if (prev != s.size()) spans.push_back(Span{prev, s.size(), false});
  return spans;
}

// Reads an optional boolean field.
bool get_bool(const json& obj,
              const char* key,
              bool fallback,
              const std::string& origin,
              const std::string& path) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail(origin, path + "." + key + " must be a boolean");
  return it->get<bool>();
}

const json& require(const json& obj,
                    const char* key,
                    const std::string& origin,
                    const std::string& path) {
  if (!obj.is_object()) fail(origin, path + " must be an object");
  const auto it = obj.find(key);
  if (it == obj.end()) fail(origin, "missing field '" + path + "." + key + "'");
  return *it;
}

std::string require_string(const json& obj,
                           const char* key,
                           const std::string& origin,
                           const std::string& path) {
  const json& v = require(obj, key, origin, path);
  if (!v.is_string()) fail(origin, path + "." + key + " must be a string");
  return v.get<std::string>();
}

std::string type_of(const json& obj, const std::string& origin, const std::string& path) {
  return require_string(obj, "type", origin, path);
}

// Token content from tokenizer_config.json: "text", {"content": "text", ...} or null.
std::optional<std::string> config_token(const json& cfg,
                                        const char* key,
                                        const std::string& origin) {
  const auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    const auto c = it->find("content");
    if (c != it->end() && c->is_string()) return c->get<std::string>();
  }
  fail(origin, std::string(key) + " must be a string, null or an object with \"content\"");
}

AddedToken parse_added_token(const json& j,
                             TokenId id,
                             const std::string& origin,
                             const std::string& path) {
  AddedToken t;
  t.id = id;
  t.content = require_string(j, "content", origin, path);
  if (t.content.empty()) fail(origin, path + ".content must not be empty");
  t.special = get_bool(j, "special", false, origin, path);
  t.lstrip = get_bool(j, "lstrip", false, origin, path);
  t.rstrip = get_bool(j, "rstrip", false, origin, path);
  t.single_word = get_bool(j, "single_word", false, origin, path);
  // HF's default: special tokens are matched in raw text, others in normalized text.
  t.normalized = get_bool(j, "normalized", !t.special, origin, path);
  return t;
}

TokenId parse_id(const json& j, const std::string& origin, const std::string& path) {
  if (!j.is_number_integer() || j.get<std::int64_t>() < 0 || j.get<std::int64_t>() > 0x7FFFFFFF) {
    fail(origin, path + " must be a non-negative integer id");
  }
  return j.get<TokenId>();
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw sdk::BackendError("cannot open tokenizer file " + path.string());
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw sdk::BackendError("cannot read tokenizer file " + path.string());
  return std::move(buffer).str();
}

}  // namespace

/// Finds added tokens in text (HF AddedVocabulary::find_matches with an Aho-Corasick automaton in
/// leftmost-longest mode; here a first-byte index with candidates sorted longest first).
class AddedMatcher {
 public:
  struct Match {
    std::size_t begin;
    std::size_t end;
    TokenId id;
  };

  // `nfc`: normalize the contents of normalized tokens, as HF does for its normalized trie.
  void build(const std::vector<AddedToken>& tokens, bool normalized, bool nfc) {
    for (auto& bucket : by_first_byte_) bucket.clear();
    tokens_.clear();
    for (const auto& t : tokens) {
      if (t.normalized != normalized) continue;
      tokens_.push_back(t);
      if (normalized && nfc) tokens_.back().content = unicode::nfc(t.content);
    }
    for (std::size_t i = 0; i < tokens_.size(); ++i) {
      by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(i);
    }
    for (auto& bucket : by_first_byte_) {
      std::stable_sort(bucket.begin(), bucket.end(), [this](std::size_t a, std::size_t b) {
        return tokens_[a].content.size() > tokens_[b].content.size();
      });
    }
  }

  bool empty() const { return tokens_.empty(); }

  void find(std::string_view s,
            bool skip_special,
            const Regex& word_char,
            std::vector<Match>& out) const {
    std::size_t start_offset = 0;  // end of the previous accepted match
    std::size_t i = 0;
    while (i < s.size()) {
      const auto& bucket = by_first_byte_[static_cast<unsigned char>(s[i])];
      const AddedToken* hit = nullptr;
      for (const std::size_t k : bucket) {
        const auto& c = tokens_[k].content;
        if (s.compare(i, c.size(), c) == 0) {
          hit = &tokens_[k];
          break;
        }
      }
      if (hit == nullptr) {
        ++i;
        continue;
      }
      std::size_t begin = i;
      std::size_t end = i + hit->content.size();
      i = end;  // the automaton resumes after the match even when the match is rejected
      if (skip_special && hit->special) continue;
      if (hit->single_word) {
        const bool start_ok = begin == 0 || !ends_with_word(s.substr(0, begin), word_char);
        const bool stop_ok = end == s.size() || !word_char.matches_at(s, end);
        if (!start_ok || !stop_ok) continue;
      }
      if (begin < start_offset) continue;  // swallowed by a previous token's rstrip
      if (hit->lstrip) {
        begin = std::max(start_offset, leftmost_space_at_end(s.substr(0, begin)));
      }
      if (hit->rstrip) end += rightmost_space_at_start(s.substr(end));
      out.push_back(Match{begin, end, hit->id});
      start_offset = end;
      i = std::max(i, end);
    }
  }

 private:
  static bool ends_with_word(std::string_view s, const Regex& word_char) {
    std::size_t p = s.size();
    do {
      --p;
    } while (p > 0 && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80);
    return word_char.matches_at(s, p);
  }
  static std::size_t leftmost_space_at_end(std::string_view s) {
    std::size_t begin = s.size();
    while (begin > 0) {
      std::size_t p = begin - 1;
      while (p > 0 && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
      std::size_t q = p;
      const char32_t cp = unicode::decode_utf8(s, q);
      if (q != begin || cp == unicode::kInvalid || !unicode::is_white_space(cp)) break;
      begin = p;
    }
    return begin;
  }
  static std::size_t rightmost_space_at_start(std::string_view s) {
    std::size_t pos = 0;
    while (pos < s.size()) {
      std::size_t q = pos;
      const char32_t cp = unicode::decode_utf8(s, q);
      if (cp == unicode::kInvalid || !unicode::is_white_space(cp)) break;
      pos = q;
    }
    return pos;
  }

  std::vector<AddedToken> tokens_;
  std::array<std::vector<std::size_t>, 256> by_first_byte_;
};

struct Tokenizer::Impl {
  std::string origin;
  bool nfc = false;
  std::vector<PreTokenizerStep> pre_tokenizer;
  std::shared_ptr<const Regex> gpt2_regex;
  std::unique_ptr<BpeModel> model;
  std::vector<AddedToken> added;  // sorted by id
  detail::StringMap<TokenId> added_by_content;
  AddedMatcher raw_matcher;
  AddedMatcher normalized_matcher;
  std::unique_ptr<Regex> word_char;  // Rust regex's \w, for single_word
  std::vector<TokenId> post_prefix;
  std::vector<TokenId> post_suffix;
  bool decoder_joins_with_spaces = false;
  TokenizerConfig config;
  std::vector<std::string> pieces;  // decoded bytes per id
  std::vector<std::uint8_t> assigned;
  std::vector<std::uint8_t> special;
  std::optional<TokenId> bos, eos, pad;

  void check_id(TokenId id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= pieces.size() ||
        !assigned[static_cast<std::size_t>(id)]) {
      throw sdk::BackendError(sdk::detail::concat(
          origin, ": token id ", id,
          id < 0 || static_cast<std::size_t>(id) >= pieces.size() ? " is out of range [0, "
                                                                  : " is unassigned in [0, ",
          pieces.size(), ")"));
    }
  }

  std::optional<TokenId> lookup(std::string_view token) const {
    if (const auto it = added_by_content.find(token); it != added_by_content.end()) {
      return it->second;
    }
    if (const auto it = model->vocab().find(token); it != model->vocab().end()) {
      return it->second;
    }
    return std::nullopt;
  }

  void parse_normalizer(const json& j, const std::string& path) {
    if (j.is_null()) return;
    const std::string type = type_of(j, origin, path);
    if (type == "NFC") {
      nfc = true;
    } else if (type == "Sequence") {
      const json& list = require(j, "normalizers", origin, path);
      if (!list.is_array()) fail(origin, path + ".normalizers must be an array");
      for (std::size_t i = 0; i < list.size(); ++i) {
        parse_normalizer(list[i], path + ".normalizers[" + std::to_string(i) + "]");
      }
    } else {
      fail(origin,
           "unsupported normalizer '" + type + "' at " + path + " (supported: NFC, Sequence)");
    }
  }

  void parse_pre_tokenizer(const json& j, const std::string& path) {
    if (j.is_null()) return;
    const std::string type = type_of(j, origin, path);
    if (type == "Sequence") {
      const json& list = require(j, "pretokenizers", origin, path);
      if (!list.is_array()) fail(origin, path + ".pretokenizers must be an array");
      for (std::size_t i = 0; i < list.size(); ++i) {
        parse_pre_tokenizer(list[i], path + ".pretokenizers[" + std::to_string(i) + "]");
      }
    } else if (type == "Split") {
      SplitStep step;
      const json& pattern = require(j, "pattern", origin, path);
      if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
        step.regex = std::make_shared<Regex>(pattern["Regex"].get<std::string>(), false, origin);
      } else if (pattern.is_object() && pattern.contains("String") &&
                 pattern["String"].is_string()) {
        const auto literal = pattern["String"].get<std::string>();
        if (!literal.empty()) step.regex = std::make_shared<Regex>(literal, true, origin);
      } else {
        fail(origin, path + ".pattern must be {\"Regex\": \"...\"} or {\"String\": \"...\"}");
      }
      const std::string behavior = require_string(j, "behavior", origin, path);
      if (behavior == "Removed") {
        step.behavior = SplitBehavior::kRemoved;
      } else if (behavior == "Isolated") {
        step.behavior = SplitBehavior::kIsolated;
      } else if (behavior == "MergedWithPrevious") {
        step.behavior = SplitBehavior::kMergedWithPrevious;
      } else if (behavior == "MergedWithNext") {
        step.behavior = SplitBehavior::kMergedWithNext;
      } else if (behavior == "Contiguous") {
        step.behavior = SplitBehavior::kContiguous;
      } else {
        fail(origin, "unknown split behavior '" + behavior + "' at " + path + ".behavior");
      }
      step.invert = get_bool(j, "invert", false, origin, path);
      pre_tokenizer.emplace_back(std::move(step));
    } else if (type == "ByteLevel") {
      ByteLevelStep step;
      step.add_prefix_space = get_bool(j, "add_prefix_space", true, origin, path);
      step.use_regex = get_bool(j, "use_regex", true, origin, path);
      if (step.use_regex && !gpt2_regex) {
        gpt2_regex = std::make_shared<Regex>(kGpt2Pattern, false, origin);
      }
      pre_tokenizer.emplace_back(step);
    } else if (type == "Digits") {
      pre_tokenizer.emplace_back(DigitsStep{get_bool(j, "individual_digits", false, origin, path)});
    } else {
      fail(origin, "unsupported pre_tokenizer '" + type + "' at " + path +
                       " (supported: Split, ByteLevel, Digits, Sequence)");
    }
  }

  // Each post-processor wraps the sequence: prefix + A + suffix.
  void parse_post_processor(const json& j, const std::string& path) {
    if (j.is_null()) return;
    const std::string type = type_of(j, origin, path);
    std::vector<TokenId> prefix, suffix;
    if (type == "ByteLevel") {
      return;  // only adjusts offsets
    } else if (type == "Sequence") {
      const json& list = require(j, "processors", origin, path);
      if (!list.is_array()) fail(origin, path + ".processors must be an array");
      for (std::size_t i = 0; i < list.size(); ++i) {
        parse_post_processor(list[i], path + ".processors[" + std::to_string(i) + "]");
      }
      return;
    } else if (type == "TemplateProcessing") {
      const json& single = require(j, "single", origin, path);
      const json& specials = require(j, "special_tokens", origin, path);
      if (!single.is_array()) fail(origin, path + ".single must be an array");
      bool seen_sequence = false;
      for (std::size_t i = 0; i < single.size(); ++i) {
        const json& item = single[i];
        const std::string ipath = path + ".single[" + std::to_string(i) + "]";
        if (item.is_object() && item.contains("Sequence")) {
          const std::string id = require_string(item["Sequence"], "id", origin, ipath);
          if (id != "A") fail(origin, ipath + " uses sequence '" + id + "' in a single template");
          if (seen_sequence) fail(origin, ipath + ": sequence A appears twice");
          seen_sequence = true;
        } else if (item.is_object() && item.contains("SpecialToken")) {
          const std::string name = require_string(item["SpecialToken"], "id", origin, ipath);
          if (!specials.is_object() || !specials.contains(name)) {
            fail(origin, ipath + " names special token '" + name + "' missing from " + path +
                             ".special_tokens");
          }
          const json& ids = require(specials[name], "ids", origin, path + ".special_tokens");
          if (!ids.is_array()) fail(origin, path + ".special_tokens['" + name + "'].ids");
          auto& target = seen_sequence ? suffix : prefix;
          for (const auto& id : ids) target.push_back(parse_id(id, origin, ipath));
        } else {
          fail(origin, ipath + " must be {\"Sequence\": ...} or {\"SpecialToken\": ...}");
        }
      }
      if (!seen_sequence) fail(origin, path + ".single has no sequence A");
    } else if (type == "BertProcessing" || type == "RobertaProcessing") {
      for (const char* key : {"cls", "sep"}) {
        const json& pair = require(j, key, origin, path);
        if (!pair.is_array() || pair.size() != 2) {
          fail(origin, path + "." + key + " must be [token, id]");
        }
        (std::string(key) == "cls" ? prefix : suffix)
            .push_back(parse_id(pair[1], origin, path + "." + key));
      }
    } else {
      fail(origin, "unsupported post_processor '" + type + "' at " + path);
    }
    post_prefix.insert(post_prefix.begin(), prefix.begin(), prefix.end());
    post_suffix.insert(post_suffix.end(), suffix.begin(), suffix.end());
  }

  void parse_decoder(const json& j, const std::string& path, bool& byte_level) {
    if (j.is_null()) return;
    const std::string type = type_of(j, origin, path);
    if (type == "ByteLevel") {
      byte_level = true;
    } else if (type == "Sequence") {
      const json& list = require(j, "decoders", origin, path);
      if (!list.is_array()) fail(origin, path + ".decoders must be an array");
      for (std::size_t i = 0; i < list.size(); ++i) {
        parse_decoder(list[i], path + ".decoders[" + std::to_string(i) + "]", byte_level);
      }
    } else {
      fail(origin, "unsupported decoder '" + type + "' at " + path + " (supported: ByteLevel)");
    }
  }

  void parse_config(const json& cfg, const std::string& cfg_origin) {
    if (!cfg.is_object()) fail(cfg_origin, "tokenizer_config.json must be a JSON object");
    config.bos_token = config_token(cfg, "bos_token", cfg_origin);
    config.eos_token = config_token(cfg, "eos_token", cfg_origin);
    config.pad_token = config_token(cfg, "pad_token", cfg_origin);
    config.unk_token = config_token(cfg, "unk_token", cfg_origin);
    if (const auto it = cfg.find("chat_template"); it != cfg.end() && !it->is_null()) {
      if (it->is_string()) {
        config.chat_template = it->get<std::string>();
      } else if (it->is_array()) {
        for (const auto& entry : *it) {
          const std::string name = require_string(entry, "name", cfg_origin, "chat_template[]");
          config.named_chat_templates[name] =
              require_string(entry, "template", cfg_origin, "chat_template[]");
          if (!config.chat_template || name == "default") {
            config.chat_template = config.named_chat_templates[name];
          }
        }
        if (const auto d = config.named_chat_templates.find("default");
            d != config.named_chat_templates.end()) {
          config.chat_template = d->second;
        }
      } else {
        fail(cfg_origin, "chat_template must be a string or a list of {name, template}");
      }
    }
    for (const char* key : {"add_bos_token", "add_eos_token"}) {
      if (const auto it = cfg.find(key); it != cfg.end() && !it->is_null()) {
        if (!it->is_boolean()) fail(cfg_origin, std::string(key) + " must be a boolean");
        (std::string(key) == "add_bos_token" ? config.add_bos_token : config.add_eos_token) =
            it->get<bool>();
      }
    }
    config.clean_up_tokenization_spaces =
        get_bool(cfg, "clean_up_tokenization_spaces", false, cfg_origin, "config");
    if (const auto it = cfg.find("model_max_length"); it != cfg.end() && it->is_number()) {
      const double v = it->get<double>();
      if (v >= 1 && v < 9.0e15) config.model_max_length = static_cast<std::int64_t>(v);
    }
    if (const auto it = cfg.find("tokenizer_class"); it != cfg.end() && it->is_string()) {
      config.tokenizer_class = it->get<std::string>();
    }
    if (const auto it = cfg.find("added_tokens_decoder"); it != cfg.end() && !it->is_null()) {
      if (!it->is_object()) fail(cfg_origin, "added_tokens_decoder must be an object");
      for (const auto& [key, value] : it->items()) {
        TokenId id = -1;
        try {
          std::size_t used = 0;
          id = std::stoll(key, &used);
          if (used != key.size() || id < 0) id = -1;
        } catch (const std::exception&) {
          id = -1;
        }
        if (id < 0) fail(cfg_origin, "added_tokens_decoder key '" + key + "' is not an id");
        config.added_tokens_decoder.push_back(
            parse_added_token(value, id, cfg_origin, "added_tokens_decoder['" + key + "']"));
      }
      std::sort(config.added_tokens_decoder.begin(), config.added_tokens_decoder.end(),
                [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });
    }
  }

  void add_token(const AddedToken& t, const std::string& where) {
    if (const auto it = added_by_content.find(t.content); it != added_by_content.end()) {
      if (it->second != t.id) {
        fail(origin, where + ": added token '" + t.content + "' appears with ids " +
                         std::to_string(it->second) + " and " + std::to_string(t.id));
      }
      return;
    }
    if (const std::string* existing = model->token(static_cast<std::size_t>(t.id));
        existing != nullptr && *existing != t.content) {
      fail(origin, where + ": added token '" + t.content + "' has id " + std::to_string(t.id) +
                       ", which model.vocab gives to '" + *existing + "'");
    }
    if (static_cast<std::size_t>(t.id) >= model->size() + BpeModel::kMaxIdGap) {
      fail(origin, where + ": added token '" + t.content + "' has id " + std::to_string(t.id) +
                       ", implausibly far beyond the vocabulary (" + std::to_string(model->size()) +
                       " ids)");
    }
    if (std::any_of(added.begin(), added.end(),
                    [&](const AddedToken& a) { return a.id == t.id; })) {
      fail(origin, where + ": two added tokens share id " + std::to_string(t.id));
    }
    added.push_back(t);
    added_by_content.emplace(t.content, t.id);
  }

  void load(const json& root, const json* cfg, const std::string& cfg_origin) {
    if (!root.is_object()) fail(origin, "tokenizer.json must be a JSON object");
    const json& model_json = require(root, "model", origin, "tokenizer");
    if (!model_json.is_object()) fail(origin, "model must be an object");
    std::string model_type;
    if (const auto it = model_json.find("type"); it != model_json.end()) {
      if (!it->is_string()) fail(origin, "model.type must be a string");
      model_type = it->get<std::string>();
    } else if (model_json.contains("merges")) {
      model_type = "BPE";  // old files omit the type; only BPE has merges
    } else {
      fail(origin, "missing field 'model.type'");
    }
    if (model_type != "BPE") {
      fail(origin, "unsupported tokenizer model '" + model_type + "' in " + origin +
                       " (only BPE is supported)");
    }
    model = std::make_unique<BpeModel>(model_json, origin);

    parse_normalizer(root.value("normalizer", json()), "normalizer");
    parse_pre_tokenizer(root.value("pre_tokenizer", json()), "pre_tokenizer");
    parse_post_processor(root.value("post_processor", json()), "post_processor");
    bool byte_level_decoder = false;
    const json decoder = root.value("decoder", json());
    parse_decoder(decoder, "decoder", byte_level_decoder);
    decoder_joins_with_spaces = decoder.is_null();

    if (const auto it = root.find("added_tokens"); it != root.end() && !it->is_null()) {
      if (!it->is_array()) fail(origin, "added_tokens must be an array");
      for (std::size_t i = 0; i < it->size(); ++i) {
        const std::string path = "added_tokens[" + std::to_string(i) + "]";
        const json& entry = (*it)[i];
        add_token(parse_added_token(
                      entry, parse_id(require(entry, "id", origin, path), origin, path + ".id"),
                      origin, path),
                  path);
      }
    }
    if (cfg != nullptr) {
      parse_config(*cfg, cfg_origin);
      // transformers adds tokens listed only in added_tokens_decoder; tokenizer.json wins on
      // conflicts.
      for (const auto& t : config.added_tokens_decoder) {
        const bool known_id = std::any_of(added.begin(), added.end(),
                                          [&](const AddedToken& a) { return a.id == t.id; });
        if (!known_id && !added_by_content.contains(t.content)) {
          add_token(t, cfg_origin + " added_tokens_decoder");
        }
      }
    }
    std::sort(added.begin(), added.end(),
              [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });
    raw_matcher.build(added, false, false);
    normalized_matcher.build(added, true, nfc);
    if (std::any_of(added.begin(), added.end(),
                    [](const AddedToken& t) { return t.single_word; })) {
      word_char = std::make_unique<Regex>(R"([\p{L}\p{M}\p{Nd}\p{Nl}\p{Pc}\x{200C}\x{200D}])",
                                          false, origin);
    }

    // Decoded bytes of every id.
    std::size_t size = model->size();
    for (const auto& t : added) size = std::max(size, static_cast<std::size_t>(t.id) + 1);
    pieces.assign(size, std::string());
    assigned.assign(size, 0);
    special.assign(size, 0);
    auto set_piece = [&](std::size_t id, const std::string& token) {
      assigned[id] = 1;
      if (!byte_level_decoder || !detail::byte_level_decode(token, pieces[id])) {
        pieces[id] = token;
      }
    };
    for (std::size_t id = 0; id < model->size(); ++id) {
      if (const std::string* token = model->token(id)) set_piece(id, *token);
    }
    for (const auto& t : added) {
      pieces[static_cast<std::size_t>(t.id)].clear();
      set_piece(static_cast<std::size_t>(t.id), t.content);
      special[static_cast<std::size_t>(t.id)] = t.special ? 1 : 0;
    }
    for (const TokenId id : post_prefix) check_id(id);
    for (const TokenId id : post_suffix) check_id(id);

    auto resolve = [&](const std::optional<std::string>& token) -> std::optional<TokenId> {
      return token ? lookup(*token) : std::nullopt;
    };
    bos = resolve(config.bos_token);
    eos = resolve(config.eos_token);
    pad = resolve(config.pad_token);
  }

  // Pre-tokenizes one normalized segment and runs the model on each piece.
  void encode_segment(const std::string& text, std::vector<TokenId>& ids) const {
    std::vector<std::string> pieces_now{text};
    std::vector<std::string> next;
    for (const auto& step : pre_tokenizer) {
      next.clear();
      for (const auto& piece : pieces_now) {
        if (const auto* split = std::get_if<SplitStep>(&step)) {
          split_with_behavior(piece, regex_spans(split->regex.get(), piece), split->behavior,
                              split->invert, next);
        } else if (const auto* byte_level = std::get_if<ByteLevelStep>(&step)) {
          std::string s = piece;
          if (byte_level->add_prefix_space && (s.empty() || s[0] != ' ')) s.insert(0, " ");
          std::vector<std::string> parts;
          if (byte_level->use_regex) {
            split_with_behavior(s, regex_spans(gpt2_regex.get(), s), SplitBehavior::kIsolated,
                                false, parts);
          } else if (!s.empty()) {
            parts.push_back(std::move(s));
          }
          for (const auto& part : parts) {
            std::string mapped;
            mapped.reserve(part.size() * 2);
            detail::byte_level_encode(part, mapped);
            next.push_back(std::move(mapped));
          }
        } else {
          const auto& digits = std::get<DigitsStep>(step);
          std::vector<Span> spans;
          for (std::size_t i = 0; i < piece.size();) {
            std::size_t j = i + 1;
            const bool digit = piece[i] >= '0' && piece[i] <= '9';
            if (!digit) {
              while (j < piece.size() && !(piece[j] >= '0' && piece[j] <= '9')) ++j;
            }
            spans.push_back(Span{i, j, digit});
            i = j;
          }
          if (spans.empty()) spans.push_back(Span{0, 0, false});
          split_with_behavior(
              piece, spans,
              digits.individual_digits ? SplitBehavior::kIsolated : SplitBehavior::kContiguous,
              false, next);
        }
      }
      std::swap(pieces_now, next);
    }
    for (const auto& piece : pieces_now) model->tokenize(piece, ids);
  }

  void encode_normalized(const std::string& text,
                         const EncodeOptions& options,
                         std::vector<TokenId>& ids) const {
    if (normalized_matcher.empty()) {
      encode_segment(text, ids);
      return;
    }
    std::vector<AddedMatcher::Match> matches;
    normalized_matcher.find(text, options.split_special_tokens, *word_char_or_dummy(), matches);
    std::size_t prev = 0;
    for (const auto& m : matches) {
      if (m.begin > prev) encode_segment(text.substr(prev, m.begin - prev), ids);
      ids.push_back(m.id);
      prev = m.end;
    }
    if (prev < text.size()) encode_segment(text.substr(prev), ids);
  }

  const Regex* word_char_or_dummy() const {
    static const Regex dummy("\\w", false, "<builtin>");
    return word_char ? word_char.get() : &dummy;
  }

  std::vector<TokenId> encode(std::string_view text, const EncodeOptions& options) const {
    std::vector<TokenId> ids;
    ids.reserve(text.size() / 3 + 4);
    if (options.add_special_tokens) ids.insert(ids.end(), post_prefix.begin(), post_prefix.end());
    auto encode_plain = [&](std::string_view segment) {
      if (segment.empty()) return;
      const std::string normalized = nfc ? unicode::nfc(segment) : std::string(segment);
      encode_normalized(normalized, options, ids);
    };
    std::vector<AddedMatcher::Match> matches;
    if (!raw_matcher.empty()) {
      raw_matcher.find(text, options.split_special_tokens, *word_char_or_dummy(), matches);
    }
    std::size_t prev = 0;
    for (const auto& m : matches) {
      if (m.begin > prev) encode_plain(text.substr(prev, m.begin - prev));
      ids.push_back(m.id);
      prev = m.end;
    }
    if (prev < text.size()) encode_plain(text.substr(prev));
    if (options.add_special_tokens) ids.insert(ids.end(), post_suffix.begin(), post_suffix.end());
    return ids;
  }
};

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json,
                               std::string_view tokenizer_config_json,
                               std::string_view origin) {
  auto impl = std::make_shared<Impl>();
  impl->origin = std::string(origin);
  const std::string cfg_origin = impl->origin + " (tokenizer_config.json)";
  json root, cfg;
  try {
    root = json::parse(tokenizer_json);
  } catch (const json::exception& e) {
    fail(impl->origin, std::string("invalid JSON: ") + e.what());
  }
  if (!tokenizer_config_json.empty()) {
    try {
      cfg = json::parse(tokenizer_config_json);
    } catch (const json::exception& e) {
      fail(cfg_origin, std::string("invalid JSON: ") + e.what());
    }
  }
  try {
    impl->load(root, tokenizer_config_json.empty() ? nullptr : &cfg, cfg_origin);
  } catch (const json::exception& e) {
    // Shapes the explicit checks did not anticipate still get a message naming the file.
    fail(impl->origin, std::string("malformed tokenizer: ") + e.what());
  }
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_files(const std::filesystem::path& tokenizer_json,
                                const std::optional<std::filesystem::path>& tokenizer_config_json) {
  const std::string text = read_file(tokenizer_json);
  std::string cfg_text;
  if (tokenizer_config_json && std::filesystem::exists(*tokenizer_config_json)) {
    cfg_text = read_file(*tokenizer_config_json);
    if (cfg_text.empty()) cfg_text = "{}";
  }
  return from_json(text, cfg_text, tokenizer_json.string());
}

Tokenizer Tokenizer::from_directory(const std::filesystem::path& dir) {
  const auto json_path = dir / "tokenizer.json";
  if (!std::filesystem::exists(json_path)) {
    throw sdk::BackendError("no tokenizer.json in " + dir.string());
  }
  return from_files(json_path, dir / "tokenizer_config.json");
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  return impl_->encode(text, options);
}

std::string Tokenizer::decode(std::span<const TokenId> ids, bool skip_special_tokens) const {
  std::string bytes;
  bool first = true;
  for (const TokenId id : ids) {
    impl_->check_id(id);
    const auto i = static_cast<std::size_t>(id);
    if (skip_special_tokens && impl_->special[i]) continue;
    if (impl_->decoder_joins_with_spaces && !first) bytes.push_back(' ');
    bytes += impl_->pieces[i];
    first = false;
  }
  return unicode::utf8_lossy(bytes);
}

const std::string& Tokenizer::token_bytes(TokenId id) const {
  impl_->check_id(id);
  return impl_->pieces[static_cast<std::size_t>(id)];
}

std::size_t Tokenizer::vocab_size() const {
  return impl_->pieces.size();
}

std::optional<TokenId> Tokenizer::token_to_id(std::string_view token) const {
  return impl_->lookup(token);
}

std::optional<std::string> Tokenizer::id_to_token(TokenId id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= impl_->pieces.size()) return std::nullopt;
  for (const auto& t : impl_->added) {
    if (t.id == id) return t.content;
  }
  if (const std::string* token = impl_->model->token(static_cast<std::size_t>(id))) return *token;
  return std::nullopt;
}

bool Tokenizer::is_special(TokenId id) const {
  return id >= 0 && static_cast<std::size_t>(id) < impl_->special.size() &&
         impl_->special[static_cast<std::size_t>(id)] != 0;
}

const std::vector<AddedToken>& Tokenizer::added_tokens() const {
  return impl_->added;
}
const TokenizerConfig& Tokenizer::config() const {
  return impl_->config;
}
std::optional<TokenId> Tokenizer::bos_id() const {
  return impl_->bos;
}
std::optional<TokenId> Tokenizer::eos_id() const {
  return impl_->eos;
}
std::optional<TokenId> Tokenizer::pad_id() const {
  return impl_->pad;
}
const std::string& Tokenizer::origin() const {
  return impl_->origin;
}

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer),
      skip_special_(skip_special_tokens),
      join_with_spaces_(tokenizer.impl_->decoder_joins_with_spaces) {}

std::string IncrementalDecoder::push(TokenId id) {
  const Tokenizer::Impl& impl = *tokenizer_.impl_;
  impl.check_id(id);
  const auto i = static_cast<std::size_t>(id);
  if (skip_special_ && impl.special[i]) return {};
  if (join_with_spaces_ && !first_) pending_.push_back(' ');
  first_ = false;
  pending_ += impl.pieces[i];
  // Everything before an incomplete trailing character is final: the lossy decoder is back in
  // its initial state there, so decoding the parts separately equals decoding the whole.
  const std::size_t hold = unicode::utf8_incomplete_tail(pending_);
  std::string out =
      unicode::utf8_lossy(std::string_view(pending_).substr(0, pending_.size() - hold));
  pending_.erase(0, pending_.size() - hold);
  text_ += out;
  return out;
}

std::string IncrementalDecoder::push(std::span<const TokenId> ids) {
  std::string out;
  for (const TokenId id : ids) out += push(id);
  return out;
}

std::string IncrementalDecoder::finish() {
  std::string out = unicode::utf8_lossy(pending_);
  pending_.clear();
  text_ += out;
  return out;
}

void IncrementalDecoder::reset() {
  first_ = true;
  pending_.clear();
  text_.clear();
}

}  // namespace mr::tokenizer
