// Tests of mr_safetensors: round trips, every malformed-file error, a seeded corruption loop,
// sharded checkpoints and atomic writes.
#include <unistd.h>

#include <sys/mman.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "metareward/safetensors/safetensors.hpp"
#include "metareward/sdk/error.hpp"
#include "skip.hpp"

namespace fs = std::filesystem;
namespace st = mr::safetensors;
using Catch::Matchers::Contains;

namespace {

// A fresh directory under the system temp dir, removed on scope exit.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("mr_safetensors_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::vector<std::byte> bytes_of(const std::vector<float>& v) {
  std::vector<std::byte> out(v.size() * sizeof(float));
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

std::string read_all(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_all(const fs::path& file, const std::string& content) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

// A raw safetensors file: 8-byte LE length, `header` verbatim, then `data_size` zero bytes.
std::string raw_file(const std::string& header, std::size_t data_size) {
  std::string out(8, '\0');
  std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i)
    out[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + std::string(data_size, '\0');
}

// The message of the DataError that constructing a Reader on `file` throws ("" if none).
std::string open_error(const fs::path& file) {
  try {
    st::Reader reader(file);
  } catch (const mr::sdk::DataError& e) {
    return e.what();
  }
  return "";
}

std::vector<float> floats(std::span<const std::byte> data) {
  std::vector<float> out(data.size() / sizeof(float));
  std::memcpy(out.data(), data.data(), data.size());
  return out;
}

}  // namespace

TEST_CASE("safetensors: written files read back identically", "[safetensors]") {
  TempDir dir;
  const fs::path file = dir.path() / "model.safetensors";
  const std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
  const std::vector<std::byte> half = {std::byte{0x00}, std::byte{0x3c}, std::byte{0x00},
                                       std::byte{0xc0}, std::byte{0x01}, std::byte{0x02}};
  const std::vector<float> scalar = {42.0f};
  const auto a_bytes = bytes_of(a);
  const auto s_bytes = bytes_of(scalar);
  st::write_file(file,
                 {{{"z.weight", st::DType::kF32, {2, 3}}, a_bytes},
                  {{"a.half", st::DType::kF16, {3}}, half},
                  {{"m.bf16", st::DType::kBF16, {1, 3}}, half},
                  {{"scalar", st::DType::kF32, {}}, s_bytes},
                  {{"empty", st::DType::kF32, {0, 4}}, {}}},
                 {{"format", "pt"}});

  SECTION("names are sorted and shapes, dtypes and bytes are preserved") {
    st::Reader reader(file);
    std::vector<std::string> names;
    for (const auto& t : reader.tensors()) names.push_back(t.name);
    CHECK(names == std::vector<std::string>{"a.half", "empty", "m.bf16", "scalar", "z.weight"});
    const auto& z = reader.at("z.weight");
    CHECK(z.dtype == st::DType::kF32);
    CHECK(z.shape == std::vector<std::int64_t>{2, 3});
    CHECK(floats(reader.data(z)) == a);
    const auto& h = reader.at("a.half");
    CHECK(h.dtype == st::DType::kF16);
    auto hd = reader.data(h);
    CHECK(std::vector<std::byte>(hd.begin(), hd.end()) == half);
    CHECK(reader.at("m.bf16").dtype == st::DType::kBF16);
    CHECK(reader.at("scalar").shape.empty());
    CHECK(reader.at("scalar").numel() == 1);
    CHECK(floats(reader.data(reader.at("scalar"))) == scalar);
    CHECK(reader.at("empty").nbytes() == 0);
    CHECK(reader.metadata() == std::map<std::string, std::string>{{"format", "pt"}});
    CHECK(reader.find("missing") == nullptr);
    CHECK_THROWS_WITH(reader.at("missing"), Contains("no tensor named 'missing'"));
  }
  SECTION("the header is padded with spaces to a multiple of 8 and 4-byte data comes first") {
    const std::string raw = read_all(file);
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i)
      n = (n << 8) | static_cast<unsigned char>(raw[static_cast<std::size_t>(i)]);
    CHECK(n % 8 == 0);
    const std::string header = raw.substr(8, n);
    CHECK(header.find_last_not_of(' ') == header.rfind('}'));
    CHECK(raw.size() == 8 + n + 6 * 4 + 4 + 6 + 6);
    st::Reader reader(file);
    CHECK(reader.at("scalar").begin == 0);    // F32 tensors first, by name...
    CHECK(reader.at("z.weight").begin == 4);  // ("empty" is F32 too, of size 0)
    CHECK(reader.at("a.half").begin == 28);   // ...then F16/BF16 by name.
  }
  SECTION("no temporary file is left behind and rewriting replaces the file") {
    st::write_file(file, {{{"only", st::DType::kF32, {1}}, s_bytes}});
    std::vector<std::string> entries;
    for (const auto& e : fs::directory_iterator(dir.path())) entries.push_back(e.path().filename());
    CHECK(entries == std::vector<std::string>{"model.safetensors"});
    st::Reader reader(file);
    CHECK(reader.tensors().size() == 1);
    CHECK(reader.metadata().empty());
  }
}

/// The process's resident file-backed memory in KiB (RssFile in /proc/self/status), or -1.
long rss_file_kib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("RssFile:", 0) == 0) return std::stol(line.substr(8));
  return -1;
}

TEST_CASE("safetensors: release() drops a tensor's pages and keeps its bytes readable",
          "[safetensors]") {
  TempDir dir;
  const fs::path file = dir.path() / "big.safetensors";
  std::vector<float> big(1 << 20);  // 4 MiB: many whole pages
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<float>(i % 1000) * 0.5f;
  st::write_file(file, {{{"big", st::DType::kF32, {1 << 20}}, bytes_of(big)}});
  st::Reader reader(file);
  const auto& info = reader.at("big");
  auto data = reader.data(info);
  CHECK(floats(data) == big);  // maps every page of the tensor
  const long before = rss_file_kib();
  if (before < 0) {
    MR_MARK_SKIPPED("no RssFile in /proc/self/status: the residency check cannot run");
  } else {
    reader.release(info);
    const long after = rss_file_kib();
    INFO("RssFile before " << before << " KiB, after " << after << " KiB");
    CHECK(before - after >= 3 * 1024);  // ~4 MiB of mapped pages gone
  }
  CHECK(floats(reader.data(info)) == big);  // read back from the file
}

TEST_CASE("safetensors: invalid tensors are refused by the writer", "[safetensors]") {
  TempDir dir;
  const fs::path file = dir.path() / "w.safetensors";
  const auto four = bytes_of({1.0f});
  SECTION("data size must match the shape") {
    CHECK_THROWS_AS(st::write_file(file, {{{"x", st::DType::kF32, {2}}, four}}),
                    mr::sdk::DataError);
    CHECK_THROWS_WITH(st::write_file(file, {{{"x", st::DType::kF32, {2}}, four}}),
                      Contains("tensor 'x' has 4 bytes but shape [2] of F32 needs 8"));
  }
  SECTION("names must be unique and not __metadata__") {
    CHECK_THROWS_WITH(st::write_file(file, {{{"x", st::DType::kF32, {1}}, four},
                                            {{"x", st::DType::kF32, {1}}, four}}),
                      Contains("duplicate tensor name 'x'"));
    CHECK_THROWS_WITH(st::write_file(file, {{{"__metadata__", st::DType::kF32, {1}}, four}}),
                      Contains("reserved"));
  }
  SECTION("negative dimensions are rejected") {
    CHECK_THROWS_WITH(st::write_file(file, {{{"x", st::DType::kF32, {-1}}, {}}}),
                      Contains("invalid shape [-1]"));
  }
  SECTION("a failing fill leaves the previous file and no temporary") {
    st::write_file(file, {{{"keep", st::DType::kF32, {1}}, four}});
    auto failing = [](const st::TensorSpec&, std::span<std::byte>) {
      throw std::runtime_error("disk on fire");
    };
    CHECK_THROWS_WITH(st::write_file(file, {{"new", st::DType::kF32, {1}}}, failing),
                      "disk on fire");
    st::Reader reader(file);
    CHECK(reader.find("keep") != nullptr);
    CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()) == 1);
  }
  CHECK_FALSE(fs::exists(dir.path() / ("w.safetensors.tmp." + std::to_string(::getpid()))));
}

TEST_CASE("safetensors: malformed files raise DataError naming the file and tensor",
          "[safetensors]") {
  TempDir dir;
  const fs::path file = dir.path() / "bad.safetensors";
  auto error_for = [&](const std::string& content) {
    write_all(file, content);
    std::string msg = open_error(file);
    CHECK_THAT(msg, Contains(file.string()));
    return msg;
  };
  const std::string ok_entry = R"("dtype":"F32","shape":[2],"data_offsets":[0,8])";

  SECTION("a missing file") {
    CHECK_THAT(open_error(dir.path() / "nope.safetensors"), Contains("cannot open"));
  }
  SECTION("a file shorter than the length prefix") {
    CHECK_THAT(error_for("abc"), Contains("too small for the 8-byte header length"));
  }
  SECTION("a header length beyond the end of the file") {
    std::string content = raw_file("{}", 0);
    content[0] = static_cast<char>(200);
    CHECK_THAT(error_for(content), Contains("header length 200 exceeds the file size (10 bytes)"));
  }
  SECTION("malformed JSON") {
    CHECK_THAT(error_for(raw_file(R"({"x": {"dtype": )", 0)), Contains("malformed JSON header"));
  }
  SECTION("a header that is not an object") {
    CHECK_THAT(error_for(raw_file("[1, 2]", 0)), Contains("header is not a JSON object"));
  }
  SECTION("an unsupported dtype") {
    CHECK_THAT(
        error_for(raw_file(R"({"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8)),
        Contains("tensor 'ids': unsupported dtype 'I64' (supported: F32, F16, BF16)"));
  }
  SECTION("a negative dimension") {
    CHECK_THAT(error_for(raw_file(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8)),
               Contains("tensor 'w': negative dimension -2 in shape"));
  }
  SECTION("a byte size that does not match the shape") {
    CHECK_THAT(error_for(raw_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
               Contains("tensor 'w': holds 8 bytes but shape [3] of F32 needs 12"));
  }
  SECTION("offsets beyond the data buffer") {
    CHECK_THAT(error_for(raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 8)),
               Contains("tensor 'w': data_offsets [4, 12] exceed the data buffer (8 bytes)"));
  }
  SECTION("reversed and negative offsets") {
    CHECK_THAT(error_for(raw_file(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8)),
               Contains("tensor 'w': data_offsets [8, 0] are reversed"));
    CHECK_THAT(error_for(raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", 8)),
               Contains("tensor 'w': 'data_offsets' must be non-negative integers"));
  }
  SECTION("overlapping tensors") {
    CHECK_THAT(error_for(raw_file(R"({"a":{)" + ok_entry +
                                      R"(},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                  12)),
               Contains("tensors 'a' [0, 8) and 'b' [4, 12) overlap"));
  }
  SECTION("duplicate tensor names") {
    CHECK_THAT(error_for(raw_file(R"({"a":{)" + ok_entry + R"(},"a":{)" + ok_entry + "}}", 8)),
               Contains("duplicate tensor name 'a'"));
  }
  SECTION("missing fields and a non-string metadata value") {
    CHECK_THAT(error_for(raw_file(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", 8)),
               Contains("tensor 'a': missing string 'dtype'"));
    CHECK_THAT(error_for(raw_file(R"({"a":{"dtype":"F32","shape":[2]}})", 8)),
               Contains("tensor 'a': missing 'data_offsets'"));
    CHECK_THAT(error_for(raw_file(R"({"__metadata__":{"n":1}})", 0)),
               Contains("'__metadata__' value of 'n' is not a string"));
  }
}

TEST_CASE("safetensors: corrupted and truncated files never crash the reader", "[safetensors]") {
  TempDir dir;
  const fs::path good = dir.path() / "good.safetensors";
  std::vector<float> values(64);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i);
  const auto b = bytes_of(values);
  st::write_file(good,
                 {{{"a", st::DType::kF32, {4, 4}}, std::span(b).first(64)},
                  {{"b", st::DType::kBF16, {8}}, std::span(b).subspan(64, 16)},
                  {{"c", st::DType::kF16, {2, 2, 2}}, std::span(b).subspan(80, 16)},
                  {{"d", st::DType::kF32, {40}}, std::span(b).subspan(96, 160)}},
                 {{"format", "pt"}});
  const std::string original = read_all(good);
  const std::size_t header_end =
      8 + static_cast<unsigned char>(original[0]) + 256 * static_cast<unsigned char>(original[1]);

  std::mt19937 rng(20240607);  // Fixed seed: the same corpus every run.
  const fs::path file = dir.path() / "fuzz.safetensors";
  int accepted = 0, rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string content = original;
    const int kind = iter % 4;
    if (kind == 0) {  // Flip a few bits anywhere in the length prefix or header.
      for (int k = 0, n = 1 + static_cast<int>(rng() % 3); k < n; ++k) {
        content[rng() % header_end] ^= static_cast<char>(1u << (rng() % 8));
      }
    } else if (kind == 1) {  // Replace a header byte with a JSON-significant character.
      static const char kChars[] = "{}[]\",:-0123456789e. ";
      content[8 + rng() % (header_end - 8)] = kChars[rng() % (sizeof(kChars) - 1)];
    } else if (kind == 2) {  // Truncate.
      content.resize(rng() % content.size());
    } else {  // Corrupt a digit run in the header: big numbers, signs.
      std::size_t pos = 8 + rng() % (header_end - 8);
      content.insert(pos, std::to_string(rng()));
    }
    write_all(file, content);
    try {
      st::Reader reader(file);
      // Touch every byte the reader hands out: must stay inside the mapping.
      std::uint64_t sum = 0;
      for (const auto& t : reader.tensors()) {
        for (std::byte x : reader.data(t)) sum += static_cast<std::uint8_t>(x);
        CHECK(t.end <= content.size());
      }
      (void)sum;
      ++accepted;
    } catch (const mr::sdk::DataError& e) {
      REQUIRE_THAT(e.what(), Contains(file.string()));
      ++rejected;
    }
  }
  CHECK(rejected > 1000);
  CHECK(accepted > 0);
}

TEST_CASE("safetensors: checkpoints may be one file or shards listed by an index",
          "[safetensors]") {
  TempDir dir;
  const auto four = bytes_of({1.0f});
  const auto eight = bytes_of({2.0f, 3.0f});
  SECTION("a single model.safetensors") {
    st::write_file(dir.path() / "model.safetensors", {{{"x", st::DType::kF32, {1}}, four}});
    st::CheckpointReader ckpt(dir.path());
    CHECK(ckpt.names() == std::vector<std::string>{"x"});
    auto [reader, info] = ckpt.find("x");
    REQUIRE(info != nullptr);
    CHECK(floats(reader->data(*info)) == std::vector<float>{1.0f});
    CHECK(ckpt.find("y").second == nullptr);
  }
  SECTION("shards resolved through model.safetensors.index.json") {
    st::write_file(dir.path() / "model-00001-of-00002.safetensors",
                   {{{"x", st::DType::kF32, {1}}, four}});
    st::write_file(dir.path() / "model-00002-of-00002.safetensors",
                   {{{"y", st::DType::kF32, {2}}, eight}});
    write_all(
        dir.path() / "model.safetensors.index.json",
        R"({"metadata":{"total_size":12},"weight_map":{"x":"model-00001-of-00002.safetensors",)"
        R"("y":"model-00002-of-00002.safetensors"}})");
    st::CheckpointReader ckpt(dir.path());
    CHECK(ckpt.names() == std::vector<std::string>{"x", "y"});
    CHECK(ckpt.shards().size() == 2);
    auto [reader, info] = ckpt.find("y");
    REQUIRE(info != nullptr);
    CHECK(reader->path().filename() == "model-00002-of-00002.safetensors");
    CHECK(floats(reader->data(*info)) == std::vector<float>{2.0f, 3.0f});

    SECTION("an index entry whose shard lacks the tensor") {
      write_all(dir.path() / "model.safetensors.index.json",
                R"({"weight_map":{"x":"model-00002-of-00002.safetensors"}})");
      CHECK_THROWS_WITH(st::CheckpointReader(dir.path()),
                        Contains("tensor 'x' is mapped to 'model-00002-of-00002.safetensors' but "
                                 "that file does not contain it"));
    }
    SECTION("a tensor stored in two shards") {
      st::write_file(dir.path() / "model-00002-of-00002.safetensors",
                     {{{"x", st::DType::kF32, {1}}, four}, {{"y", st::DType::kF32, {2}}, eight}});
      CHECK_THROWS_WITH(st::CheckpointReader(dir.path()), Contains("tensor 'x' is stored in both"));
    }
    SECTION("a shard path outside the directory") {
      write_all(dir.path() / "model.safetensors.index.json",
                R"({"weight_map":{"x":"../model-00001-of-00002.safetensors"}})");
      CHECK_THROWS_WITH(st::CheckpointReader(dir.path()),
                        Contains("not a file name in the checkpoint directory"));
    }
    SECTION("a malformed index") {
      write_all(dir.path() / "model.safetensors.index.json", R"({"weight_map": 3})");
      CHECK_THROWS_WITH(st::CheckpointReader(dir.path()), Contains("missing object 'weight_map'"));
    }
  }
  SECTION("a directory without weights") {
    CHECK_THROWS_AS(st::CheckpointReader(dir.path()), mr::sdk::DataError);
    CHECK_THROWS_WITH(st::CheckpointReader(dir.path()),
                      Contains("has neither model.safetensors nor model.safetensors.index.json"));
  }
}
