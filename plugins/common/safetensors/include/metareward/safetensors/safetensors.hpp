/// @file safetensors.hpp
/// Reader and writer of Hugging Face `.safetensors` files (and sharded checkpoints described by
/// `model.safetensors.index.json`). Text-level: no libtorch; the torch backend turns the byte
/// spans into tensors.
///
/// Format: an 8-byte little-endian header length N, N bytes of JSON
/// `{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
///   "__metadata__": {"key": "value"}}`, then the data buffer; offsets are relative to the start
/// of the buffer. Readers validate everything before handing out a byte, so a corrupt or hostile
/// file produces a DataError naming the file (and tensor), never an out-of-bounds read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mr::safetensors {

/// Element types this library reads and writes. Other safetensors dtypes (I64, F64, F8_*, ...)
/// are rejected with a DataError: no model this project loads stores them.
enum class DType { kF32, kF16, kBF16 };

/// Bytes per element of `dtype`.
std::size_t dtype_size(DType dtype);

/// The safetensors spelling of `dtype` ("F32", "F16", "BF16").
std::string_view dtype_name(DType dtype);

/// One tensor's header entry. `begin`/`end` are byte offsets relative to the data buffer.
struct TensorInfo {
  std::string name;                 ///< Tensor name, e.g. "model.norm.weight".
  DType dtype = DType::kF32;        ///< Element type.
  std::vector<std::int64_t> shape;  ///< Dimensions (empty = scalar).
  std::uint64_t begin = 0;          ///< First byte, relative to the data buffer.
  std::uint64_t end = 0;            ///< One past the last byte.

  /// Number of elements (product of `shape`; 1 for a scalar).
  std::int64_t numel() const;
  /// Size of the tensor's data in bytes (`end - begin`).
  std::uint64_t nbytes() const { return end - begin; }
};

/// Formats a shape as "[2, 3]" for error messages.
std::string format_shape(std::span<const std::int64_t> shape);

/// A memory-mapped, validated `.safetensors` file. Immutable after construction; the byte spans
/// it returns stay valid as long as the Reader lives. Thread-safe for concurrent reads.
class Reader {
 public:
  /// Maps and validates `file`. Throws mr::sdk::DataError naming the file (and tensor) when it
  /// cannot be opened, is truncated, has a malformed header, an unsupported dtype, a negative
  /// dimension, a size that does not match its shape, offsets beyond the buffer, overlapping
  /// tensors or duplicate names.
  explicit Reader(const std::filesystem::path& file);
  ~Reader();
  Reader(Reader&&) noexcept;
  Reader& operator=(Reader&&) noexcept;
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  /// The file this reader maps.
  const std::filesystem::path& path() const;

  /// Every tensor, sorted by name.
  const std::vector<TensorInfo>& tensors() const;

  /// The tensor called `name`, or nullptr.
  const TensorInfo* find(std::string_view name) const;

  /// The tensor called `name`; throws DataError naming the file when absent.
  const TensorInfo& at(std::string_view name) const;

  /// The bytes of `info` (which must come from this reader). Not necessarily aligned to the
  /// element size: copy before reinterpreting.
  std::span<const std::byte> data(const TensorInfo& info) const;

  /// Tells the kernel the bytes of `info` are no longer needed (madvise MADV_DONTNEED on the
  /// whole pages inside them): a loader that has copied a tensor calls it so the mapped file
  /// does not stay resident next to the parameters (peak RSS ~1x the weights instead of ~2x).
  /// data() stays valid: touching the bytes again reads them back from the file.
  void release(const TensorInfo& info) const;

  /// The `__metadata__` string map (empty when absent).
  const std::map<std::string, std::string>& metadata() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// A checkpoint's tensors, in one `model.safetensors` or sharded across the files listed by
/// `model.safetensors.index.json` (whose `weight_map` maps tensor name -> shard file name).
class CheckpointReader {
 public:
  /// Opens the checkpoint in directory `dir`: the index when present, else `model.safetensors`.
  /// Throws DataError when neither exists, the index is malformed, names a file outside `dir`,
  /// or disagrees with the shards (a mapped tensor missing from its shard, or a tensor stored in
  /// two shards).
  explicit CheckpointReader(const std::filesystem::path& dir);

  /// The shard that holds tensor `name` and its entry, or {nullptr, nullptr} when absent.
  std::pair<const Reader*, const TensorInfo*> find(std::string_view name) const;

  /// Every tensor name, sorted.
  std::vector<std::string> names() const;

  /// The shards (one Reader per file, in file-name order).
  const std::vector<Reader>& shards() const { return shards_; }

 private:
  std::vector<Reader> shards_;
  std::map<std::string, std::pair<std::size_t, const TensorInfo*>, std::less<>> index_;
};

/// A tensor to write: name, type, shape and (for write_file) its bytes.
struct TensorSpec {
  std::string name;                 ///< Unique, non-empty, not "__metadata__".
  DType dtype = DType::kF32;        ///< Element type.
  std::vector<std::int64_t> shape;  ///< Non-negative dimensions.
};

/// A tensor to write with its data (`data.size()` must equal numel * dtype size).
struct TensorData {
  TensorSpec spec;                  ///< Name, dtype and shape.
  std::span<const std::byte> data;  ///< The raw little-endian element bytes.
};

/// Fills `out` (exactly numel * dtype size bytes) with the data of `spec`.
using FillFn = std::function<void(const TensorSpec& spec, std::span<std::byte> out)>;

/// Writes `file` atomically (to `<file>.tmp.<pid>` in the same directory, fsync, rename, fsync
/// of the directory), tensors sorted by name and laid out contiguously, the JSON header padded
/// with spaces to a multiple of 8 bytes as HF does. `fill` is called once per tensor, in name
/// order, so peak memory is one tensor. Throws DataError on invalid specs and on I/O failure
/// (naming the file and the system's reason; the temporary file is removed).
void write_file(const std::filesystem::path& file,
                std::vector<TensorSpec> specs,
                const FillFn& fill,
                const std::map<std::string, std::string>& metadata = {});

/// write_file() for tensors already in memory.
void write_file(const std::filesystem::path& file,
                const std::vector<TensorData>& tensors,
                const std::map<std::string, std::string>& metadata = {});

}  // namespace mr::safetensors
