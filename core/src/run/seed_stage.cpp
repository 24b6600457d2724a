// The seed stage (seed_stage.hpp, stages.hpp): the [seed_sft] data, read before the run
// directory exists, and iteration 0's supervised fine-tuning of the actor.
#include "metareward/core/run/seed_stage.hpp"

#include <chrono>

#include <spdlog/spdlog.h>

#include "metareward/core/artifact_io.hpp"
#include "metareward/sdk/error.hpp"
#include "run_summary.hpp"
#include "stages.hpp"

namespace mr::core {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

/// The [seed_sft] data value (with its source position), as resolve_config recorded it.
const sdk::Value& data_value(const ResolvedConfig& config) {
  auto table = config.root.find(kSeedStageTable);
  if (table == config.root.end() || !table->second.is_table())
    throw sdk::ConfigError(config.file.string() + ": no [" + kSeedStageTable + "] table");
  auto data = table->second.as_table().find("data");
  if (data == table->second.as_table().end() || !data->second.is_string())
    throw sdk::ConfigError(config.file.string() + ": [" + kSeedStageTable +
                           ".data] missing (the config was not resolved)");
  return data->second;
}

}  // namespace

fs::path seed_stage_data_file(const ResolvedConfig& config) {
  const sdk::Value& data = data_value(config);
  const fs::path path = data.as_string();
  // A path written in the config file means the same wherever the command runs from.
  if (path.is_absolute() || data.source().file == "--set") return path;
  return config.file.parent_path() / path;
}

std::string seed_stage_data_origin(const ResolvedConfig& config) {
  const sdk::SourceRef& source = data_value(config).source();
  const std::string where = source.file.empty() ? config.file.string() : source.describe();
  return where + ": [" + kSeedStageTable + ".data]";
}

SeedStageData load_seed_stage_data(const ResolvedConfig& config) {
  SeedStageData data;
  data.file = seed_stage_data_file(config);
  const std::string origin = seed_stage_data_origin(config);
  std::error_code ec;
  if (!fs::is_regular_file(data.file, ec))
    throw sdk::DataError(
        origin + " the seed stage's data file '" + data.file.string() +
        (fs::exists(data.file, ec) ? "' is not a regular file" : "' does not exist") +
        " (JSONL {\"messages\": [...]} conversations; see "
        "configs/meta_rewarding.toml)");
  std::unique_ptr<std::istream> in;
  try {
    in = open_input(data.file.string());
  } catch (const sdk::DataError& e) {
    throw sdk::DataError(origin + " " + e.what());
  }
  data.examples = to_preference_pairs(read_sft_rows(*in, data.file.string(), data.stats));
  if (data.examples.empty())
    throw sdk::DataError(origin + " '" + data.file.string() + "' holds no usable example (" +
                         data.stats.summary() + ")");
  if (data.stats.dropped_total() > 0)
    spdlog::warn("seed stage data {}: {}", data.file.string(), data.stats.summary());
  else
    spdlog::info("seed stage data {}: {}, {} examples", data.file.string(), data.stats.summary(),
                 data.examples.size());
  return data;
}

void run_seed_stage(const StageContext& ctx, const SeedStageData& data) {
  sdk::Optimizer* optimizer = ctx.session.seed_optimizer();
  if (optimizer == nullptr)
    throw sdk::PluginError("the seed stage's optimizer is not constructed (no [seed_sft] table?)");
  const std::string type = ctx.session.config().plugin_of.at(kSeedStageTable);
  spdlog::info("=== seed stage (iteration 0): {} on {} examples from {} ===", type,
               data.examples.size(), data.file.string());
  ctx.enter(kSeedStageTable);
  const auto start = Clock::now();
  const json recorded = train_checkpoint(ctx, *optimizer, data.examples);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  ctx.timings["stages"][kSeedStageTable] = seconds;
  ctx.timings["stages"]["total"] = seconds;
  ctx.session.set_stage("");

  json drops = json::object();
  for (const auto& [reason, n] : data.stats.dropped) drops[reason] = n;
  const json metrics = {{"iteration", 0},
                        {"iterations", ctx.session.iterations()},
                        {kSeedStageTable,
                         {{"type", type},
                          {"data", data.file.string()},
                          {"rows", data.stats.rows},
                          {"accepted", data.stats.accepted},
                          {"drops", drops},
                          {"examples", data.examples.size()},
                          {"steps", recorded["steps"]},
                          {"final", recorded["final"]}}}};
  write_file_atomic(ctx.dir.file(0, RunDirectory::kTimings), ctx.timings.dump(2) + "\n");
  // metrics.json last: its presence marks the seed stage complete.
  write_file_atomic(ctx.dir.seed_stage_metrics(), metrics.dump(2) + "\n");
  std::error_code ec;
  fs::remove_all(ctx.dir.file(0, RunDirectory::kTrainState), ec);
  const json& final_row = recorded["final"];
  spdlog::info("seed stage: {} examples, {} steps, final loss {} ({})", data.examples.size(),
               recorded["steps"].get<std::int64_t>(),
               final_row.contains("loss") ? final_row["loss"].dump() : std::string("-"),
               duration(seconds));
}

}  // namespace mr::core
