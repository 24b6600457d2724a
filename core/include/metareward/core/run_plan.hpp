/// @file run_plan.hpp
/// The generation budget of a run (`metareward plan`): per iteration, how many prompts, actor,
/// judge and meta-judge generations and at most how many preference pairs, and the seed stage's
/// training steps, computed from the resolved config alone (no model is loaded). All counts are
/// upper bounds: duplicate responses, unparseable judgments and zero-variance responses only lower
/// them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "metareward/core/config_loader.hpp"

namespace mr::core {

/// One iteration's budget.
struct IterationPlan {
  int iteration = 1;
  std::int64_t prompts = 0;
  /// True when `prompts` is prompts.per_iteration because no actual slice size was given.
  bool prompts_planned = true;
  std::int64_t actor_samples = 0;      ///< K = generation.actor.samples for this iteration.
  std::int64_t judge_samples = 0;      ///< N = generation.judge.samples for this iteration.
  bool train_judge = false;            ///< run.train_judge for this iteration.
  std::int64_t actor_generations = 0;  ///< prompts x K
  std::int64_t judge_generations = 0;  ///< prompts x K x N
  /// Responses meta-judged (one per prompt, or all K under response_selection = "all"); 0 when
  /// the judge is not trained; nullopt when the meta-judge plugin's behaviour is unknown.
  std::optional<std::int64_t> meta_judged_responses;
  /// meta_judged_responses x N(N-1) (every unordered judgment pair, both orders).
  std::optional<std::int64_t> meta_judge_generations;
  std::int64_t max_actor_pairs = 0;             ///< One per prompt.
  std::optional<std::int64_t> max_judge_pairs;  ///< One per meta-judged response.
};

/// The seed stage of a config with [seed_sft] (iteration 0: supervised fine-tuning once).
struct SeedStagePlan {
  std::string optimizer;  ///< [seed_sft] type.
  std::string data;       ///< The data file, resolved against the config's directory.
  /// Training examples (one per assistant turn); nullopt when the file was not read.
  std::optional<std::int64_t> examples;
  /// The optimizer's `epochs` and `batch_size` keys; nullopt when its schema has no such key.
  std::optional<std::int64_t> epochs, batch_size;
  /// epochs x ceil(examples / batch_size): at most (the trainer drops examples too long for
  /// max_length); nullopt when a factor is unknown.
  std::optional<std::int64_t> steps;
};

/// A whole run's budget.
struct RunPlan {
  std::string config_file;
  std::string meta_judge;          ///< The meta_judge plugin ("pairwise_elo", "none", ...).
  std::string response_selection;  ///< pairwise_elo's response_selection; empty otherwise.
  /// Where the prompt counts come from ("per_iteration (prompt file ... not found)", "prompt
  /// pool of 20000 from 1 file"); set by the caller, printed under the table.
  std::string prompts_note;
  std::vector<IterationPlan> iterations;
  std::optional<SeedStagePlan> seed_stage;  ///< Only with a [seed_sft] table.
  /// Where the seed stage's example count comes from, or why it is unknown; set by the caller.
  std::string seed_note;

  /// Sums over iterations; nullopt when any iteration's value is unknown.
  std::int64_t total_prompts() const;
  std::int64_t total_actor_generations() const;
  std::int64_t total_judge_generations() const;
  std::optional<std::int64_t> total_meta_judge_generations() const;
  std::int64_t total_max_actor_pairs() const;
  std::optional<std::int64_t> total_max_judge_pairs() const;
};

/// Computes the budget of `config`. `actual_prompts`, when given, holds the real slice size of
/// each iteration (index 0 = iteration 1; must have config.iterations entries), else
/// prompts.per_iteration is used and marked planned. Meta-judge counts are known for
/// "pairwise_elo" (response_selection max_variance | random: one response per prompt; all: K)
/// and "none" (0); another meta_judge plugin gives nullopt. `seed_examples` is the number of
/// [seed_sft] examples when the caller read the data. Throws sdk::ConfigError when a count
/// overflows 64 bits or `actual_prompts` has the wrong length.
RunPlan plan_run(const ResolvedConfig& config,
                 const std::optional<std::vector<std::int64_t>>& actual_prompts = std::nullopt,
                 std::optional<std::int64_t> seed_examples = std::nullopt);

/// The plan as an aligned text table with totals and footnotes.
std::string format_plan_table(const RunPlan& plan);

/// The plan as one JSON document (unknown counts are null).
std::string format_plan_json(const RunPlan& plan);

}  // namespace mr::core
