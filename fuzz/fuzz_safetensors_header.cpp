// libFuzzer harness: a whole .safetensors file (8-byte header length, JSON header, data) read by
// mr::safetensors::Reader. The reader promises a DataError for any corrupt file and, once it
// accepts one, spans that lie inside the mapping; every tensor's bytes are touched to check it.
#include <cstddef>
#include <cstdint>

#include "fuzz_support.hpp"
#include "metareward/safetensors/safetensors.hpp"
#include "metareward/sdk/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto file = mr::fuzz::scratch_dir() / "model.safetensors";
  mr::fuzz::write_bytes(file, mr::fuzz::as_text(data, size));
  try {
    const mr::safetensors::Reader reader(file);
    unsigned sum = 0;
    for (const auto& info : reader.tensors()) {
      MR_FUZZ_CHECK(info.begin <= info.end, "tensor begin after end");
      const auto bytes = reader.data(info);
      MR_FUZZ_CHECK(bytes.size() == info.nbytes(), "data() size differs from nbytes()");
      MR_FUZZ_CHECK(info.nbytes() == static_cast<std::uint64_t>(info.numel()) *
                                         mr::safetensors::dtype_size(info.dtype),
                    "nbytes() differs from numel * dtype size");
      for (const std::byte b : bytes) sum += static_cast<unsigned>(b);  // ASan checks each read
      MR_FUZZ_CHECK(reader.find(info.name) == &info, "find() misses a listed tensor");
      reader.release(info);
    }
    for (const auto& [key, value] : reader.metadata())
      sum += static_cast<unsigned>(key.size() + value.size());
    (void)sum;
  } catch (const mr::sdk::Error&) {
    // The documented outcome for a corrupt file.
  }
  return 0;
}
