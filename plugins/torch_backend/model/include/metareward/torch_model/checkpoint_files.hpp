/// @file checkpoint_files.hpp
/// Writing HF-layout checkpoint directories without libtorch: deterministic random
/// initialization (`init_random_checkpoint`) and the atomic-directory helpers the torch side's
/// save_checkpoint() shares.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>

#include "metareward/safetensors/safetensors.hpp"
#include "metareward/torch_model/model_config.hpp"

namespace mr::torch_backend {

/// Options of init_random_checkpoint().
struct InitOptions {
  /// Seed of every random value; equal seeds give byte-identical model.safetensors.
  std::uint64_t seed = 0;
  /// Directory holding tokenizer.json (required there) and tokenizer_config.json /
  /// special_tokens_map.json (copied when present). Unset: no tokenizer files are written.
  std::optional<std::filesystem::path> tokenizer_dir;
  /// On-disk dtype of the weights: F32 (default, exact) or BF16.
  safetensors::DType dtype = safetensors::DType::kF32;
};

/// Writes a randomly initialized checkpoint for the model `config_json` describes into `out_dir`:
/// config.json (the input with `torch_dtype` set to the written dtype), model.safetensors
/// (linear and embedding weights ~ normal(0, initializer_range) as HF's `_init_weights`, biases
/// 0, norm weights 1), generation_config.json (bos/eos from the config) and the tokenizer
/// files. Atomic: everything is written to a sibling temporary directory that is renamed over
/// `out_dir` (an existing `out_dir` is replaced). Values depend only on (seed, tensor name,
/// position), not on thread count or tensor order. Throws BackendError.
void init_random_checkpoint(const std::filesystem::path& config_json,
                            const std::filesystem::path& out_dir,
                            const InitOptions& options);

/// init_random_checkpoint() with only a seed and an optional tokenizer directory.
void init_random_checkpoint(const std::filesystem::path& config_json,
                            const std::filesystem::path& out_dir,
                            std::uint64_t seed,
                            const std::optional<std::filesystem::path>& tokenizer_dir = {});

/// Fills `out` (numel of `spec`) with the initial values of parameter `spec` for `seed`: the
/// values init_random_checkpoint() writes, in float32.
void init_parameter_values(const ModelConfig& config,
                           const ParameterSpec& spec,
                           std::uint64_t seed,
                           std::span<float> out);

/// Rounds float32 to bfloat16 (round to nearest even; NaN stays NaN).
std::uint16_t float_to_bf16(float value);

/// config.json text for `config` with `torch_dtype` set to `torch_dtype` (the original JSON
/// otherwise unchanged, pretty-printed).
std::string config_json_with_dtype(const ModelConfig& config, const std::string& torch_dtype);

/// generation_config.json text with the config's bos/eos/pad token ids.
std::string generation_config_json(const ModelConfig& config);

/// A sibling temporary directory `<dir>.tmp.<pid>` that is removed unless commit() moves it to
/// `dir`. commit() replaces an existing `dir` (moved aside, then deleted) and fsyncs the parent.
class StagingDirectory {
 public:
  /// Creates the (empty) temporary directory next to `dir`. Throws BackendError.
  explicit StagingDirectory(std::filesystem::path dir);
  ~StagingDirectory();
  StagingDirectory(const StagingDirectory&) = delete;
  StagingDirectory& operator=(const StagingDirectory&) = delete;

  /// The temporary directory to write into.
  const std::filesystem::path& path() const { return temp_; }

  /// Moves the temporary directory to its final name. Throws BackendError.
  void commit();

 private:
  std::filesystem::path dir_;
  std::filesystem::path temp_;
  bool committed_ = false;
};

/// Copies the tokenizer files of `from` (tokenizer.json if `require_tokenizer_json` or present,
/// tokenizer_config.json, special_tokens_map.json, generation_config.json when
/// `include_generation_config`) into `to`. Throws BackendError when a required file is absent.
void copy_tokenizer_files(const std::filesystem::path& from,
                          const std::filesystem::path& to,
                          bool require_tokenizer_json,
                          bool include_generation_config);

}  // namespace mr::torch_backend
