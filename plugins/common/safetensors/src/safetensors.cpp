/// @file safetensors.cpp
/// Validating mmap reader and atomic writer of `.safetensors` files.
///
/// One file (~640 lines) on purpose: the reader's header and index validation and the writer
/// share the dtype table and the offset rules that keep the two in step.
#include "metareward/safetensors/safetensors.hpp"

#include "metareward/sdk/file_io.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>
#include <utility>

#include "metareward/sdk/error.hpp"

namespace mr::safetensors {
namespace {

using mr::sdk::BackendError;
using mr::sdk::DataError;
using mr::sdk::detail::concat;

// HF refuses headers above 100 MB; so do we (a corrupt length must not make us parse gigabytes).
constexpr std::uint64_t kMaxHeaderSize = 100'000'000;
constexpr std::string_view kMetadataKey = "__metadata__";

std::string errno_text(int err) {
  return std::system_category().message(err);
}

std::string file_prefix(const std::filesystem::path& file) {
  return concat("safetensors file '", file.string(), "'");
}

bool parse_dtype(std::string_view text, DType& out) {
  if (text == "F32") {
    out = DType::kF32;
  } else if (text == "F16") {
    out = DType::kF16;
  } else if (text == "BF16") {
    out = DType::kBF16;
  } else {
    return false;
  }
  return true;
}

// numel * element size with overflow detection; false when it does not fit in int64. Every
// partial product must fit too: TensorInfo::numel() multiplies in int64, left to right, so a
// shape like [2^62, 2, 0] (0 bytes) would overflow there.
bool checked_nbytes(std::span<const std::int64_t> shape, std::size_t elem, std::uint64_t& out) {
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  std::uint64_t n = 1;
  for (std::int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, static_cast<std::uint64_t>(d), &n) || n > kMax)
      return false;
  }
  if (__builtin_mul_overflow(n, static_cast<std::uint64_t>(elem), &n)) return false;
  if (n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return false;
  out = n;
  return true;
}

// Read-only private mapping of a whole file.
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& file) {
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      throw DataError(concat(file_prefix(file), ": cannot open: ", errno_text(err)));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      throw DataError(concat(file_prefix(file), ": cannot stat: ", errno_text(err)));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      throw DataError(concat(file_prefix(file), ": not a regular file"));
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        int err = errno;
        ::close(fd);
        throw DataError(
            concat(file_prefix(file), ": cannot mmap ", size_, " bytes: ", errno_text(err)));
      }
      data_ = static_cast<const std::byte*>(p);
    }
    ::close(fd);  // The mapping keeps the file alive.
  }
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// nlohmann-json keeps the last of duplicate keys silently; this callback records the first
// duplicate at any depth so the reader can reject it.
struct DuplicateKeyDetector {
  std::vector<std::set<std::string>> stack;
  std::string duplicate;
  std::size_t duplicate_depth = 0;

  bool operator()(int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if (event == Event::object_start) {
      stack.emplace_back();
    } else if (event == Event::object_end) {
      if (!stack.empty()) stack.pop_back();
    } else if (event == Event::key && !stack.empty() && parsed.is_string()) {
      if (!stack.back().insert(parsed.get<std::string>()).second && duplicate.empty()) {
        duplicate = parsed.get<std::string>();
        duplicate_depth = stack.size();
      }
    }
    return true;
  }
};

void validate_spec(const TensorSpec& spec,
                   const std::filesystem::path& file,
                   std::uint64_t& nbytes) {
  MR_CHECK_AS(DataError, !spec.name.empty(), "cannot write '", file.string(),
              "': a tensor has an empty name");
  MR_CHECK_AS(DataError, spec.name != kMetadataKey, "cannot write '", file.string(),
              "': '__metadata__' is reserved and cannot name a tensor");
  MR_CHECK_AS(DataError, checked_nbytes(spec.shape, dtype_size(spec.dtype), nbytes),
              "cannot write '", file.string(), "': tensor '", spec.name, "' has invalid shape ",
              format_shape(spec.shape), " (negative dimension or size overflow)");
}

}  // namespace

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
      return 2;
  }
  return 0;
}

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
  }
  return "?";
}

std::int64_t TensorInfo::numel() const {
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;
  return n;
}

std::string format_shape(std::span<const std::int64_t> shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

// ---------------------------------------------------------------------------------------------
// Reader

struct Reader::Impl {
  std::filesystem::path path;
  MappedFile map;
  const std::byte* buffer = nullptr;  // Start of the data buffer (after the header).
  std::uint64_t buffer_size = 0;
  std::vector<TensorInfo> tensors;  // Sorted by name.
  std::map<std::string, std::string> metadata;

  explicit Impl(const std::filesystem::path& file) : path(file), map(file) { parse(); }

  [[noreturn]] void fail(const std::string& what) const {
    throw DataError(concat(file_prefix(path), ": ", what));
  }

  void parse() {
    const std::uint64_t file_size = map.size();
    if (file_size < 8) {
      fail(concat("file is ", file_size, " bytes, too small for the 8-byte header length"));
    }
    std::uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) {
      header_len = (header_len << 8) | static_cast<std::uint8_t>(map.data()[i]);
    }
    if (header_len > file_size - 8) {
      fail(concat("header length ", header_len, " exceeds the file size (", file_size,
                  " bytes); the file is truncated or not safetensors"));
    }
    if (header_len > kMaxHeaderSize) {
      fail(
          concat("header length ", header_len, " exceeds the limit of ", kMaxHeaderSize, " bytes"));
    }
    const char* text = reinterpret_cast<const char*>(map.data() + 8);
    buffer = map.data() + 8 + header_len;
    buffer_size = file_size - 8 - header_len;

    DuplicateKeyDetector detector;
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(
          text, text + header_len,
          [&detector](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
            return detector(depth, event, parsed);
          });
    } catch (const nlohmann::json::exception& e) {
      fail(concat("malformed JSON header: ", e.what()));
    }
    if (!detector.duplicate.empty()) {
      if (detector.duplicate_depth == 1) {
        fail(concat("duplicate tensor name '", detector.duplicate, "' in the header"));
      }
      fail(concat("duplicate key '", detector.duplicate, "' in the header"));
    }
    if (!header.is_object()) fail("header is not a JSON object");

    for (auto& [name, entry] : header.items()) {
      if (name == kMetadataKey) {
        parse_metadata(entry);
      } else {
        tensors.push_back(parse_tensor(name, entry));
      }
    }
    std::sort(tensors.begin(), tensors.end(),
              [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
    check_overlaps();
  }

  void parse_metadata(const nlohmann::json& entry) {
    if (!entry.is_object()) fail("'__metadata__' is not a JSON object");
    for (auto& [key, value] : entry.items()) {
      if (!value.is_string()) fail(concat("'__metadata__' value of '", key, "' is not a string"));
      metadata.emplace(key, value.get<std::string>());
    }
  }

  TensorInfo parse_tensor(const std::string& name, const nlohmann::json& entry) const {
    auto bad = [&](const std::string& what) { fail(concat("tensor '", name, "': ", what)); };
    if (!entry.is_object()) bad("entry is not a JSON object");
    TensorInfo info;
    info.name = name;

    auto dtype_it = entry.find("dtype");
    if (dtype_it == entry.end() || !dtype_it->is_string()) bad("missing string 'dtype'");
    const auto& dtype_text = dtype_it->get_ref<const std::string&>();
    if (!parse_dtype(dtype_text, info.dtype)) {
      bad(concat("unsupported dtype '", dtype_text, "' (supported: F32, F16, BF16)"));
    }

    auto shape_it = entry.find("shape");
    if (shape_it == entry.end() || !shape_it->is_array()) bad("missing array 'shape'");
    for (const auto& d : *shape_it) {
      if (!d.is_number_integer()) bad("'shape' holds a non-integer");
      if (d.is_number_unsigned()) {
        if (d.get<std::uint64_t>() >
            static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
          bad("'shape' dimension too large");
        }
      } else if (d.get<std::int64_t>() < 0) {
        bad(concat("negative dimension ", d.get<std::int64_t>(), " in shape"));
      }
      info.shape.push_back(d.get<std::int64_t>());
    }

    auto off_it = entry.find("data_offsets");
    if (off_it == entry.end() || !off_it->is_array() || off_it->size() != 2) {
      bad("missing 'data_offsets' [begin, end]");
    }
    for (const auto& o : *off_it) {
      if (!o.is_number_unsigned()) bad("'data_offsets' must be non-negative integers");
    }
    info.begin = (*off_it)[0].get<std::uint64_t>();
    info.end = (*off_it)[1].get<std::uint64_t>();
    if (info.begin > info.end) {
      bad(concat("data_offsets [", info.begin, ", ", info.end, "] are reversed"));
    }
    if (info.end > buffer_size) {
      bad(concat("data_offsets [", info.begin, ", ", info.end, "] exceed the data buffer (",
                 buffer_size, " bytes)"));
    }
    std::uint64_t expected = 0;
    if (!checked_nbytes(info.shape, dtype_size(info.dtype), expected)) {
      bad(concat("shape ", format_shape(info.shape), " overflows"));
    }
    if (expected != info.nbytes()) {
      bad(concat("holds ", info.nbytes(), " bytes but shape ", format_shape(info.shape), " of ",
                 dtype_text, " needs ", expected));
    }
    return info;
  }

  void check_overlaps() const {
    std::vector<const TensorInfo*> by_offset;
    by_offset.reserve(tensors.size());
    for (const auto& t : tensors) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
      return std::pair(a->begin, a->end) < std::pair(b->begin, b->end);
    });
    for (std::size_t i = 1; i < by_offset.size(); ++i) {
      const TensorInfo& prev = *by_offset[i - 1];
      const TensorInfo& cur = *by_offset[i];
      if (cur.begin < prev.end) {
        fail(concat("tensors '", prev.name, "' [", prev.begin, ", ", prev.end, ") and '", cur.name,
                    "' [", cur.begin, ", ", cur.end, ") overlap"));
      }
    }
  }
};

Reader::Reader(const std::filesystem::path& file) : impl_(std::make_unique<Impl>(file)) {}
Reader::~Reader() = default;
Reader::Reader(Reader&&) noexcept = default;
Reader& Reader::operator=(Reader&&) noexcept = default;

const std::filesystem::path& Reader::path() const {
  return impl_->path;
}

const std::vector<TensorInfo>& Reader::tensors() const {
  return impl_->tensors;
}

const TensorInfo* Reader::find(std::string_view name) const {
  const auto& ts = impl_->tensors;
  auto it = std::lower_bound(ts.begin(), ts.end(), name,
                             [](const TensorInfo& t, std::string_view n) { return t.name < n; });
  return it != ts.end() && it->name == name ? &*it : nullptr;
}

const TensorInfo& Reader::at(std::string_view name) const {
  const TensorInfo* info = find(name);
  MR_CHECK_AS(DataError, info != nullptr, file_prefix(impl_->path), ": no tensor named '", name,
              "'");
  return *info;
}

std::span<const std::byte> Reader::data(const TensorInfo& info) const {
  // Offsets were validated against the buffer at construction.
  return {impl_->buffer + info.begin, static_cast<std::size_t>(info.nbytes())};
}

void Reader::release(const TensorInfo& info) const {
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(impl_->buffer + info.begin);
  const auto end = begin + static_cast<std::uintptr_t>(info.nbytes());
  const std::uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
  // Only whole pages inside the tensor: a page shared with a neighbour may still be needed.
  // Advice only: a failure costs memory, not correctness.
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

const std::map<std::string, std::string>& Reader::metadata() const {
  return impl_->metadata;
}

// ---------------------------------------------------------------------------------------------
// CheckpointReader

CheckpointReader::CheckpointReader(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  const fs::path index_path = dir / "model.safetensors.index.json";
  const fs::path single_path = dir / "model.safetensors";
  std::error_code ec;
  std::map<std::string, std::string> weight_map;
  std::vector<std::string> files;
  if (fs::exists(index_path, ec)) {
    auto fail = [&](const std::string& what) -> void {
      throw DataError(concat("checkpoint index '", index_path.string(), "': ", what));
    };
    nlohmann::json index;
    try {
      std::ifstream in(index_path);
      if (!in) fail("cannot open");
      index = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      fail(concat("malformed JSON: ", e.what()));
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
      fail("missing object 'weight_map'");
    }
    std::set<std::string> unique_files;
    for (auto& [name, file] : index["weight_map"].items()) {
      if (!file.is_string()) fail(concat("weight_map entry '", name, "' is not a string"));
      const auto& f = file.get_ref<const std::string&>();
      if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..") {
        fail(concat("weight_map entry '", name, "' names '", f,
                    "', which is not a file name in the checkpoint directory"));
      }
      weight_map.emplace(name, f);
      unique_files.insert(f);
    }
    if (unique_files.empty()) fail("'weight_map' is empty");
    files.assign(unique_files.begin(), unique_files.end());
  } else if (fs::exists(single_path, ec)) {
    files.push_back("model.safetensors");
  } else {
    throw DataError(concat("checkpoint directory '", dir.string(),
                           "' has neither model.safetensors nor model.safetensors.index.json"));
  }

  shards_.reserve(files.size());
  for (const auto& f : files) shards_.emplace_back(dir / f);
  for (std::size_t s = 0; s < shards_.size(); ++s) {
    for (const auto& t : shards_[s].tensors()) {
      auto [it, inserted] = index_.emplace(t.name, std::pair(s, &t));
      if (!inserted) {
        throw DataError(concat("checkpoint '", dir.string(), "': tensor '", t.name,
                               "' is stored in both '", shards_[it->second.first].path().string(),
                               "' and '", shards_[s].path().string(), "'"));
      }
    }
  }
  for (const auto& [name, f] : weight_map) {
    auto it = index_.find(name);
    if (it == index_.end() || shards_[it->second.first].path().filename() != f) {
      throw DataError(concat("checkpoint index '", index_path.string(), "': tensor '", name,
                             "' is mapped to '", f, "' but that file does not contain it"));
    }
  }
}

std::pair<const Reader*, const TensorInfo*> CheckpointReader::find(std::string_view name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return {nullptr, nullptr};
  return {&shards_[it->second.first], it->second.second};
}

std::vector<std::string> CheckpointReader::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [name, _] : index_) out.push_back(name);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writer

void write_file(const std::filesystem::path& file,
                std::vector<TensorSpec> specs,
                const FillFn& fill,
                const std::map<std::string, std::string>& metadata) {
  std::vector<std::uint64_t> sizes(specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) validate_spec(specs[i], file, sizes[i]);

  // Data order: larger elements first, then by name (HF's layout, which keeps every tensor
  // aligned to its element size when the buffer starts 8-aligned).
  std::vector<std::size_t> order(specs.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    std::size_t sa = dtype_size(specs[a].dtype), sb = dtype_size(specs[b].dtype);
    if (sa != sb) return sa > sb;
    return specs[a].name < specs[b].name;
  });
  std::set<std::string_view> seen;
  for (const auto& s : specs) {
    MR_CHECK_AS(DataError, seen.insert(s.name).second, "cannot write '", file.string(),
                "': duplicate tensor name '", s.name, "'");
  }

  // Header: __metadata__ first, then tensors by name (ordered_json keeps insertion order).
  std::vector<std::uint64_t> begins(specs.size());
  std::uint64_t offset = 0;
  for (std::size_t i : order) {
    begins[i] = offset;
    offset += sizes[i];
  }
  std::vector<std::size_t> by_name = order;
  std::sort(by_name.begin(), by_name.end(),
            [&](std::size_t a, std::size_t b) { return specs[a].name < specs[b].name; });
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header[std::string(kMetadataKey)] = std::move(meta);
  }
  for (std::size_t i : by_name) {
    header[specs[i].name] = {{"dtype", std::string(dtype_name(specs[i].dtype))},
                             {"shape", specs[i].shape},
                             {"data_offsets", {begins[i], begins[i] + sizes[i]}}};
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');

  std::filesystem::path dir = file.parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
  }
  sdk::AtomicFileWriter out(file);
  unsigned char len_bytes[8];
  std::uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>((n >> (8 * i)) & 0xff);
  out.write(len_bytes, 8);
  out.write(text.data(), text.size());
  std::vector<std::byte> buffer;
  for (std::size_t i : order) {
    buffer.assign(static_cast<std::size_t>(sizes[i]), std::byte{0});
    fill(specs[i], std::span<std::byte>(buffer));
    out.write(buffer.data(), buffer.size());
  }
  out.commit();
}

void write_file(const std::filesystem::path& file,
                const std::vector<TensorData>& tensors,
                const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  std::map<std::string, std::span<const std::byte>, std::less<>> data;
  for (const auto& t : tensors) {
    std::uint64_t nbytes = 0;
    validate_spec(t.spec, file, nbytes);
    MR_CHECK_AS(DataError, nbytes == t.data.size(), "cannot write '", file.string(), "': tensor '",
                t.spec.name, "' has ", t.data.size(), " bytes but shape ",
                format_shape(t.spec.shape), " of ", dtype_name(t.spec.dtype), " needs ", nbytes);
    specs.push_back(t.spec);
    data.emplace(t.spec.name, t.data);
  }
  write_file(
      file, std::move(specs),
      [&data](const TensorSpec& spec, std::span<std::byte> out) {
        auto src = data.at(spec.name);
        if (!src.empty()) std::memcpy(out.data(), src.data(), src.size());
      },
      metadata);
}

}  // namespace mr::safetensors
