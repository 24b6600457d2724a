// The stages of one iteration, each over the shared generation engine or one plugin call:
// prompts, actor, judge, actor pairs, meta-judge (+ judge pairs), train; and the seed stage
// (iteration 0). The run loop (run_loop.cpp) only sequences them; evaluation is
// RunSession::evaluate(). Internal to core/run.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "metareward/core/prompt_pool.hpp"
#include "metareward/core/run/run_directory.hpp"
#include "metareward/core/run/run_session.hpp"
#include "metareward/core/run/seed_stage.hpp"

namespace mr::core {

/// What every stage of iteration `t` works with.
struct StageContext {
  RunSession& session;
  const RunDirectory& dir;
  int t = 1;
  std::string tag;  ///< "iter 2/3", for progress bars and log lines.
  std::function<bool()> stop_requested;
  nlohmann::json& timings;  ///< timings.json being built: "stages" and "throughput".

  /// Names the stage in guarded-call messages: "judge, iteration 2".
  void enter(const std::string& stage) const;
};

/// Writes iter_t/prompts.jsonl (once) and returns the prompts by id.
std::map<std::string, const PoolPrompt*> run_prompts_stage(const StageContext& ctx,
                                                           const std::vector<PoolPrompt>& prompts);

/// Actor: K responses per prompt into responses.jsonl; returns the prompt groups read back.
std::vector<sdk::PromptGroup> run_actor_stage(
    const StageContext& ctx,
    const std::vector<PoolPrompt>& prompts,
    const std::map<std::string, const PoolPrompt*>& prompt_by_id);

/// Judge: N judgments per response into judgments.jsonl, attached to `groups`; returns the judge
/// metrics.
nlohmann::json run_judge_stage(const StageContext& ctx, std::vector<sdk::PromptGroup>& groups);

/// Actor pairs: the pair policy's selection, written to actor_pairs.jsonl.
sdk::PairSelectionResult run_actor_pair_stage(const StageContext& ctx,
                                              const std::vector<sdk::PromptGroup>& groups);

/// What the meta-judge stage gives the iteration.
struct MetaJudgeOutcome {
  std::vector<sdk::PreferencePair> judge_pairs;
  nlohmann::json metrics = nullptr;             ///< metrics.json "meta_judge".
  nlohmann::json judge_pair_metrics = nullptr;  ///< metrics.json "judge_pairs".
};

/// Meta-judge: plan battles, generate one verdict each into meta_judgments.jsonl, decide; judge
/// pairs written to judge_pairs.jsonl.
MetaJudgeOutcome run_meta_judge_stage(const StageContext& ctx,
                                      const std::vector<sdk::PromptGroup>& groups,
                                      std::int64_t actor_pairs);

/// iter_t/model trained by `optimizer` on `pairs` from the actor as loaded now (resuming from
/// iter_t/train_state; iter_t/adapter too when the optimizer trains a LoRA adapter), its steps
/// in train_metrics.jsonl; no pairs copies M_{t-1}. Nothing is trained when iter_t/model
/// exists. Returns {"steps", "final"} from the recorded steps.
nlohmann::json train_checkpoint(const StageContext& ctx,
                                sdk::Optimizer& optimizer,
                                const std::vector<sdk::PreferencePair>& pairs);

/// Train: the optimizer on the pooled pairs writes iter_t/model (resuming from train_state);
/// no pairs copies the previous model. Returns metrics.json "training".
nlohmann::json run_train_stage(const StageContext& ctx,
                               const std::vector<sdk::PreferencePair>& actor_pairs,
                               const std::vector<sdk::PreferencePair>& judge_pairs);

/// The seed stage (t = 0, [seed_sft]): the seed optimizer on `data` writes iter_0/model,
/// train_metrics.jsonl, timings.json and, last, metrics.json (which marks it complete).
void run_seed_stage(const StageContext& ctx, const SeedStageData& data);

}  // namespace mr::core
