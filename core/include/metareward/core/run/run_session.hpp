/// @file run_session.hpp
/// The plugin objects of one config in their roles — the models named by [roles], the rubric,
/// meta-judge strategy, pair policy, optimizer and evaluator — with the run's seed and threads.
/// Shared by `run`, `eval` and `config check`; every object is a guarded wrapper
/// (guarded_plugins.hpp), and set_stage() names the stage in their error messages.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "metareward/core/config_loader.hpp"
#include "metareward/core/run/guarded_plugins.hpp"

namespace mr::core {

class RankCoordinator;  // distributed_run.hpp

/// Stage codes of stage_seed(): 1 actor, 2 judge, 3 actor pairs, 4 meta-judge plan and decide,
/// 5 meta-judge generation, 6 training (also the seed stage's, as iteration 0), 7 evaluation.
enum class StageCode : int {
  Actor = 1,
  Judge = 2,
  ActorPairs = 3,
  MetaPlan = 4,
  MetaGeneration = 5,
  Train = 6,
  Evaluation = 7,
};

/// Stable seeds of the run: derive_seed chains over (run seed, iteration, stage).
std::uint64_t stage_seed(std::uint64_t run_seed, int iteration, int stage);

class RunSession {
 public:
  /// Reads seed, threads (0 = all cores) and the roles from `config`; constructs nothing yet.
  /// `run_dir` is what plugins see as HostContext::run_dir() (empty outside a run).
  RunSession(const PluginRegistry& registry,
             const ResolvedConfig& config,
             std::filesystem::path run_dir = {});

  /// Constructs the plugins that load no model: rubric, meta-judge strategy, pair policy,
  /// optimizer, the seed stage's optimizer (with a [seed_sft] table) and (with an [evaluation]
  /// table) the evaluator. `with_optimizer` false leaves both optimizers out (eval). Errors name
  /// the plugin and its table.
  void create_text_plugins(bool with_optimizer = true);
  /// Loads each model [roles] names once (a model in several roles is one object).
  void create_models();
  /// Loads model `name` ([models.NAME]) unless it is loaded (the other ranks of a distributed
  /// run load models on first use).
  void create_model(const std::string& name);
  /// True when model `name` is loaded.
  bool has_model(const std::string& name) const { return models_.count(name) > 0; }
  /// Rank 0 of a distributed run: models created from now on generate sharded over the ranks
  /// (except those that generate remotely) and reload on every rank.
  void distribute(RankCoordinator* coordinator) { coordinator_ = coordinator; }
  /// The coordinator given to distribute(); null in a one-process run and on the other ranks.
  RankCoordinator* coordinator() const { return coordinator_; }
  /// Divides the run's threads among `local_ranks` processes of one machine (at least one
  /// each). Call before any plugin is constructed.
  void share_threads(int local_ranks);
  /// [distributed] check_replicas_every_steps.
  std::int64_t check_replicas_every_steps() const;

  sdk::ModelBackend& model(const std::string& name) const;
  sdk::ModelBackend& actor() const { return model(actor_); }
  sdk::ModelBackend& judge() const { return model(judge_); }
  sdk::ModelBackend& meta_judge() const { return model(meta_judge_); }
  const std::string& actor_name() const { return actor_; }
  const std::string& judge_name() const { return judge_; }
  const std::string& meta_judge_name() const { return meta_judge_; }
  /// [roles] train: the model the trainer trains ("" in the config = the actor's).
  const std::string& train_name() const { return train_; }
  /// True when [roles] train names a model that plays no role (loaded only to train).
  bool separate_train_model() const;
  /// The model to train, holding `checkpoint`: the actor's model, or the [roles] train model,
  /// loaded now (and moved to `checkpoint` when its config loads another one).
  sdk::ModelBackend& train_model(const std::filesystem::path& checkpoint);
  /// Frees a separate train model after the train stage (a no-op otherwise).
  void release_train_model();
  /// The role models that serve the trained policy and reload each new checkpoint: the actor's
  /// model and those [roles] policy_models lists (a model in several roles is one object).
  std::vector<std::string> policy_models() const;
  /// The loaded models by name (after create_models()).
  const std::map<std::string, std::shared_ptr<sdk::ModelBackend>>& models() const {
    return models_;
  }

  sdk::JudgeRubric& rubric() const { return *rubric_; }
  sdk::MetaJudgeStrategy& meta() const { return *meta_; }
  sdk::PairSelectionPolicy& pair_policy() const { return *pair_policy_; }
  sdk::Optimizer& optimizer() const { return *optimizer_; }
  /// The [seed_sft] optimizer (iteration 0); null without that table or before
  /// create_text_plugins().
  sdk::Optimizer* seed_optimizer() const { return seed_optimizer_.get(); }
  /// True when the config has a [seed_sft] table: M_0 is iter_0/model, not the actor's path.
  bool has_seed_stage() const;
  /// True when the config has an [evaluation] table (one evaluator) or [evaluation.NAME] tables
  /// (several), after create_text_plugins().
  bool has_evaluation() const { return !evaluators_.empty(); }

  /// Names the stage in the messages of failing plugin calls ("judge, iteration 2").
  void set_stage(std::string stage) { context_->set_stage(std::move(stage)); }

  std::uint64_t seed() const { return seed_; }
  int threads() const { return threads_; }
  int iterations() const { return config_.iterations; }
  const ResolvedConfig& config() const { return config_; }
  const PluginRegistry& registry() const { return registry_; }
  /// (t, iterations, stage_seed(seed, t, stage)).
  sdk::IterationInfo info(int t, StageCode stage) const;

  /// Calls the evaluator(s) on the models as they are now, with iteration `t`'s evaluation seed,
  /// writing rows to `out_dir` and content-keyed caches to `cache_dir` (both created); returns
  /// the metrics, checked (evaluate_checked). With [evaluation.NAME] tables each evaluator writes
  /// to out_dir/NAME and its metrics are named "NAME/role/metric".
  std::map<std::string, double> evaluate(int t,
                                         const std::filesystem::path& out_dir,
                                         const std::filesystem::path& cache_dir,
                                         std::function<bool()> stop_requested);
  /// The model `[models.NAME]` for the evaluator (EvaluationRequest::model): a loaded role model
  /// or one loaded now and kept, generating on this process only (a strong judge is usually
  /// remote; a distributed run evaluates on rank 0). ConfigError without such a table.
  sdk::ModelBackend& evaluation_model(const std::string& name);

 private:
  template <class Interface>
  std::shared_ptr<Interface> make(const std::string& section);

  const PluginRegistry& registry_;
  const ResolvedConfig& config_;
  std::filesystem::path run_dir_;
  std::uint64_t seed_ = 0;
  int threads_ = 1;
  std::string actor_, judge_, meta_judge_, train_;
  std::shared_ptr<sdk::ModelBackend> train_model_;  ///< Only a separate [roles] train model.
  std::shared_ptr<CallContext> context_ = std::make_shared<CallContext>();
  std::map<std::string, std::shared_ptr<sdk::ModelBackend>> models_;
  /// Models only the evaluator uses (evaluation_model()).
  std::map<std::string, std::shared_ptr<sdk::ModelBackend>> evaluation_models_;
  std::shared_ptr<sdk::JudgeRubric> rubric_;
  std::shared_ptr<sdk::MetaJudgeStrategy> meta_;
  std::shared_ptr<sdk::PairSelectionPolicy> pair_policy_;
  std::shared_ptr<sdk::Optimizer> optimizer_;
  std::shared_ptr<sdk::Optimizer> seed_optimizer_;
  /// (config table, evaluator): [evaluation], or every [evaluation.NAME] in name order.
  std::vector<std::pair<std::string, std::shared_ptr<sdk::Evaluator>>> evaluators_;
  RankCoordinator* coordinator_ = nullptr;
};

/// Calls `evaluator` and checks what it returns: every metric named and finite. Errors name
/// `where` ("evaluator 'testbed' at iteration 2"); a failure inside evaluate() is reported by the
/// guard of a guarded evaluator (its ConfigError stays a ConfigError); sdk::Interrupted passes.
std::map<std::string, double> evaluate_checked(sdk::Evaluator& evaluator,
                                               const sdk::EvaluationRequest& request,
                                               const std::string& where);

}  // namespace mr::core
