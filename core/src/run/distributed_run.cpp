// Rank 0's coordinator, the sharded model wrapper and the other ranks' command loop
// (distributed_run.hpp). Messages are MessagePack (wire_format.hpp) over the process group's
// byte broadcast and all-gather; every command is answered by every rank, so a rank that fails a
// command is named by rank 0 instead of leaving the others waiting.
#include "metareward/core/run/distributed_run.hpp"

#include <csignal>
#include <exception>

#include <spdlog/spdlog.h>

#include "metareward/core/run/guarded_plugins.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/sdk/model_backend.hpp"
#include "wire_format.hpp"

namespace mr::core {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::pair<std::size_t, std::size_t> rank_share(std::size_t count, int rank, int world) {
  const auto r = static_cast<std::size_t>(rank), w = static_cast<std::size_t>(world);
  const std::size_t base = count / w, extra = count % w;
  const std::size_t first = r * base + std::min(r, extra);
  return {first, first + base + (r < extra ? 1 : 0)};
}

namespace {

json ok_answer() {
  return {{"ok", true}};
}

json error_answer(const std::string& message, bool interrupted = false) {
  return {{"ok", false}, {"error", message}, {"interrupted", interrupted}};
}

std::vector<sdk::GenerationRequest> share_of(const std::vector<sdk::GenerationRequest>& requests,
                                             int rank,
                                             int world) {
  const auto [lo, hi] = rank_share(requests.size(), rank, world);
  return {requests.begin() + static_cast<std::ptrdiff_t>(lo),
          requests.begin() + static_cast<std::ptrdiff_t>(hi)};
}

json results_json(const std::vector<sdk::GenerationResult>& results) {
  json out = json::array();
  for (const auto& r : results) out.push_back(wire::to_json(r));
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Rank 0.

std::vector<sdk::GenerationResult> RankCoordinator::generate(
    const std::string& name,
    sdk::ModelBackend& local,
    const std::vector<sdk::GenerationRequest>& requests) {
  const int world = group_.world_size();
  json command = {{"op", "generate"}, {"model", name}, {"requests", json::array()}};
  for (const auto& r : requests) command["requests"].push_back(wire::to_json(r));
  group_.broadcast_bytes(wire::encode(command), "command (generate)");
  std::exception_ptr failure;
  std::vector<sdk::GenerationResult> mine;
  try {
    mine = local.generate(share_of(requests, 0, world));
  } catch (...) {
    failure = std::current_exception();
  }
  const std::vector<std::string> answers = group_.all_gather_bytes(
      wire::encode(failure ? error_answer("failed on rank 0")
                           : json{{"ok", true}, {"results", json::array()}}),
      "generation results of model '" + name + "'");
  if (failure) std::rethrow_exception(failure);
  std::vector<sdk::GenerationResult> out = std::move(mine);
  for (int r = 1; r < world; ++r) {
    const json a = wire::decode(answers[static_cast<std::size_t>(r)], "generation results");
    if (!a.at("ok").get<bool>())
      throw sdk::DistributedError("rank " + std::to_string(r) + ": generation with model '" + name +
                                  "' failed: " + a.at("error").get<std::string>());
    const auto [lo, hi] = rank_share(requests.size(), r, world);
    const json& results = a.at("results");
    if (results.size() != hi - lo)
      throw sdk::DistributedError("rank " + std::to_string(r) + " returned " +
                                  std::to_string(results.size()) + " results for " +
                                  std::to_string(hi - lo) + " requests");
    for (const auto& j : results) out.push_back(wire::result_from(j));
  }
  return out;
}

void RankCoordinator::reload(const std::string& name, const fs::path& checkpoint) {
  group_.broadcast_bytes(
      wire::encode({{"op", "reload"}, {"model", name}, {"path", checkpoint.string()}}),
      "command (reload)");
}

void RankCoordinator::suspend(const std::string& name) {
  group_.broadcast_bytes(wire::encode({{"op", "suspend"}, {"model", name}}), "command (suspend)");
}

void RankCoordinator::train(const std::string& optimizer_table,
                            const fs::path& checkpoint,
                            const std::vector<sdk::PreferencePair>& pairs,
                            const sdk::TrainingJob& job,
                            const std::function<void()>& train_here) {
  json command = {{"op", "train"},
                  {"optimizer", optimizer_table},
                  {"checkpoint", checkpoint.string()},
                  {"info", wire::to_json(job.info)},
                  {"state_dir", job.state_dir.string()},
                  {"pairs", json::array()}};
  for (const auto& p : pairs) command["pairs"].push_back(wire::to_json(p));
  group_.broadcast_bytes(wire::encode(command), "command (train)");
  try {
    train_here();
  } catch (const sdk::Interrupted&) {
    // Every rank stopped at the same step (the stop is agreed on): they answer, then finish().
    group_.all_gather_bytes(wire::encode(error_answer("interrupted", true)), "training outcome");
    throw;
  } catch (...) {
    // The other ranks may be inside a collective of the step this rank left: no answer round;
    // they stop when this process exits (and name it, from the store).
    synced_ = false;
    throw;
  }
  const std::vector<std::string> answers =
      group_.all_gather_bytes(wire::encode(ok_answer()), "training outcome");
  for (int r = 1; r < group_.world_size(); ++r) {
    const json a = wire::decode(answers[static_cast<std::size_t>(r)], "training outcome");
    if (!a.at("ok").get<bool>())
      throw sdk::DistributedError("rank " + std::to_string(r) +
                                  ": training failed: " + a.at("error").get<std::string>());
  }
}

void RankCoordinator::finish(const std::string& error, bool interrupted) noexcept {
  if (finished_ || !synced_) return;
  finished_ = true;
  try {
    group_.broadcast_bytes(
        wire::encode({{"op", "finish"}, {"error", error}, {"interrupted", interrupted}}),
        "command (finish)");
  } catch (const std::exception& e) {
    spdlog::debug("could not tell the other ranks that the run ended: {}", e.what());
  }
}

namespace {

/// Rank 0's model `name`: generate() sharded over the ranks, reload() and suspend() on every
/// rank's copy, the rest local.
class ShardedModel final : public sdk::ModelBackend {
 public:
  ShardedModel(std::shared_ptr<sdk::ModelBackend> local,
               std::string name,
               RankCoordinator& coordinator)
      : local_(std::move(local)), name_(std::move(name)), coordinator_(coordinator) {}

  sdk::ModelInfo info() const override { return local_->info(); }
  std::vector<sdk::GenerationResult> generate(
      const std::vector<sdk::GenerationRequest>& requests) override {
    return coordinator_.generate(name_, *local_, requests);
  }
  std::int64_t count_tokens(std::string_view text) const override {
    return local_->count_tokens(text);
  }
  std::vector<std::int64_t> tokenize(std::string_view text) const override {
    return local_->tokenize(text);
  }
  bool supports_prompt_text() const override { return local_->supports_prompt_text(); }
  void suspend() override {
    coordinator_.suspend(name_);
    local_->suspend();
  }
  std::vector<sdk::ScoreResult> score(const std::vector<sdk::ScoreRequest>& requests) override {
    return local_->score(requests);
  }
  sdk::TrainableModel* trainable() override { return local_->trainable(); }
  void reload(const fs::path& checkpoint_dir) override {
    coordinator_.reload(name_, checkpoint_dir);  // The other ranks load meanwhile.
    local_->reload(checkpoint_dir);
  }

 private:
  std::shared_ptr<sdk::ModelBackend> local_;
  std::string name_;
  RankCoordinator& coordinator_;
};

}  // namespace

std::shared_ptr<sdk::ModelBackend> shard_model(std::shared_ptr<sdk::ModelBackend> model,
                                               std::string name,
                                               RankCoordinator& coordinator) {
  return std::make_shared<ShardedModel>(std::move(model), std::move(name), coordinator);
}

// ---------------------------------------------------------------------------------------------
// The other ranks.

namespace {

class RankWorker {
 public:
  RankWorker(ProcessGroup& group,
             RunSession& session,
             const std::function<bool()>& stop_requested,
             std::int64_t check_every)
      : group_(group), session_(session), stop_(stop_requested), check_every_(check_every) {}

  RankWorkerResult run() {
    for (;;) {
      const json command = wire::decode(group_.broadcast_bytes({}, "command"), "command");
      const std::string op = command.at("op").get<std::string>();
      if (op == "finish") return finished(command);
      if (op == "generate")
        generate(command);
      else if (op == "reload")
        model(command.at("model").get<std::string>()).reload(command.at("path").get<std::string>());
      else if (op == "suspend")
        model(command.at("model").get<std::string>()).suspend();
      else if (op == "train")
        train(command);
      else
        throw sdk::DistributedError("rank 0 sent an unknown command '" + op +
                                    "'; are all ranks the same metareward build?");
    }
  }

 private:
  sdk::ModelBackend& model(const std::string& name) {
    session_.create_model(name);
    return session_.model(name);
  }

  RankWorkerResult finished(const json& command) {
    RankWorkerResult result;
    result.message = command.at("error").get<std::string>();
    if (command.at("interrupted").get<bool>())
      result.exit_code = 128 + SIGINT;
    else if (!result.message.empty())
      result.exit_code = 1;
    return result;
  }

  void generate(const json& command) {
    const std::string name = command.at("model").get<std::string>();
    std::vector<sdk::GenerationRequest> requests;
    for (const auto& j : command.at("requests")) requests.push_back(wire::request_from(j));
    json answer;
    try {
      session_.set_stage("generation for rank 0");
      const auto mine = share_of(requests, group_.rank(), group_.world_size());
      std::vector<sdk::GenerationResult> results;
      if (!mine.empty()) {
        const CallContext::ItemScope item("requests '" + mine.front().id + "' to '" +
                                          mine.back().id + "'");
        results = model(name).generate(mine);
      }
      answer = {{"ok", true}, {"results", results_json(results)}};
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      answer = error_answer(e.what());
    }
    group_.all_gather_bytes(wire::encode(answer), "generation results of model '" + name + "'");
  }

  void train(const json& command) {
    const std::string table = command.at("optimizer").get<std::string>();
    std::vector<sdk::PreferencePair> pairs;
    for (const auto& j : command.at("pairs")) pairs.push_back(wire::pair_from(j));
    json answer = ok_answer();
    try {
      sdk::Optimizer* optimizer =
          table == "optimizer" ? &session_.optimizer() : session_.seed_optimizer();
      if (optimizer == nullptr)
        throw sdk::PluginError("rank " + std::to_string(group_.rank()) + " has no [" + table +
                               "] optimizer");
      if (!session_.separate_train_model()) session_.create_model(session_.train_name());
      session_.set_stage("train (rank " + std::to_string(group_.rank()) + ")");
      sdk::TrainableModel* trainable =
          session_.train_model(command.at("checkpoint").get<std::string>()).trainable();
      if (trainable == nullptr)
        throw sdk::BackendError("model '" + session_.train_name() + "' cannot train");
      sdk::TrainingJob job;
      job.info = wire::info_from(command.at("info"));
      job.state_dir = command.at("state_dir").get<std::string>();  // Read to resume, not written.
      job.stop_requested = stop_;
      job.collective = group_.collective();
      job.check_replicas_every_steps = check_every_;
      (void)optimizer->train(*trainable, pairs, job);
      session_.release_train_model();
    } catch (const sdk::Interrupted& e) {
      answer = error_answer(e.what(), true);
    }
    // Any other error leaves this rank out of step with the others: it propagates, and the
    // process exits (run_command reports it to the store first).
    group_.all_gather_bytes(wire::encode(answer), "training outcome");
  }

  ProcessGroup& group_;
  RunSession& session_;
  std::function<bool()> stop_;
  std::int64_t check_every_;
};

}  // namespace

RankWorkerResult serve_rank_commands(ProcessGroup& group,
                                     RunSession& session,
                                     const std::function<bool()>& stop_requested,
                                     std::int64_t check_replicas_every_steps) {
  return RankWorker(group, session, stop_requested, check_replicas_every_steps).run();
}

}  // namespace mr::core
