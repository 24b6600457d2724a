// write_byte_level_tokenizer() and clean_up_tokenization().
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "byte_level.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/sdk/file_io.hpp"
#include "metareward/tokenizer/tokenizer.hpp"
#include "metareward/tokenizer/unicode.hpp"

namespace mr::tokenizer {
namespace {

using nlohmann::json;
using ordered_json = nlohmann::ordered_json;

void write_text(const std::filesystem::path& path, const std::string& text) {
  // Atomic and checked: a crash never leaves a half-written tokenizer behind.
  sdk::write_file_atomic(path, text);
}

ordered_json added_token_json(const std::string& content) {
  ordered_json t;
  t["content"] = content;
  t["single_word"] = false;
  t["lstrip"] = false;
  t["rstrip"] = false;
  t["normalized"] = false;
  t["special"] = true;
  return t;
}

}  // namespace

void write_byte_level_tokenizer(const std::filesystem::path& dir,
                                const ByteLevelSpecials& specials) {
  std::vector<std::string> tokens;
  for (const std::string* t : {&specials.bos_token, &specials.eos_token, &specials.pad_token}) {
    if (!t->empty()) tokens.push_back(*t);
  }
  for (const auto& t : specials.additional) {
    if (t.empty()) throw sdk::BackendError("byte-level tokenizer: empty special token");
    tokens.push_back(t);
  }
  std::set<std::string> seen;
  const auto& tables = detail::byte_level_tables();
  for (const auto& t : tokens) {
    if (!seen.insert(t).second) {
      throw sdk::BackendError("byte-level tokenizer: special token '" + t + "' is listed twice");
    }
    if (!unicode::is_valid_utf8(t)) {
      throw sdk::BackendError("byte-level tokenizer: special token is not valid UTF-8");
    }
    // A one-character special would shadow a byte token (or be one).
    std::size_t pos = 0;
    unicode::decode_utf8(t, pos);
    if (pos == t.size()) {
      throw sdk::BackendError("byte-level tokenizer: special token '" + t +
                              "' must be longer than one character");
    }
  }

  ordered_json vocab = ordered_json::object();
  for (int b = 0; b < 256; ++b) vocab[tables.byte_to_utf8[b]] = b;
  ordered_json added = ordered_json::array();
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    ordered_json t;
    t["id"] = 256 + i;
    t.update(added_token_json(tokens[i]));
    added.push_back(std::move(t));
  }
  const ordered_json byte_level = {{"type", "ByteLevel"},
                                   {"add_prefix_space", false},
                                   {"trim_offsets", false},
                                   {"use_regex", false}};
  ordered_json root;
  root["version"] = "1.0";
  root["truncation"] = nullptr;
  root["padding"] = nullptr;
  root["added_tokens"] = added;
  root["normalizer"] = nullptr;
  root["pre_tokenizer"] = byte_level;
  root["post_processor"] = byte_level;
  root["decoder"] = byte_level;
  root["model"] = {{"type", "BPE"},
                   {"dropout", nullptr},
                   {"unk_token", nullptr},
                   {"continuing_subword_prefix", nullptr},
                   {"end_of_word_suffix", nullptr},
                   {"fuse_unk", false},
                   {"byte_fallback", false},
                   {"ignore_merges", false},
                   {"vocab", vocab},
                   {"merges", ordered_json::array()}};

  ordered_json config;
  config["tokenizer_class"] = "PreTrainedTokenizerFast";
  ordered_json decoder = ordered_json::object();
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    decoder[std::to_string(256 + i)] = added_token_json(tokens[i]);
  }
  config["added_tokens_decoder"] = decoder;
  auto token_or_null = [](const std::string& t) {
    return t.empty() ? ordered_json() : ordered_json(t);
  };
  config["bos_token"] = token_or_null(specials.bos_token);
  config["eos_token"] = token_or_null(specials.eos_token);
  config["pad_token"] = token_or_null(specials.pad_token);
  if (!specials.additional.empty()) config["additional_special_tokens"] = specials.additional;
  config["clean_up_tokenization_spaces"] = false;
  if (specials.model_max_length) config["model_max_length"] = *specials.model_max_length;
  if (specials.chat_template) config["chat_template"] = *specials.chat_template;

  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw sdk::BackendError("cannot create " + dir.string() + ": " + ec.message());
  write_text(dir / "tokenizer.json", root.dump(2) + "\n");
  write_text(dir / "tokenizer_config.json", config.dump(2) + "\n");
}

std::string clean_up_tokenization(std::string_view text) {
  // transformers' PreTrainedTokenizerBase.clean_up_tokenization: sequential replace-alls.
  static const std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  std::string s(text);
  for (const auto& [from, to] : kRules) {
    std::string out;
    out.reserve(s.size());
    std::size_t pos = 0;
    while (true) {
      const std::size_t hit = s.find(from, pos);
      if (hit == std::string::npos) break;
      out.append(s, pos, hit - pos);
      out += to;
      pos = hit + from.size();
    }
    out.append(s, pos, std::string::npos);
    s = std::move(out);
  }
  return s;
}

}  // namespace mr::tokenizer
