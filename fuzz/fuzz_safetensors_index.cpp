// libFuzzer harness: model.safetensors.index.json text read by mr::safetensors::CheckpointReader
// over a directory holding two small valid shards. Any index must give a DataError or a
// checkpoint whose every name resolves to a tensor of its shard.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_support.hpp"
#include "metareward/safetensors/safetensors.hpp"
#include "metareward/sdk/error.hpp"

namespace {

namespace st = mr::safetensors;

// The checkpoint directory: shards model-00001-of-00002 (a, b) and model-00002-of-00002 (c),
// written once with the product's writer.
const std::filesystem::path& checkpoint_dir() {
  static const std::filesystem::path dir = [] {
    auto d = mr::fuzz::scratch_dir() / "checkpoint";
    std::filesystem::create_directories(d);
    const std::vector<std::byte> four(16, std::byte{1});
    st::write_file(
        d / "model-00001-of-00002.safetensors",
        {{{"a", st::DType::kF32, {2, 2}}, four}, {{"b", st::DType::kF16, {2}}, {four.data(), 4}}});
    st::write_file(d / "model-00002-of-00002.safetensors",
                   {{{"c", st::DType::kBF16, {1, 2}}, {four.data(), 4}}}, {{"format", "pt"}});
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& dir = checkpoint_dir();
  mr::fuzz::write_bytes(dir / "model.safetensors.index.json", mr::fuzz::as_text(data, size));
  try {
    const st::CheckpointReader checkpoint(dir);
    for (const auto& name : checkpoint.names()) {
      const auto [shard, info] = checkpoint.find(name);
      MR_FUZZ_CHECK(shard != nullptr && info != nullptr, "a listed name does not resolve");
      MR_FUZZ_CHECK(shard->find(name) == info, "resolved tensor is not its shard's");
      MR_FUZZ_CHECK(shard->data(*info).size() == info->nbytes(), "data() size differs");
    }
  } catch (const mr::sdk::Error&) {
    // The documented outcome for a malformed index or one that disagrees with the shards.
  }
  return 0;
}
