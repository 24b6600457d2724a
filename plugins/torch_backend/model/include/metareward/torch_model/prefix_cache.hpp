/// @file prefix_cache.hpp
/// Cross-request prefix cache: key/value blocks of prompt prefixes, reused by every later prompt
/// that starts with the same tokens (vLLM's automatic prefix caching, by hashed token blocks).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

namespace mr::torch_backend {

/// Counters of a PrefixCache since it was built (clear() does not reset them).
struct PrefixCacheStats {
  std::int64_t reused_tokens = 0;    ///< Prompt tokens whose keys/values came from the cache.
  std::int64_t inserted_blocks = 0;  ///< Blocks stored.
  std::int64_t evicted_blocks = 0;   ///< Blocks dropped to stay within the budget.
  std::int64_t invalidations = 0;    ///< Times the cache was emptied because the weights changed.
};

/// Keys and values of prompt prefixes in blocks of `block_tokens` tokens. Block b of a prompt
/// holds positions [b * block_tokens, (b + 1) * block_tokens) of every layer and is keyed by the
/// whole prefix up to its end (a chained hash, verified against the block's own tokens and its
/// parent's key), so a block is reused only by prompts whose first (b + 1) * block_tokens tokens
/// are the same. The keys carry RoPE for absolute positions from 0, hence the prefix-only reuse.
///
/// Bounded by `budget_bytes`; the least recently used blocks go first, and a lookup refreshes a
/// prefix from its deepest block to its first, so a prefix's later blocks are evicted before the
/// ones they extend (an evicted parent would make its children unreachable).
///
/// The cached values belong to the weights they were computed with: bind() with a key of the
/// current weights before every use empties the cache when the key changed. Not thread-safe.
class PrefixCache {
 public:
  /// A cache of at most `budget_bytes` (0 = disabled: lookups miss, inserts are ignored) in
  /// blocks of `block_tokens` (>= 1) tokens.
  PrefixCache(std::int64_t budget_bytes, std::int64_t block_tokens);

  /// Whether the budget is positive.
  bool enabled() const { return budget_bytes_ > 0; }
  /// Tokens per block.
  std::int64_t block_tokens() const { return block_tokens_; }
  /// The budget in bytes.
  std::int64_t budget_bytes() const { return budget_bytes_; }
  /// Bytes of the blocks held now.
  std::int64_t bytes() const { return bytes_; }
  /// Blocks held now.
  std::int64_t blocks() const { return static_cast<std::int64_t>(lru_.size()); }
  /// Counters since construction.
  const PrefixCacheStats& stats() const { return stats_; }

  /// Empties the cache if `weights_key` differs from the last one bound.
  void bind(std::uint64_t weights_key);
  /// Drops every block.
  void clear();

  /// Chain hashes of the full blocks of `tokens`: element b identifies tokens [0, (b+1) * B).
  std::vector<std::uint64_t> block_hashes(const std::vector<std::int64_t>& tokens) const;

  /// The cached blocks that start `tokens`, at most `max_blocks` of them: block b's keys and
  /// values [2 * layers, kv_heads, block_tokens, head_dim] (KVCache::read_span() layout) at
  /// element b. `hashes` = block_hashes(tokens). Marks them recently used.
  std::vector<at::Tensor> lookup(const std::vector<std::int64_t>& tokens,
                                 const std::vector<std::uint64_t>& hashes,
                                 std::int64_t max_blocks);

  /// How many leading blocks of `tokens` (at most `max_blocks`) are cached, without marking
  /// them used.
  std::int64_t cached_blocks(const std::vector<std::int64_t>& tokens,
                             const std::vector<std::uint64_t>& hashes,
                             std::int64_t max_blocks) const;

  /// Stores blocks [first_block, first_block + m) of `tokens` from `span` [2 * layers, kv_heads,
  /// m * block_tokens, head_dim], the keys and values of positions [first_block * B, (first_block
  /// + m) * B). Blocks before `first_block` must be cached (else nothing is stored: the new ones
  /// would be unreachable); blocks already cached are refreshed, not replaced. Then evicts down
  /// to the budget.
  void insert(const std::vector<std::int64_t>& tokens,
              const std::vector<std::uint64_t>& hashes,
              std::int64_t first_block,
              const at::Tensor& span);

 private:
  struct Entry {
    std::uint64_t parent = 0;          // Hash of the block before (0 for the first).
    std::vector<std::int64_t> tokens;  // This block's tokens.
    at::Tensor kv;                     // [2 * layers, kv_heads, block_tokens, head_dim].
    std::int64_t bytes = 0;
    std::list<std::uint64_t>::iterator lru;  // Position in lru_ (front = most recent).
  };

  const Entry* find(const std::vector<std::int64_t>& tokens,
                    const std::vector<std::uint64_t>& hashes,
                    std::int64_t block) const;
  void touch(const Entry& entry);
  void evict_to_budget();

  std::int64_t budget_bytes_;
  std::int64_t block_tokens_;
  std::int64_t bytes_ = 0;
  std::uint64_t weights_key_ = 0;
  bool bound_ = false;
  std::unordered_map<std::uint64_t, Entry> entries_;
  std::list<std::uint64_t> lru_;
  PrefixCacheStats stats_;
};

}  // namespace mr::torch_backend
