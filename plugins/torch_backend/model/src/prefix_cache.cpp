/// @file prefix_cache.cpp
/// PrefixCache: hashed token blocks of keys/values with LRU eviction under a byte budget.
#include "metareward/torch_model/prefix_cache.hpp"

#include <torch/torch.h>

#include <algorithm>

#include "metareward/sdk/error.hpp"

namespace mr::torch_backend {

using mr::sdk::BackendError;

namespace {

std::uint64_t mix(std::uint64_t h, std::uint64_t v) {
  // splitmix64's finaliser over the running state xor the next value.
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  h ^= h >> 30;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 27;
  h *= 0x94D049BB133111EBull;
  h ^= h >> 31;
  return h;
}

}  // namespace

PrefixCache::PrefixCache(std::int64_t budget_bytes, std::int64_t block_tokens)
    : budget_bytes_(std::max<std::int64_t>(0, budget_bytes)), block_tokens_(block_tokens) {
  MR_CHECK_AS(BackendError, block_tokens >= 1, "PrefixCache: block_tokens must be >= 1, got ",
              block_tokens);
}

void PrefixCache::bind(std::uint64_t weights_key) {
  if (bound_ && weights_key == weights_key_) return;
  if (!entries_.empty()) ++stats_.invalidations;
  clear();
  weights_key_ = weights_key;
  bound_ = true;
}

void PrefixCache::clear() {
  entries_.clear();
  lru_.clear();
  bytes_ = 0;
}

std::vector<std::uint64_t> PrefixCache::block_hashes(
    const std::vector<std::int64_t>& tokens) const {
  const auto full = static_cast<std::int64_t>(tokens.size()) / block_tokens_;
  std::vector<std::uint64_t> out;
  out.reserve(static_cast<std::size_t>(full));
  std::uint64_t h = mix(0x6D722D7072656678ull, static_cast<std::uint64_t>(block_tokens_));
  for (std::int64_t b = 0; b < full; ++b) {
    for (std::int64_t i = b * block_tokens_; i < (b + 1) * block_tokens_; ++i)
      h = mix(h, static_cast<std::uint64_t>(tokens[static_cast<std::size_t>(i)]));
    // 0 marks "no parent"; a real hash of 0 is remapped (a miss at worst).
    out.push_back(h == 0 ? 1 : h);
  }
  return out;
}

const PrefixCache::Entry* PrefixCache::find(const std::vector<std::int64_t>& tokens,
                                            const std::vector<std::uint64_t>& hashes,
                                            std::int64_t block) const {
  const auto it = entries_.find(hashes[static_cast<std::size_t>(block)]);
  if (it == entries_.end()) return nullptr;
  const Entry& e = it->second;
  const std::uint64_t parent = block == 0 ? 0 : hashes[static_cast<std::size_t>(block - 1)];
  if (e.parent != parent) return nullptr;
  // The block's own tokens must match; with the parent's key matching too, a false hit needs
  // a 64-bit collision of the chain hash of an earlier block.
  if (!std::equal(e.tokens.begin(), e.tokens.end(), tokens.begin() + block * block_tokens_))
    return nullptr;
  return &e;
}

void PrefixCache::touch(const Entry& entry) {
  lru_.splice(lru_.begin(), lru_, entry.lru);
}

std::int64_t PrefixCache::cached_blocks(const std::vector<std::int64_t>& tokens,
                                        const std::vector<std::uint64_t>& hashes,
                                        std::int64_t max_blocks) const {
  if (!enabled()) return 0;
  const auto limit = std::min<std::int64_t>(max_blocks, static_cast<std::int64_t>(hashes.size()));
  std::int64_t b = 0;
  while (b < limit && find(tokens, hashes, b) != nullptr) ++b;
  return b;
}

std::vector<at::Tensor> PrefixCache::lookup(const std::vector<std::int64_t>& tokens,
                                            const std::vector<std::uint64_t>& hashes,
                                            std::int64_t max_blocks) {
  std::vector<at::Tensor> out;
  std::vector<const Entry*> found;
  if (!enabled()) return out;
  const auto limit = std::min<std::int64_t>(max_blocks, static_cast<std::int64_t>(hashes.size()));
  for (std::int64_t b = 0; b < limit; ++b) {
    const Entry* e = find(tokens, hashes, b);
    if (e == nullptr) break;
    found.push_back(e);
    out.push_back(e->kv);
  }
  // Deepest first, so that the first block ends up the most recently used.
  for (auto it = found.rbegin(); it != found.rend(); ++it) touch(**it);
  stats_.reused_tokens += static_cast<std::int64_t>(found.size()) * block_tokens_;
  return out;
}

void PrefixCache::insert(const std::vector<std::int64_t>& tokens,
                         const std::vector<std::uint64_t>& hashes,
                         std::int64_t first_block,
                         const at::Tensor& span) {
  if (!enabled()) return;
  MR_CHECK_AS(BackendError, span.dim() == 4 && span.size(2) % block_tokens_ == 0,
              "PrefixCache::insert: span ", span.sizes(), " is not whole blocks of ", block_tokens_,
              " positions");
  const std::int64_t m = span.size(2) / block_tokens_;
  MR_CHECK_AS(BackendError,
              first_block >= 0 && first_block + m <= static_cast<std::int64_t>(hashes.size()),
              "PrefixCache::insert: blocks [", first_block, ", ", first_block + m, ") of a prompt ",
              "with ", hashes.size(), " full blocks");
  if (cached_blocks(tokens, hashes, first_block) != first_block) return;
  const std::int64_t block_bytes = span.numel() / m * static_cast<std::int64_t>(span.itemsize());
  if (block_bytes > budget_bytes_) return;
  std::vector<std::uint64_t> chain;
  for (std::int64_t b = first_block; b < first_block + m; ++b) {
    const std::uint64_t h = hashes[static_cast<std::size_t>(b)];
    if (find(tokens, hashes, b) == nullptr) {
      if (entries_.count(h) != 0) break;  // A different prefix under the same hash: stop here.
      Entry e;
      e.parent = b == 0 ? 0 : hashes[static_cast<std::size_t>(b - 1)];
      e.tokens.assign(tokens.begin() + b * block_tokens_, tokens.begin() + (b + 1) * block_tokens_);
      // Its own storage: a view would keep the whole span alive.
      e.kv = span.narrow(2, (b - first_block) * block_tokens_, block_tokens_).clone();
      e.bytes = block_bytes;
      lru_.push_front(h);
      e.lru = lru_.begin();
      entries_.emplace(h, std::move(e));
      bytes_ += block_bytes;
      ++stats_.inserted_blocks;
    }
    chain.push_back(h);
  }
  // Refresh the whole prefix deepest first (as lookup() does), then evict.
  for (std::int64_t b = first_block + static_cast<std::int64_t>(chain.size()) - 1; b >= 0; --b)
    touch(entries_.at(hashes[static_cast<std::size_t>(b)]));
  evict_to_budget();
}

void PrefixCache::evict_to_budget() {
  while (bytes_ > budget_bytes_ && !lru_.empty()) {
    const std::uint64_t h = lru_.back();
    lru_.pop_back();
    auto it = entries_.find(h);
    bytes_ -= it->second.bytes;
    entries_.erase(it);
    ++stats_.evicted_blocks;
  }
}

}  // namespace mr::torch_backend
