// Training a checkpoint (stages.hpp): an optimizer on the actor, its per-step metrics recorded
// durably, or a copy of the previous model without examples; the train stage of an iteration
// (the pooled actor and judge pairs) and the seed stage share it.
#include <chrono>
#include <cstdio>

#include <spdlog/spdlog.h>

#include "metareward/core/artifact_io.hpp"
#include "metareward/core/run/artifact_rows.hpp"
#include "metareward/core/run/distributed_run.hpp"
#include "metareward/sdk/error.hpp"
#include "stages.hpp"

namespace mr::core {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

/// M_{t-1}: the previous iteration's checkpoint, iter_0/model after a seed stage, else the
/// trained model's configured path.
fs::path previous_model(const StageContext& ctx) {
  const int t = ctx.t;
  if (t > 1 || (t == 1 && ctx.session.has_seed_stage()))
    return ctx.dir.file(t - 1, RunDirectory::kModel);
  // The trained model's own path ([roles] train, else the actor's).
  return ctx.session.config().section("models." + ctx.session.train_name()).get_string("path");
}

/// M_t = M_{t-1} when the iteration has no pairs.
void copy_previous_model(const StageContext& ctx, const fs::path& model_dir) {
  const fs::path from = previous_model(ctx);
  const fs::path tmp = model_dir.string() + ".tmp";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::copy(from, tmp, fs::copy_options::recursive, ec);
  if (ec)
    throw sdk::DataError("cannot copy the model '" + from.string() + "' to '" + tmp.string() +
                         "': " + ec.message());
  fs::rename(tmp, model_dir, ec);
  if (ec) throw sdk::DataError("cannot rename '" + tmp.string() + "': " + ec.message());
}

/// `optimizer` on `pairs`, streaming each step's metrics to train_metrics.jsonl.partial.
void run_optimizer(const StageContext& ctx,
                   sdk::Optimizer& optimizer,
                   const std::vector<sdk::PreferencePair>& pairs,
                   const fs::path& model_dir,
                   const fs::path& metrics_file) {
  RunSession& session = ctx.session;
  const std::string& trained = session.train_name();
  if (session.separate_train_model())  // The role models give the accelerator back meanwhile.
    for (const auto& [name, model] : session.models()) model->suspend();
  sdk::TrainableModel* trainable = session.train_model(previous_model(ctx)).trainable();
  if (trainable == nullptr)
    throw sdk::BackendError(
        "model '" + trained + "' (plugin '" + session.config().plugin_of.at("models." + trained) +
        "') cannot train: its backend has no trainable view" +
        (trained == session.actor_name()
             ? std::string("; set [roles] train to a `torch` model of the same checkpoint")
             : std::string()));
  // Steps recorded before an interruption stay in the partial file; a step repeated after
  // resuming appends a new row, and finalize_train_metrics() keeps the last row per step.
  const fs::path partial = metrics_file.string() + ".partial";
  AppendOnlyFile out(partial);
  double tokens_per_s_sum = 0;
  std::int64_t tokens_per_s_n = 0;
  sdk::TrainingJob job;
  job.info = ctx.session.info(ctx.t, StageCode::Train);
  job.output_dir = model_dir;
  // Written only by an optimizer that trains a LoRA adapter (keep_merged_models reads it).
  job.adapter_dir = ctx.dir.file(ctx.t, RunDirectory::kAdapter);
  job.state_dir = ctx.dir.file(ctx.t, RunDirectory::kTrainState);
  job.on_step = [&](const sdk::StepMetrics& m) {
    json row = {{"step", m.step}};
    for (const auto& [k, v] : m.values) {
      if (k == "tokens_per_s") {  // Wall-clock: kept out of the deterministic record.
        tokens_per_s_sum += v;
        ++tokens_per_s_n;
        continue;
      }
      row[k] = v;
    }
    const std::string line = row.dump();
    out.append(line + "\n");
  };
  job.stop_requested = ctx.stop_requested;
  // The summary is not recorded: metrics.json is built from the recorded steps, so that a
  // resumed stage (which may not train at all) reports the same numbers.
  auto train_here = [&] { (void)optimizer.train(*trainable, pairs, job); };
  if (RankCoordinator* ranks = session.coordinator()) {
    // Data-parallel: every rank trains its copy on its share of each step.
    job.collective = ranks->group().collective();
    job.check_replicas_every_steps = session.check_replicas_every_steps();
    const std::string table =
        &optimizer == session.seed_optimizer() ? kSeedStageTable : "optimizer";
    ranks->train(table, previous_model(ctx), pairs, job, train_here);
  } else {
    train_here();
  }
  session.release_train_model();
  rows::finalize_train_metrics(partial, metrics_file);
  if (tokens_per_s_n > 0)
    ctx.timings["throughput"]["train_tokens_per_s"] = tokens_per_s_sum / tokens_per_s_n;
}

}  // namespace

json train_checkpoint(const StageContext& ctx,
                      sdk::Optimizer& optimizer,
                      const std::vector<sdk::PreferencePair>& pairs) {
  const int t = ctx.t;
  const fs::path model_dir = ctx.dir.file(t, RunDirectory::kModel);
  const fs::path metrics_file = ctx.dir.file(t, RunDirectory::kTrainMetrics);
  const fs::path partial = metrics_file.string() + ".partial";
  if (fs::exists(model_dir) && fs::exists(partial))
    rows::finalize_train_metrics(partial, metrics_file);  // Crashed after saving the model.
  if (!fs::exists(model_dir)) {
    if (pairs.empty()) {
      spdlog::warn("iter {}: no preference pairs; M_{} is a copy of M_{}", t, t, t - 1);
      copy_previous_model(ctx, model_dir);
      write_file_atomic(metrics_file, "");
    } else {
      run_optimizer(ctx, optimizer, pairs, model_dir, metrics_file);
    }
  }
  // Summary from the recorded steps, so a resumed run reports the same numbers.
  std::int64_t steps = 0;
  json last = json::object();
  if (fs::exists(metrics_file))
    for (const json& row : rows::read_artifact(metrics_file)) {
      ++steps;
      last = row;
    }
  return {{"steps", steps}, {"final", last}};
}

json run_train_stage(const StageContext& ctx,
                     const std::vector<sdk::PreferencePair>& actor_pairs,
                     const std::vector<sdk::PreferencePair>& judge_pairs) {
  ctx.enter("train");
  std::vector<sdk::PreferencePair> pairs = actor_pairs;
  pairs.insert(pairs.end(), judge_pairs.begin(), judge_pairs.end());
  json training = {{"pairs", pairs.size()},
                   {"actor_pairs", actor_pairs.size()},
                   {"judge_pairs", judge_pairs.size()}};
  const auto start = Clock::now();
  const json recorded = train_checkpoint(ctx, ctx.session.optimizer(), pairs);
  ctx.timings["stages"]["train"] = std::chrono::duration<double>(Clock::now() - start).count();
  training["steps"] = recorded["steps"];
  training["final"] = recorded["final"];
  return training;
}

}  // namespace mr::core
