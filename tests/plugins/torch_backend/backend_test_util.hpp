/// @file backend_test_util.hpp
/// Helpers of the torch backend tests: temporary directories, tiny random checkpoints written by
/// the plugin's own init-model command (byte-level tokenizer, plain chat template) and backend
/// construction with config overrides.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>

#include "metareward/sdk/model_backend.hpp"
#include "metareward/torch_backend_plugin/torch_backend.hpp"
#include "test_host_context.hpp"

namespace mr::test {

/// A fresh directory under the system temp dir, removed on scope exit.
class BackendTempDir {
 public:
  BackendTempDir() {
    static int counter = 0;
    path_ =
        std::filesystem::temp_directory_path() /
        ("mr_torch_backend_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~BackendTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  BackendTempDir(const BackendTempDir&) = delete;
  BackendTempDir& operator=(const BackendTempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// config.json of a tiny Llama: 2 layers, hidden 32 (4 heads over 2 kv heads), vocab 300 (the
/// byte-level tokenizer uses 259 of them, so sampling must skip the rest). A large
/// initializer_range makes the next-token distributions peaked enough for varied greedy text.
inline std::string tiny_backend_config(int max_positions = 512,
                                       const std::string& architecture = "LlamaForCausalLM") {
  return "{\"architectures\": [\"" + architecture +
         "\"], \"hidden_size\": 32, \"intermediate_size\": 64, \"num_hidden_layers\": 2, "
         "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"vocab_size\": 300, "
         "\"max_position_embeddings\": " +
         std::to_string(max_positions) +
         ", \"rms_norm_eps\": 1e-6, \"rope_theta\": 10000.0, \"tie_word_embeddings\": false, "
         "\"initializer_range\": 0.3, \"bos_token_id\": 1, \"eos_token_id\": 2}";
}

/// Writes a tiny random checkpoint into `dir` with init-model; returns its exit status.
inline int write_tiny_model(const std::filesystem::path& dir,
                            std::uint64_t seed = 7,
                            const std::string& config = tiny_backend_config()) {
  const auto config_path = dir.parent_path() / (dir.filename().string() + ".config.json");
  std::ofstream(config_path) << config;
  std::ostringstream out, err;
  return mr::plugins::torch_backend::init_model_command(
      {"--config", config_path.string(), "--out", dir.string(), "--seed", std::to_string(seed)},
      out, err);
}

/// A constructed backend with its context (the context outlives the backend).
struct BackendInstance {
  std::unique_ptr<TestHostContext> ctx;
  std::unique_ptr<sdk::ModelBackend> backend;
  sdk::ModelBackend* operator->() { return backend.get(); }
};

/// The `torch` backend on `dir` with `overrides` on top of the schema defaults.
/// One tiny model (write_tiny_model's defaults) shared by the tests of a binary that only read
/// it; written on first use, removed at exit.
inline const std::filesystem::path& shared_tiny_model() {
  static BackendTempDir dir;
  static const std::filesystem::path model = [] {
    const auto p = dir.path() / "model";
    if (write_tiny_model(p) != 0) throw std::runtime_error("init-model failed for " + p.string());
    return p;
  }();
  return model;
}

inline BackendInstance make_backend(const std::filesystem::path& dir, sdk::Table overrides = {}) {
  overrides["path"] = sdk::Value(dir.string());
  BackendInstance inst;
  inst.ctx = std::make_unique<TestHostContext>(
      config_from_schema(mr::plugins::torch_backend::torch_backend_schema(), std::move(overrides),
                         1, "models.policy"));
  inst.backend = mr::plugins::torch_backend::make_torch_backend(*inst.ctx);
  return inst;
}

/// A one-user-message request.
inline sdk::GenerationRequest request(const std::string& id,
                                      const std::string& prompt,
                                      std::uint64_t seed,
                                      double temperature,
                                      int max_new_tokens,
                                      int n = 1) {
  sdk::GenerationRequest r;
  r.id = id;
  r.messages = {{"user", prompt}};
  r.sampling.temperature = temperature;
  r.sampling.top_p = 1.0;
  r.sampling.max_new_tokens = max_new_tokens;
  r.n = n;
  r.seed = seed;
  return r;
}

}  // namespace mr::test
