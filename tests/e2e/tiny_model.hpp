// A tiny Llama-shaped checkpoint with a byte-level tokenizer, written by `metareward init-model`:
// the model the end-to-end tests run the real torch backend and optimizers on.
#pragma once

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "cli_runner.hpp"

namespace mr::tests {

/// Writes the checkpoint to `dir`/model (seeded) and returns its path.
inline std::filesystem::path tiny_model(const ScratchDir& dir, const std::string& seed = "3") {
  const std::filesystem::path config = dir.write("tiny.config.json", R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300,
    "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "tie_word_embeddings": false})");
  const std::filesystem::path out = dir.path() / "model";
  const CliResult r =
      run_cli({"init-model", "--config", config.string(), "--out", out.string(), "--seed", seed});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  REQUIRE(std::filesystem::exists(out / "config.json"));
  REQUIRE(std::filesystem::exists(out / "model.safetensors"));
  REQUIRE(std::filesystem::exists(out / "tokenizer.json"));
  return out;
}

}  // namespace mr::tests
