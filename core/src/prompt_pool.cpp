// The run's prompt pool: read, dedupe, cap, seeded shuffle, per-iteration slices.
#include "metareward/core/prompt_pool.hpp"

#include <algorithm>
#include <numeric>
#include <random>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "metareward/core/jsonl.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/sdk/host.hpp"

namespace mr::core {

namespace {

namespace fs = std::filesystem;

/// In-place Fisher-Yates over `items` (std::shuffle's algorithm is implementation-defined).
template <class T>
void fisher_yates(std::vector<T>& items, std::mt19937_64& rng) {
  for (std::size_t i = items.size(); i > 1; --i) {
    const auto j = static_cast<std::size_t>(uniform_below(rng, i));
    std::swap(items[i - 1], items[j]);
  }
}

/// A conversation as one comparable key (role and content of every message, unambiguous).
std::string conversation_key(const sdk::Conversation& messages) {
  std::string key;
  for (const auto& m : messages) {
    key += m.role;
    key += '\0';
    key += std::to_string(m.content.size());
    key += '\0';
    key += m.content;
  }
  return key;
}

/// Makes ids unique in order: a repeated id becomes "<id>#<n>" with the smallest n >= 2 that
/// no row's original id and no earlier renamed row uses, so rows with unique ids never change.
std::int64_t make_ids_unique(std::vector<PoolPrompt>& rows) {
  std::unordered_set<std::string> original;
  for (const auto& r : rows) original.insert(r.id);
  std::unordered_set<std::string> taken;
  std::int64_t renamed = 0;
  int logged = 0;
  for (auto& r : rows) {
    if (taken.insert(r.id).second) continue;
    std::string fresh;
    for (int n = 2;; ++n) {
      fresh = r.id + "#" + std::to_string(n);
      if (!original.count(fresh) && !taken.count(fresh)) break;
    }
    if (logged++ < 10)
      spdlog::warn("{}:{}: prompt id '{}' is used by an earlier row; renamed '{}'", r.file.string(),
                   r.line, r.id, fresh);
    r.id = fresh;
    taken.insert(fresh);
    ++renamed;
  }
  return renamed;
}

std::string count_text(std::int64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

PromptPoolOptions PromptPoolOptions::from_config(const ResolvedConfig& config) {
  const sdk::Config& prompts = config.section("prompts");
  const sdk::Config& run = config.section("run");
  PromptPoolOptions o;
  const fs::path base = config.file.parent_path();
  const sdk::Value& files = prompts.raw("files");
  if (files.is_array()) {
    for (const auto& v : files.as_array()) {
      fs::path p = v.as_string();
      // A path written in the config file means the same wherever the command runs from.
      const bool from_set = v.source().file == "--set" || files.source().file == "--set";
      o.files.push_back(p.is_absolute() || from_set ? p : base / p);
    }
  }
  o.per_iteration = prompts.get_int("per_iteration");
  o.pool_size = prompts.get_int("pool_size");
  o.dedupe = prompts.get_bool("dedupe");
  o.disjoint = prompts.get_bool("disjoint");
  o.shuffle = prompts.get_bool("shuffle");
  o.seed = static_cast<std::uint64_t>(run.get_int("seed"));
  o.iterations = config.iterations;
  return o;
}

std::string PromptPoolStats::summary() const {
  std::string s = count_text(files, "file", "files") + ", " + count_text(rows, "row", "rows") +
                  ", " + std::to_string(accepted) + " accepted";
  if (!bad_rows.empty()) {
    s += " (dropped: ";
    bool first = true;
    for (const auto& [reason, n] : bad_rows) {
      s += (first ? "" : ", ") + reason + ": " + std::to_string(n);
      first = false;
    }
    s += ")";
  }
  if (duplicates > 0) s += ", " + count_text(duplicates, "duplicate", "duplicates");
  if (renamed_ids > 0) s += ", " + count_text(renamed_ids, "id renamed", "ids renamed");
  if (capped > 0) s += ", " + std::to_string(capped) + " over pool_size";
  return s + "; pool " + std::to_string(pool);
}

PromptPool PromptPool::load(const PromptPoolOptions& options) {
  if (options.files.empty())
    throw sdk::DataError("[prompts] files is empty: the run needs at least one JSONL prompt file");
  std::vector<PoolPrompt> rows;
  PromptPoolStats stats;
  for (const auto& file : options.files) {
    std::error_code ec;
    if (fs::is_directory(file, ec))
      throw sdk::DataError("prompt file '" + file.string() + "' is a directory, not a JSONL file");
    auto in = open_input(file.string());
    JsonlStats js;
    const std::string source = file.string();
    std::vector<PromptRow> read = read_prompt_rows(*in, source, js);
    ++stats.files;
    stats.rows += js.rows;
    stats.accepted += js.accepted;
    for (const auto& [reason, n] : js.dropped) stats.bad_rows[reason] += n;
    spdlog::debug("prompt file '{}': {}", source, js.summary());
    const std::string stem = file.stem().string();
    for (auto& r : read) {
      // read_prompt_rows names id-less rows "<source>:<line>"; the pool's ids use the file stem
      // so that they do not change when the data directory moves.
      std::string id = r.id == source + ":" + std::to_string(r.line)
                           ? stem + ":" + std::to_string(r.line)
                           : std::move(r.id);
      rows.push_back({std::move(id), std::move(r.messages), file, r.line});
    }
  }
  return build(std::move(rows), options, std::move(stats));
}

PromptPool PromptPool::build(std::vector<PoolPrompt> rows,
                             const PromptPoolOptions& options,
                             PromptPoolStats stats) {
  if (options.per_iteration < 1)
    throw sdk::DataError("[prompts] per_iteration must be >= 1, got " +
                         std::to_string(options.per_iteration));
  if (options.iterations < 1)
    throw sdk::DataError("run.iterations must be >= 1, got " + std::to_string(options.iterations));
  if (stats.files == 0 && stats.accepted == 0)
    stats.accepted = static_cast<std::int64_t>(rows.size());

  // 1. Dedupe: identical conversations, first occurrence kept.
  if (options.dedupe) {
    std::unordered_set<std::string> seen;
    std::vector<PoolPrompt> kept;
    kept.reserve(rows.size());
    for (auto& r : rows) {
      if (seen.insert(conversation_key(r.messages)).second)
        kept.push_back(std::move(r));
      else
        ++stats.duplicates;
    }
    rows = std::move(kept);
  }
  // 2. Unique ids, in file order (before the cap, so pool_size does not change any id).
  stats.renamed_ids = make_ids_unique(rows);
  // 3. Cap: the first pool_size prompts in file order form the pool.
  if (options.pool_size > 0 && static_cast<std::int64_t>(rows.size()) > options.pool_size) {
    stats.capped = static_cast<std::int64_t>(rows.size()) - options.pool_size;
    rows.resize(static_cast<std::size_t>(options.pool_size));
  }
  // 4. Seeded shuffle.
  if (options.shuffle) {
    std::mt19937_64 rng(sdk::derive_seed(options.seed, kPromptPoolSeedStream));
    fisher_yates(rows, rng);
  }
  stats.pool = static_cast<std::int64_t>(rows.size());

  PromptPool pool;
  pool.options_ = options;
  pool.stats_ = std::move(stats);
  pool.prompts_ = std::move(rows);
  spdlog::info("prompt pool: {}", pool.stats_.summary());

  if (pool.prompts_.empty())
    throw sdk::DataError("the prompt pool is empty (" + pool.stats_.summary() +
                         "): no usable prompt in [prompts] files");
  const std::int64_t n = pool.stats_.pool, per = options.per_iteration;
  for (int t = 1; t <= options.iterations; ++t) {
    const std::int64_t size = pool.slice_size(t);
    if (size == 0)
      throw sdk::DataError("the prompt pool has " + std::to_string(n) + " prompts but iteration " +
                           std::to_string(t) + " of " + std::to_string(options.iterations) +
                           " starts at prompt " + std::to_string(t - 1) + " x per_iteration " +
                           std::to_string(per) +
                           " (disjoint slices): its slice is empty; add prompts, lower "
                           "per_iteration or run.iterations, or set prompts.disjoint = false");
    if (size < per)
      spdlog::warn(
          "prompt pool: iteration {} gets {} prompts, fewer than per_iteration = {} (pool {})", t,
          size, per, n);
  }
  return pool;
}

std::int64_t PromptPool::slice_size(int iteration) const {
  const std::int64_t n = static_cast<std::int64_t>(prompts_.size());
  const std::int64_t per = options_.per_iteration;
  if (!options_.disjoint) return std::min(per, n);
  // (t-1)*per >= n without overflowing for absurd per_iteration values.
  const std::int64_t before = static_cast<std::int64_t>(iteration) - 1;
  if (before > 0 && before >= (n + per - 1) / per) return 0;
  return std::min(per, n - before * per);
}

std::vector<std::size_t> PromptPool::slice_indices(int iteration) const {
  if (iteration < 1 || iteration > options_.iterations)
    throw sdk::DataError("prompt pool: iteration " + std::to_string(iteration) + " is outside 1.." +
                         std::to_string(options_.iterations));
  const std::int64_t size = slice_size(iteration);
  if (size == 0)
    throw sdk::DataError("prompt pool: iteration " + std::to_string(iteration) +
                         " has no prompts (pool " + std::to_string(prompts_.size()) +
                         ", per_iteration " + std::to_string(options_.per_iteration) + ")");
  std::vector<std::size_t> out;
  if (options_.disjoint) {
    const auto begin = static_cast<std::size_t>((static_cast<std::int64_t>(iteration) - 1) *
                                                options_.per_iteration);
    out.resize(static_cast<std::size_t>(size));
    std::iota(out.begin(), out.end(), begin);
    return out;
  }
  // Sampling without replacement: the first `size` positions of a partial Fisher-Yates over all
  // pool indices, seeded by (run.seed, pool stream, iteration).
  std::vector<std::size_t> all(prompts_.size());
  std::iota(all.begin(), all.end(), std::size_t{0});
  std::mt19937_64 rng(sdk::derive_seed(sdk::derive_seed(options_.seed, kPromptPoolSeedStream),
                                       static_cast<std::uint64_t>(iteration)));
  const auto k = static_cast<std::size_t>(size);
  for (std::size_t i = 0; i < k; ++i) {
    const auto j = i + static_cast<std::size_t>(uniform_below(rng, all.size() - i));
    std::swap(all[i], all[j]);
  }
  all.resize(k);
  return all;
}

std::vector<PoolPrompt> PromptPool::slice(int iteration) const {
  std::vector<PoolPrompt> out;
  for (std::size_t i : slice_indices(iteration)) out.push_back(prompts_[i]);
  return out;
}

}  // namespace mr::core
