/// @file kv_cache.hpp
/// Preallocated per-layer key/value cache for incremental decoding of a batch of sequences.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace mr::torch_backend {

/// Keys and values of every layer for a batch of B sequences that advance together:
/// per layer K and V tensors [B, kv_heads, capacity, head_dim], of which positions
/// [0, length()) are filled. All rows share the length; a shorter sequence is left-padded and
/// its padding masked by the forward pass's attention mask (which the caller keeps, [B, length]).
///
/// Usage: make one with CausalLMImpl::make_cache(batch, capacity), pass it to every forward()
/// of a generation; each forward writes its T new positions and advances length() by T.
/// Not thread-safe. Create and use it under the same grad mode (e.g. c10::InferenceMode).
class KVCache {
 public:
  /// An empty cache (length 0) with `capacity` positions per row, allocated with `options`
  /// (dtype and device of the model's parameters).
  KVCache(std::int64_t num_layers,
          std::int64_t batch_size,
          std::int64_t num_kv_heads,
          std::int64_t capacity,
          std::int64_t head_dim,
          const at::TensorOptions& options);

  /// Number of layers.
  std::int64_t num_layers() const { return static_cast<std::int64_t>(keys_.size()); }
  /// Rows (sequences) in the cache.
  std::int64_t batch_size() const { return batch_size_; }
  /// Positions filled (the "past" length of the next forward).
  std::int64_t length() const { return length_; }
  /// Positions allocated per row.
  std::int64_t capacity() const { return capacity_; }

  /// Layer `layer`'s whole key buffer [B, kv_heads, capacity, head_dim].
  const at::Tensor& keys(std::int64_t layer) const { return keys_.at(layer); }
  /// Layer `layer`'s whole value buffer [B, kv_heads, capacity, head_dim].
  const at::Tensor& values(std::int64_t layer) const { return values_.at(layer); }

  /// Makes room for `capacity` positions (reallocating and copying the filled part when it
  /// grows; never shrinks).
  void reserve(std::int64_t capacity);

  /// Used by the model: copies `k`, `v` [B, kv_heads, T, head_dim] into positions
  /// [start, start + T) of `layer` (growing the buffers if needed) and returns views of the
  /// filled keys and values [B, kv_heads, start + T, head_dim].
  std::pair<at::Tensor, at::Tensor> write(std::int64_t layer,
                                          std::int64_t start,
                                          const at::Tensor& k,
                                          const at::Tensor& v);

  /// Used by the model after all layers were written: sets the filled length.
  void set_length(std::int64_t length);

  /// Keeps rows `rows` (int64 [B'], any order, repeats allowed): row i of the result is old
  /// row rows[i]. Drops finished sequences from a batch, or repeats a prefilled prompt row for
  /// n samples (rows = {0, 0, ..., 0}). Copies only the filled positions.
  void select_rows(const at::Tensor& rows);
  /// select_rows() from a vector of row indices (each in [0, batch_size())).
  void select_rows(const std::vector<std::int64_t>& rows);

  /// Repeats every row `n` times consecutively (row i becomes rows i*n .. i*n+n-1): prefix
  /// sharing, one prefill for n samples of the same prompt.
  void repeat_rows(std::int64_t n);

  /// Forgets all positions (length 0); keeps the buffers.
  void reset() { length_ = 0; }

  /// Inserts `columns` unfilled positions before position 0 of every row (length grows by
  /// `columns`; the caller masks them): room for a longer prompt to join a running batch.
  void shift_right(std::int64_t columns);
  /// Drops positions [0, `columns`) of every row (length shrinks by `columns`): positions that
  /// every row masks, left behind by rows that finished.
  void drop_leading(std::int64_t columns);

  /// Keys and values of positions [column, column + count) of `row`, every layer, as one new
  /// tensor [2 * layers, kv_heads, count, head_dim] (layer l's keys at 2l, values at 2l + 1).
  at::Tensor read_span(std::int64_t row, std::int64_t column, std::int64_t count) const;
  /// Writes a read_span()-shaped `span` [2 * layers, kv_heads, count, head_dim] into positions
  /// [column, column + count) of `row` (within capacity; the length is not changed).
  void write_span(std::int64_t row, std::int64_t column, const at::Tensor& span);
  /// Copies positions [from_column, from_column + count) of row `from_row` of `from` (same
  /// layers, heads and head_dim) into positions [column, column + count) of `row`.
  void copy_span(std::int64_t row,
                 std::int64_t column,
                 const KVCache& from,
                 std::int64_t from_row,
                 std::int64_t from_column,
                 std::int64_t count);

 private:
  std::vector<at::Tensor> keys_;
  std::vector<at::Tensor> values_;
  std::int64_t batch_size_ = 0;
  std::int64_t capacity_ = 0;
  std::int64_t length_ = 0;
};

}  // namespace mr::torch_backend
