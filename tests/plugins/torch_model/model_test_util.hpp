/// @file model_test_util.hpp
/// Helpers of the torch_model tests: a temporary directory and tiny HF configs.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

namespace mr::test {

/// A fresh directory under the system temp dir, removed on scope exit.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("mr_torch_model_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// A tiny config.json (2 layers, vocab 300, bos 1, eos 2): hidden 32 with 4 heads over 2 kv
/// heads unless overridden. `extra` is spliced in as additional JSON members.
inline std::string tiny_config_json(const std::string& architecture,
                                    bool tied,
                                    double initializer_range,
                                    int hidden = 32,
                                    int heads = 4,
                                    int kv_heads = 2,
                                    const std::string& extra = "") {
  return "{\"architectures\": [\"" + architecture +
         "\"], \"hidden_size\": " + std::to_string(hidden) +
         ", \"intermediate_size\": " + std::to_string(2 * hidden) +
         ", \"num_hidden_layers\": 2, \"num_attention_heads\": " + std::to_string(heads) +
         ", \"num_key_value_heads\": " + std::to_string(kv_heads) +
         ", \"vocab_size\": 300, \"max_position_embeddings\": 512, \"rms_norm_eps\": 1e-6, "
         "\"rope_theta\": 10000.0, \"tie_word_embeddings\": " +
         (tied ? "true" : "false") +
         ", \"initializer_range\": " + std::to_string(initializer_range) +
         ", \"bos_token_id\": 1, \"eos_token_id\": 2, \"torch_dtype\": \"bfloat16\"" + extra + "}";
}

}  // namespace mr::test
