/// @file prompt_pool.hpp
/// The prompt pool of a run ([prompts]): every JSONL file read, exact duplicates dropped, capped
/// at pool_size, shuffled with a seed derived from run.seed, then cut into per-iteration slices.
/// Same config and seed give the same slices on every platform (own Fisher-Yates over
/// std::mt19937_64, no implementation-defined distributions).
/// Order of the steps: read (bad rows counted) -> dedupe -> unique ids -> pool_size cap (the
/// first pool_size prompts in file order, so the pool's members do not depend on the seed) ->
/// shuffle -> slices. A repeated id is renamed, not an error: datasets repeat ids, and
/// "<stem>:<line>" repeats whenever two files share a stem.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "metareward/core/config_loader.hpp"
#include "metareward/sdk/types.hpp"

namespace mr::core {

/// Stream constant mixed into run.seed (sdk::derive_seed) for the pool shuffle; per-iteration
/// samples (disjoint = false) mix the iteration number into the result once more.
inline constexpr std::uint64_t kPromptPoolSeedStream = 0x70726f6d70747321ULL;  // "prompts!"

/// One prompt of the pool.
struct PoolPrompt {
  /// Stable id: the row's "id" if given, else "<file stem>:<line>". Ids are unique within a pool:
  /// a repeated id gets "#2", "#3", ... (the smallest suffix no other row uses), in file order.
  std::string id;
  sdk::Conversation messages;
  std::filesystem::path file;  ///< The file the row came from.
  std::int64_t line = 0;       ///< 1-based line in that file.
};

/// What [prompts] asks for, with file paths already resolved.
struct PromptPoolOptions {
  std::vector<std::filesystem::path> files;
  std::int64_t per_iteration = 5000;
  std::int64_t pool_size = 0;  ///< 0 = keep every prompt.
  bool dedupe = true;
  bool disjoint = true;
  bool shuffle = true;
  std::uint64_t seed = 1;  ///< run.seed
  int iterations = 1;

  /// Reads [prompts] and [run] of a resolved config. Relative prompt files are resolved against
  /// the config file's directory (a `--set` value against the current directory, as for
  /// [plugins] paths).
  static PromptPoolOptions from_config(const ResolvedConfig& config);
};

/// Counts of what reading and building the pool kept and dropped.
struct PromptPoolStats {
  std::int64_t files = 0;
  std::int64_t rows = 0;                         ///< Non-blank lines read over all files.
  std::int64_t accepted = 0;                     ///< Rows that parsed as prompts.
  std::map<std::string, std::int64_t> bad_rows;  ///< Unparseable rows by reason.
  std::int64_t duplicates = 0;                   ///< Dropped by dedupe (conversation seen earlier).
  std::int64_t renamed_ids = 0;                  ///< Repeated ids made unique.
  std::int64_t capped = 0;                       ///< Dropped by the pool_size cap.
  std::int64_t pool = 0;                         ///< Prompts in the final pool.
  /// "2 files, 1200 rows, 1198 accepted (dropped: no prompt: 2), 10 duplicates, 188 over
  /// pool_size; pool 1000".
  std::string summary() const;
};

/// The run's prompt pool and its per-iteration slices.
class PromptPool {
 public:
  /// Reads every file and builds the pool. Logs counted drops. Throws sdk::DataError naming the
  /// file when one cannot be opened, when no prompt survives, or when an iteration's slice
  /// would be empty (naming the pool size, per_iteration and iteration); a slice shorter than
  /// per_iteration is a warning.
  static PromptPool load(const PromptPoolOptions& options);

  /// Builds a pool from rows already read (ids as given, `file` used for the messages);
  /// same steps and errors as load() after reading.
  static PromptPool build(std::vector<PoolPrompt> rows,
                          const PromptPoolOptions& options,
                          PromptPoolStats stats = {});

  /// The pool in slicing order (deduplicated, capped, shuffled when asked).
  const std::vector<PoolPrompt>& prompts() const { return prompts_; }
  const PromptPoolStats& stats() const { return stats_; }
  const PromptPoolOptions& options() const { return options_; }

  /// Pool indices of iteration `iteration`'s prompts (1-based iteration). disjoint: rows
  /// [(t-1)*per_iteration, t*per_iteration) of the pool, clipped to its end; otherwise
  /// min(per_iteration, pool) prompts sampled without replacement with a per-iteration seed.
  /// Throws sdk::DataError for an iteration outside [1, iterations] or an empty slice.
  std::vector<std::size_t> slice_indices(int iteration) const;
  /// The prompts of slice_indices(iteration), in that order.
  std::vector<PoolPrompt> slice(int iteration) const;
  /// The size of iteration `iteration`'s slice (0 when it would be empty; never throws for
  /// an iteration in range).
  std::int64_t slice_size(int iteration) const;

 private:
  PromptPoolOptions options_;
  PromptPoolStats stats_;
  std::vector<PoolPrompt> prompts_;
};

/// Uniform integer in [0, bound) from `next` draws of a 64-bit generator, by rejection (no
/// modulo bias, identical on every standard library). `bound` must be > 0.
template <class Generator>
std::uint64_t uniform_below(Generator& next, std::uint64_t bound) {
  // Values below `threshold` would make some residues more likely; draw again.
  const std::uint64_t threshold = (0 - bound) % bound;
  for (;;) {
    const std::uint64_t x = next();
    if (x >= threshold) return x % bound;
  }
}

}  // namespace mr::core
