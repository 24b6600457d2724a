/// @file kv_cache.cpp
/// KVCache: preallocated per-layer K/V buffers written in place.
#include "metareward/torch_model/kv_cache.hpp"

#include <torch/torch.h>

#include <algorithm>

#include "metareward/sdk/error.hpp"

namespace mr::torch_backend {

using mr::sdk::BackendError;

KVCache::KVCache(std::int64_t num_layers,
                 std::int64_t batch_size,
                 std::int64_t num_kv_heads,
                 std::int64_t capacity,
                 std::int64_t head_dim,
                 const at::TensorOptions& options)
    : batch_size_(batch_size), capacity_(capacity) {
  MR_CHECK_AS(BackendError,
              num_layers > 0 && batch_size > 0 && num_kv_heads > 0 && capacity > 0 && head_dim > 0,
              "KVCache: every size must be positive (layers ", num_layers, ", batch ", batch_size,
              ", kv heads ", num_kv_heads, ", capacity ", capacity, ", head_dim ", head_dim, ")");
  keys_.reserve(static_cast<std::size_t>(num_layers));
  values_.reserve(static_cast<std::size_t>(num_layers));
  for (std::int64_t l = 0; l < num_layers; ++l) {
    // Zeros, not garbage: a masked position's key still enters the score product (its score is
    // then masked by addition), and a NaN there would survive the mask. Batches assembled from
    // cached prefixes leave such never-written positions.
    keys_.push_back(torch::zeros({batch_size, num_kv_heads, capacity, head_dim}, options));
    values_.push_back(torch::zeros({batch_size, num_kv_heads, capacity, head_dim}, options));
  }
}

void KVCache::reserve(std::int64_t capacity) {
  if (capacity <= capacity_) return;
  for (auto* buffers : {&keys_, &values_}) {
    for (auto& t : *buffers) {
      auto grown = torch::empty({t.size(0), t.size(1), capacity, t.size(3)}, t.options());
      if (length_ > 0) grown.narrow(2, 0, length_).copy_(t.narrow(2, 0, length_));
      t = std::move(grown);
    }
  }
  capacity_ = capacity;
}

std::pair<at::Tensor, at::Tensor> KVCache::write(std::int64_t layer,
                                                 std::int64_t start,
                                                 const at::Tensor& k,
                                                 const at::Tensor& v) {
  MR_CHECK_AS(BackendError, layer >= 0 && layer < num_layers(), "KVCache: layer ", layer,
              " out of range [0, ", num_layers(), ")");
  MR_CHECK_AS(BackendError, start >= 0 && start <= length_, "KVCache: write at ", start,
              " but only ", length_, " positions are filled");
  const auto& keys = keys_[static_cast<std::size_t>(layer)];
  MR_CHECK_AS(BackendError,
              k.dim() == 4 && k.size(0) == batch_size_ && k.size(1) == keys.size(1) &&
                  k.size(3) == keys.size(3) && v.sizes() == k.sizes(),
              "KVCache: new keys/values ", k.sizes(), " / ", v.sizes(), " do not fit a cache of ",
              batch_size_, " rows, ", keys.size(1), " kv heads, head_dim ", keys.size(3));
  const std::int64_t t = k.size(2);
  if (start + t > capacity_) {
    // Generation normally allocates enough up front; grow geometrically as a fallback.
    reserve(std::max(start + t, capacity_ + capacity_ / 2));
  }
  auto& kb = keys_[static_cast<std::size_t>(layer)];
  auto& vb = values_[static_cast<std::size_t>(layer)];
  kb.narrow(2, start, t).copy_(k);
  vb.narrow(2, start, t).copy_(v);
  return {kb.narrow(2, 0, start + t), vb.narrow(2, 0, start + t)};
}

void KVCache::set_length(std::int64_t length) {
  MR_CHECK_AS(BackendError, length >= 0 && length <= capacity_, "KVCache: length ", length,
              " outside [0, ", capacity_, "]");
  length_ = length;
}

void KVCache::select_rows(const at::Tensor& rows) {
  MR_CHECK_AS(BackendError, rows.dim() == 1 && rows.numel() > 0,
              "KVCache::select_rows: expected a non-empty 1-D index tensor, got shape ",
              rows.sizes());
  auto index = rows.to(torch::kLong).to(keys_.front().device());
  const auto lo = index.min().item<std::int64_t>();
  const auto hi = index.max().item<std::int64_t>();
  MR_CHECK_AS(BackendError, lo >= 0 && hi < batch_size_, "KVCache::select_rows: row index ",
              lo < 0 ? lo : hi, " out of range [0, ", batch_size_, ")");
  const std::int64_t new_batch = index.size(0);
  for (auto* buffers : {&keys_, &values_}) {
    for (auto& t : *buffers) {
      auto fresh = torch::empty({new_batch, t.size(1), capacity_, t.size(3)}, t.options());
      if (length_ > 0) {
        fresh.narrow(2, 0, length_).copy_(t.narrow(2, 0, length_).index_select(0, index));
      }
      t = std::move(fresh);
    }
  }
  batch_size_ = new_batch;
}

void KVCache::select_rows(const std::vector<std::int64_t>& rows) {
  select_rows(torch::tensor(rows, torch::kLong));
}

void KVCache::repeat_rows(std::int64_t n) {
  MR_CHECK_AS(BackendError, n > 0, "KVCache::repeat_rows: n must be positive, got ", n);
  if (n == 1) return;
  select_rows(torch::arange(batch_size_, torch::kLong).repeat_interleave(n));
}

void KVCache::shift_right(std::int64_t columns) {
  MR_CHECK_AS(BackendError, columns >= 0, "KVCache::shift_right: negative shift ", columns);
  if (columns == 0) return;
  const std::int64_t capacity = std::max(capacity_, length_ + columns);
  for (auto* buffers : {&keys_, &values_}) {
    for (auto& t : *buffers) {
      auto moved = torch::empty({t.size(0), t.size(1), capacity, t.size(3)}, t.options());
      moved.narrow(2, 0, columns).zero_();  // Masked, but must be finite (see the constructor).
      if (length_ > 0) moved.narrow(2, columns, length_).copy_(t.narrow(2, 0, length_));
      t = std::move(moved);
    }
  }
  capacity_ = capacity;
  length_ += columns;
}

void KVCache::drop_leading(std::int64_t columns) {
  MR_CHECK_AS(BackendError, columns >= 0 && columns <= length_, "KVCache::drop_leading: ", columns,
              " positions of ", length_);
  if (columns == 0) return;
  const std::int64_t kept = length_ - columns;
  for (auto* buffers : {&keys_, &values_}) {
    for (auto& t : *buffers) {
      auto moved = torch::empty_like(t);
      if (kept > 0) moved.narrow(2, 0, kept).copy_(t.narrow(2, columns, kept));
      t = std::move(moved);
    }
  }
  length_ = kept;
}

at::Tensor KVCache::read_span(std::int64_t row, std::int64_t column, std::int64_t count) const {
  MR_CHECK_AS(
      BackendError,
      row >= 0 && row < batch_size_ && column >= 0 && count > 0 && column + count <= capacity_,
      "KVCache::read_span: row ", row, " positions [", column, ", ", column + count, ") outside ",
      batch_size_, " rows x ", capacity_, " positions");
  std::vector<at::Tensor> parts;
  parts.reserve(keys_.size() * 2);
  for (std::size_t l = 0; l < keys_.size(); ++l) {
    parts.push_back(keys_[l].select(0, row).narrow(1, column, count));
    parts.push_back(values_[l].select(0, row).narrow(1, column, count));
  }
  return torch::stack(parts);
}

void KVCache::write_span(std::int64_t row, std::int64_t column, const at::Tensor& span) {
  const auto layers = static_cast<std::int64_t>(keys_.size());
  MR_CHECK_AS(BackendError,
              span.dim() == 4 && span.size(0) == 2 * layers &&
                  span.size(1) == keys_.front().size(1) && span.size(3) == keys_.front().size(3),
              "KVCache::write_span: span ", span.sizes(), " does not fit ", layers, " layers, ",
              keys_.front().size(1), " kv heads, head_dim ", keys_.front().size(3));
  const std::int64_t count = span.size(2);
  MR_CHECK_AS(BackendError,
              row >= 0 && row < batch_size_ && column >= 0 && column + count <= capacity_,
              "KVCache::write_span: row ", row, " positions [", column, ", ", column + count,
              ") outside ", batch_size_, " rows x ", capacity_, " positions");
  for (std::int64_t l = 0; l < layers; ++l) {
    keys_[static_cast<std::size_t>(l)].select(0, row).narrow(1, column, count).copy_(span[2 * l]);
    values_[static_cast<std::size_t>(l)]
        .select(0, row)
        .narrow(1, column, count)
        .copy_(span[2 * l + 1]);
  }
}

void KVCache::copy_span(std::int64_t row,
                        std::int64_t column,
                        const KVCache& from,
                        std::int64_t from_row,
                        std::int64_t from_column,
                        std::int64_t count) {
  MR_CHECK_AS(BackendError, from.num_layers() == num_layers(),
              "KVCache::copy_span: ", from.num_layers(), " layers into ", num_layers());
  MR_CHECK_AS(BackendError,
              row >= 0 && row < batch_size_ && column >= 0 && column + count <= capacity_ &&
                  from_row >= 0 && from_row < from.batch_size_ && from_column >= 0 &&
                  from_column + count <= from.capacity_ && count >= 0,
              "KVCache::copy_span: positions out of range");
  if (count == 0) return;
  for (std::size_t l = 0; l < keys_.size(); ++l) {
    keys_[l]
        .select(0, row)
        .narrow(1, column, count)
        .copy_(from.keys_[l].select(0, from_row).narrow(1, from_column, count));
    values_[l]
        .select(0, row)
        .narrow(1, column, count)
        .copy_(from.values_[l].select(0, from_row).narrow(1, from_column, count));
  }
}

}  // namespace mr::torch_backend
