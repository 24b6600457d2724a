#include "bpe.hpp"

#include <cstdio>
#include <mutex>
#include <queue>

#include <nlohmann/json.hpp>

#include "metareward/sdk/error.hpp"
#include "metareward/tokenizer/unicode.hpp"

namespace mr::tokenizer::detail {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& origin, const std::string& what) {
  throw sdk::BackendError(origin + ": " + what);
}

// Optional string field: absent, null and "" all mean "none".
std::string optional_string(const json& obj, const char* key, const std::string& origin) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return {};
  if (!it->is_string()) fail(origin, std::string("model.") + key + " must be a string or null");
  return it->get<std::string>();
}

bool optional_bool(const json& obj, const char* key, const std::string& origin) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return false;
  if (!it->is_boolean()) fail(origin, std::string("model.") + key + " must be a boolean");
  return it->get<bool>();
}

}  // namespace

BpeModel::BpeModel(const json& model, const std::string& origin) {
  const auto vocab_it = model.find("vocab");
  if (vocab_it == model.end() || !vocab_it->is_object()) {
    fail(origin, "model.vocab is missing or not an object");
  }
  std::size_t max_id = 0;
  vocab_.reserve(vocab_it->size());
  for (const auto& [token, id_json] : vocab_it->items()) {
    if (!id_json.is_number_integer() || id_json.get<std::int64_t>() < 0 ||
        id_json.get<std::int64_t>() > 0x7FFFFFFF) {
      fail(origin, "model.vocab['" + token + "'] must be a non-negative integer id");
    }
    const auto id = id_json.get<std::uint32_t>();
    vocab_.emplace(token, id);
    max_id = std::max<std::size_t>(max_id, id);
  }
  // Ids index dense tables, so a corrupt id must not become a multi-gigabyte allocation.
  if (max_id >= vocab_.size() + kMaxIdGap) {
    fail(origin, "model.vocab id " + std::to_string(max_id) + " is implausibly large for " +
                     std::to_string(vocab_.size()) + " tokens");
  }
  id_to_token_.assign(vocab_.empty() ? 0 : max_id + 1, std::string());
  assigned_.assign(id_to_token_.size(), false);
  for (const auto& [token, id] : vocab_) {
    if (assigned_[id]) {
      fail(origin, "model.vocab gives id " + std::to_string(id) + " to both '" + id_to_token_[id] +
                       "' and '" + token + "'");
    }
    id_to_token_[id] = token;
    assigned_[id] = true;
  }

  fuse_unk_ = optional_bool(model, "fuse_unk", origin);
  byte_fallback_ = optional_bool(model, "byte_fallback", origin);
  ignore_merges_ = optional_bool(model, "ignore_merges", origin);
  prefix_ = optional_string(model, "continuing_subword_prefix", origin);
  suffix_ = optional_string(model, "end_of_word_suffix", origin);
  if (const auto it = model.find("dropout"); it != model.end() && !it->is_null()) {
    if (!it->is_number() || it->get<double>() != 0.0) {
      fail(origin, "model.dropout is not supported (deterministic encoding only)");
    }
  }
  if (const std::string unk = optional_string(model, "unk_token", origin); !unk.empty()) {
    const auto it = vocab_.find(unk);
    if (it == vocab_.end()) fail(origin, "model.unk_token '" + unk + "' is not in model.vocab");
    unk_id_ = it->second;
  }

  const auto merges_it = model.find("merges");
  if (merges_it == model.end() || !merges_it->is_array()) {
    fail(origin, "model.merges is missing or not an array");
  }
  merges_.reserve(merges_it->size());
  std::uint32_t rank = 0;
  for (const auto& entry : *merges_it) {
    std::string a, b;
    if (entry.is_string()) {
      // Legacy form "a b": exactly one separating space.
      const auto& s = entry.get_ref<const std::string&>();
      const auto space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        fail(origin, "model.merges[" + std::to_string(rank) + "] '" + s +
                         "' is not two tokens separated by one space");
      }
      a = s.substr(0, space);
      b = s.substr(space + 1);
    } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() &&
               entry[1].is_string()) {
      a = entry[0].get<std::string>();
      b = entry[1].get<std::string>();
    } else {
      fail(origin, "model.merges[" + std::to_string(rank) +
                       "] must be a string \"a b\" or a pair [\"a\", \"b\"]");
    }
    const auto a_it = vocab_.find(a);
    const auto b_it = vocab_.find(b);
    if (a_it == vocab_.end() || b_it == vocab_.end()) {
      fail(origin, "model.merges[" + std::to_string(rank) + "] uses '" +
                       (a_it == vocab_.end() ? a : b) + "', which is not in model.vocab");
    }
    const std::string merged =
        a + (b.size() >= prefix_.size() ? b.substr(prefix_.size()) : std::string());
    const auto m_it = vocab_.find(merged);
    if (m_it == vocab_.end()) {
      fail(origin, "model.merges[" + std::to_string(rank) + "] produces '" + merged +
                       "', which is not in model.vocab");
    }
    // A repeated pair keeps its last rank, as HF's HashMap insert does.
    merges_[pair_key(a_it->second, b_it->second)] = Merge{rank, m_it->second};
    ++rank;
  }

  small_char_ids_.assign(0x800, -1);
  for (const auto& [token, id] : vocab_) {
    std::size_t pos = 0;
    if (token.empty()) continue;
    const char32_t cp = unicode::decode_utf8(token, pos);
    if (cp != unicode::kInvalid && pos == token.size() && cp < 0x800) {
      small_char_ids_[cp] = static_cast<std::int32_t>(id);
    }
  }
}

std::optional<std::uint32_t> BpeModel::find(std::string_view s) const {
  const auto it = vocab_.find(s);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

void BpeModel::tokenize(std::string_view word, std::vector<std::int64_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const auto id = find(word)) {
      out.push_back(*id);
      return;
    }
  }
  const bool cacheable = word.size() <= kCacheMaxWordBytes;
  if (cacheable) {
    std::shared_lock lock(cache_mutex_);
    if (const auto it = cache_.find(word); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<std::int64_t> ids;
  merge_word(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::unique_lock lock(cache_mutex_);
    if (cache_.size() < kCacheCapacity) cache_.emplace(std::string(word), std::move(ids));
  }
}

void BpeModel::merge_word(std::string_view word, std::vector<std::int64_t>& out) const {
  struct Symbol {
    std::uint32_t id;
    std::int32_t prev;
    std::int32_t next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&symbols](std::uint32_t id) {
    const auto n = static_cast<std::int32_t>(symbols.size());
    symbols.push_back(Symbol{id, n - 1, n + 1, true});
  };

  // Initial symbols (HF Word construction, including unk/fuse_unk and byte fallback).
  std::optional<std::uint32_t> pending_unk;
  std::string scratch;
  std::size_t pos = 0;
  while (pos < word.size()) {
    const std::size_t start = pos;
    const char32_t cp = unicode::decode_utf8(word, pos);
    const bool is_first = start == 0;
    const bool is_last = pos == word.size();
    std::optional<std::uint32_t> id;
    std::string_view piece = word.substr(start, pos - start);
    if ((is_first || prefix_.empty()) && (!is_last || suffix_.empty())) {
      if (cp != unicode::kInvalid && cp < 0x800) {
        if (small_char_ids_[cp] >= 0) id = static_cast<std::uint32_t>(small_char_ids_[cp]);
      } else {
        id = find(piece);
      }
    } else {
      scratch.clear();
      if (!is_first) scratch += prefix_;
      scratch += piece;
      if (is_last) scratch += suffix_;
      id = find(scratch);
      piece = scratch;
    }
    if (id) {
      if (pending_unk) {
        add(*pending_unk);
        pending_unk.reset();
      }
      add(*id);
      continue;
    }
    if (byte_fallback_) {
      std::vector<std::uint32_t> bytes;
      for (const char c : piece) {
        char name[8];
        std::snprintf(name, sizeof(name), "<0x%02X>", static_cast<unsigned char>(c));
        const auto byte_id = find(name);
        if (!byte_id) {
          bytes.clear();
          break;
        }
        bytes.push_back(*byte_id);
      }
      if (!bytes.empty()) {
        // HF's byte fallback does not flush a pending unk first.
        for (const auto b : bytes) add(b);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk && !fuse_unk_) add(*pending_unk);
      pending_unk = unk_id_;
    }
    // Without unk_token HF silently drops a character the vocabulary lacks.
  }
  if (pending_unk) add(*pending_unk);
  if (symbols.empty()) return;
  symbols.back().next = -1;

  // Merge loop (HF Word::merge_all without dropout).
  struct Candidate {
    std::uint32_t rank;
    std::int32_t pos;
    std::uint32_t new_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  for (std::size_t i = 0; i + 1 < symbols.size(); ++i) {
    const auto it = merges_.find(pair_key(symbols[i].id, symbols[i + 1].id));
    if (it != merges_.end()) {
      queue.push(Candidate{it->second.rank, static_cast<std::int32_t>(i), it->second.new_id});
    }
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[static_cast<std::size_t>(top.pos)];
    if (!left.alive || left.next < 0) continue;
    const auto right_pos = static_cast<std::size_t>(left.next);
    const Symbol right = symbols[right_pos];
    const auto current = merges_.find(pair_key(left.id, right.id));
    if (current == merges_.end() || current->second.new_id != top.new_id) continue;  // stale
    left.id = top.new_id;
    left.next = right.next;
    symbols[right_pos].alive = false;
    if (right.next >= 0) symbols[static_cast<std::size_t>(right.next)].prev = top.pos;
    if (left.prev >= 0) {
      const Symbol& prev = symbols[static_cast<std::size_t>(left.prev)];
      const auto it = merges_.find(pair_key(prev.id, left.id));
      if (it != merges_.end()) queue.push(Candidate{it->second.rank, left.prev, it->second.new_id});
    }
    if (left.next >= 0) {
      const Symbol& next = symbols[static_cast<std::size_t>(left.next)];
      const auto it = merges_.find(pair_key(left.id, next.id));
      if (it != merges_.end()) queue.push(Candidate{it->second.rank, top.pos, it->second.new_id});
    }
  }
  for (std::int32_t i = 0; i >= 0; i = symbols[static_cast<std::size_t>(i)].next) {
    out.push_back(symbols[static_cast<std::size_t>(i)].id);
  }
}

}  // namespace mr::tokenizer::detail
