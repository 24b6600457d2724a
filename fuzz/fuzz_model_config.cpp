// libFuzzer harness: a model's config.json text parsed by
// mr::torch_backend::parse_model_config_text (the libtorch-free mr_model_files), then what loading
// and init-model do with an accepted config: the RoPE frequencies and the parameter list. A bad
// config must be a BackendError; an accepted one must not overflow, hang or exhaust memory in those
// steps.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_support.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/torch_model/model_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace tb = mr::torch_backend;
  try {
    const tb::ModelConfig config =
        tb::parse_model_config_text(mr::fuzz::as_text(data, size), "config.json");
    MR_FUZZ_CHECK(config.hidden_size > 0 && config.num_hidden_layers > 0 && config.head_dim > 0 &&
                      config.num_key_value_heads > 0 && config.vocab_size > 0,
                  "accepted a non-positive size");
    MR_FUZZ_CHECK(config.num_attention_heads % config.num_key_value_heads == 0,
                  "accepted heads that are not a multiple of the kv heads");
    const auto inv_freq = tb::rope_inv_freq(config);
    MR_FUZZ_CHECK(inv_freq.size() == static_cast<std::size_t>(config.head_dim / 2),
                  "wrong number of RoPE frequencies");
    for (const double f : inv_freq) MR_FUZZ_CHECK(std::isfinite(f), "non-finite RoPE frequency");
    const auto specs = tb::parameter_specs(config);
    MR_FUZZ_CHECK(!specs.empty(), "no parameters");
    MR_FUZZ_CHECK(tb::parameter_count(config) > 0, "non-positive parameter count");
  } catch (const mr::sdk::Error&) {
    // The documented outcome for a malformed or unsupported config.
  }
  return 0;
}
