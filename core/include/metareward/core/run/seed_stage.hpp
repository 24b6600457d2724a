/// @file seed_stage.hpp
/// The seed stage's data (`[seed_sft]`, iteration 0 of `metareward run`): supervised
/// fine-tuning of the actor on judge-format conversations before iteration 1 (the paper's EFT
/// seed). Read once when a run starts, before its directory is created, so that a missing or
/// empty file leaves nothing behind; `metareward plan` counts the same examples.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "metareward/core/config_loader.hpp"
#include "metareward/core/jsonl.hpp"
#include "metareward/sdk/types.hpp"

namespace mr::core {

/// The examples of the seed stage and what reading them counted.
struct SeedStageData {
  std::filesystem::path file;  ///< [seed_sft] data, resolved (seed_stage_data_file()).
  /// One example per assistant turn (the turns before it are the prompt, the turn is `chosen`;
  /// `rejected` is empty), in file order.
  std::vector<sdk::PreferencePair> examples;
  JsonlStats stats;  ///< Rows read, accepted and dropped (by reason).
};

/// The [seed_sft] data path: relative to the config file's directory, like prompt files; a path
/// given with --set is taken as it is. Throws sdk::ConfigError without a [seed_sft] table.
std::filesystem::path seed_stage_data_file(const ResolvedConfig& config);

/// "FILE:LINE:COL: [seed_sft.data]": where the data key was written, for error messages.
std::string seed_stage_data_origin(const ResolvedConfig& config);

/// Reads the [seed_sft] data (read_sft_rows: bad rows counted, logged with file:line and
/// skipped). Throws sdk::DataError naming the config key and the file when the file cannot be
/// opened or holds no usable example.
SeedStageData load_seed_stage_data(const ResolvedConfig& config);

}  // namespace mr::core
