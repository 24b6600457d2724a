// The BPE model of an HF tokenizer.json: vocabulary, ranked merges and the per-word cache.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace mr::tokenizer::detail {

/// Transparent string hash so maps keyed by std::string can be searched with string_view.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

/// string -> value map searchable by string_view.
template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

/// Byte-pair encoding exactly as HF `tokenizers` (models/bpe): initial symbols are the characters
/// of a pre-token, then the lowest-ranked adjacent pair is merged (leftmost first on ties) until
/// no pair has a merge.
class BpeModel {
 public:
  /// Reads the "model" object of tokenizer.json. Throws mr::sdk::BackendError naming `origin`.
  BpeModel(const nlohmann::json& model, const std::string& origin);

  /// Appends the ids of one pre-token (in vocabulary spelling) to `out`.
  void tokenize(std::string_view word, std::vector<std::int64_t>& out) const;

  /// The vocabulary.
  const StringMap<std::uint32_t>& vocab() const { return vocab_; }
  /// One more than the largest vocabulary id.
  std::size_t size() const { return id_to_token_.size(); }
  /// Spelling of `id`, or nullptr when unassigned / out of range.
  const std::string* token(std::size_t id) const {
    return id < id_to_token_.size() && assigned_[id] ? &id_to_token_[id] : nullptr;
  }

  /// Entries the word cache holds at most (then it stops growing).
  static constexpr std::size_t kCacheCapacity = 100000;
  /// How far ids may run past the number of tokens (holes allowed, absurd ids rejected).
  static constexpr std::size_t kMaxIdGap = 1 << 20;
  /// Longest pre-token (bytes) that is cached.
  static constexpr std::size_t kCacheMaxWordBytes = 256;

 private:
  struct Merge {
    std::uint32_t rank;
    std::uint32_t new_id;
  };
  static std::uint64_t pair_key(std::uint32_t a, std::uint32_t b) {
    return (static_cast<std::uint64_t>(a) << 32) | b;
  }
  std::optional<std::uint32_t> find(std::string_view s) const;
  void merge_word(std::string_view word, std::vector<std::int64_t>& out) const;

  StringMap<std::uint32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> assigned_;
  std::unordered_map<std::uint64_t, Merge> merges_;
  std::vector<std::int32_t> small_char_ids_;  // code point < 0x800 -> id (-1: absent)
  std::optional<std::uint32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string prefix_;  // continuing_subword_prefix
  std::string suffix_;  // end_of_word_suffix

  mutable std::shared_mutex cache_mutex_;
  mutable StringMap<std::vector<std::int64_t>> cache_;
};

}  // namespace mr::tokenizer::detail
