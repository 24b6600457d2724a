/// @file evaluator.hpp
/// The testbed's evaluator plugin `testbed` (`[evaluation] type = "testbed"`): measures the actor,
/// the judge and the meta-judge against the oracle on the held-out eval prompts that
/// `metareward testbed data` wrote. The testbed's analogue of the paper's AlpacaEval and
/// judge-agreement tables. Text-level; no libtorch.
///
/// Metrics (keys "role/metric"):
/// - actor: `oracle_score` (mean 0–5), `exact_accuracy` (share scoring 5), `correct_accuracy`
///   (share meeting criterion 4), `mean_length_chars`, `win_rate_vs_seed` (against the seed
///   model's answers stored at iteration 0; ties count 0.5);
/// - judge: `pairwise_accuracy`, `spearman`, `parse_failure_rate`, `mean_score`,
///   `score_hist_0` .. `score_hist_5`, `length_bias`;
/// - meta_judge: `accuracy`, `parse_failure_rate`, `position_a_rate`.
/// The README's table defines each one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "metareward/sdk/config.hpp"
#include "metareward/sdk/evaluator.hpp"
#include "metareward/sdk/host.hpp"
#include "metareward/testbed/oracle.hpp"
#include "metareward/testbed/tasks.hpp"

namespace mr::plugins::testbed {

/// Config schema of the `testbed` evaluator: prompts (required), max_prompts,
/// actor_max_new_tokens, judge_max_new_tokens, meta_judge_max_new_tokens, judge_samples,
/// temperature, batch_size, judge_pairs.
mr::sdk::Schema testbed_evaluator_schema();

/// The evaluator's settings, read from its validated config.
struct EvaluatorOptions {
  /// eval_prompts.jsonl; a relative path is relative to the current directory.
  std::filesystem::path prompts;
  std::int64_t max_prompts = 200;  ///< The first N rows of `prompts` are used.
  int actor_max_new_tokens = 64;
  int judge_max_new_tokens = 64;
  int meta_judge_max_new_tokens = 48;
  int judge_samples = 1;     ///< Judgments per judged response (their mean is its score).
  double temperature = 0.0;  ///< All three roles; 0 = greedy, else plain sampling (top_p 1).
  int batch_size = 32;       ///< Requests per generate() call (stop requests are polled between).
  std::int64_t judge_pairs = 100;  ///< Meta-judge items; each is shown in both orders.

  /// Reads the keys of testbed_evaluator_schema() from `config`.
  static EvaluatorOptions from_config(const mr::sdk::Config& config);
};

/// One held-out prompt: the row's id and its task (answer checked).
struct EvalPrompt {
  std::string id;
  TaskInstance task;
};

/// The first `max_rows` rows of an eval_prompts.jsonl file ({"id", "prompt", "task", "answer"}).
/// Throws mr::sdk::DataError naming the file and line for a missing file, a malformed row, an
/// unknown task, a wrong answer or a repeated id, and when the file has no rows.
std::vector<EvalPrompt> read_eval_prompts(const std::filesystem::path& file, std::int64_t max_rows);

/// A response of known quality shown to the judge.
struct JudgeCandidate {
  /// "model" (the actor's own answer), "bare_correct", "verbose_correct", "wrong" (a plausible
  /// mistake) or "off_task" (the answer to another family's task).
  std::string kind;
  std::string text;
};

/// The teacher's four candidates for `task`, in the order bare_correct, verbose_correct, wrong,
/// off_task. Deterministic per prompt text (not per run or iteration), so every evaluation of
/// every run judges the same responses besides the model's own.
std::vector<JudgeCandidate> teacher_candidates(const TaskInstance& task);

/// One judged response for the agreement metrics.
struct JudgedItem {
  std::size_t group = 0;              ///< Responses to the same prompt share a group.
  double oracle = 0.0;                ///< Oracle score.
  std::optional<double> judge_score;  ///< Judge's (mean) score; nullopt when nothing parsed.
};

/// Share of pairs of items in the same group with different oracle scores whose judge scores
/// order them the same way; equal judge scores count 0.5. Items without a judge score are left
/// out. nullopt when there is no such pair.
std::optional<double> pairwise_accuracy(const std::vector<JudgedItem>& items);

/// Spearman rank correlation of `x` and `y` (equal sizes): Pearson correlation of their ranks,
/// tied values sharing their average rank. nullopt for fewer than two values or when either side
/// is constant (a constant judge has no rank order).
std::optional<double> spearman(const std::vector<double>& x, const std::vector<double>& y);

/// The `testbed` evaluator. Reads the eval prompts when constructed (so a bad path fails before
/// the run starts); evaluate() is deterministic given the models and `info.seed`.
class TestbedEvaluator final : public mr::sdk::Evaluator {
 public:
  /// Reads its config from `ctx.config()`; throws mr::sdk::ConfigError when the prompts file
  /// cannot be read (the message names the key and the resolved path) or mr::sdk::DataError for
  /// a malformed row.
  explicit TestbedEvaluator(mr::sdk::HostContext& ctx);

  /// Generates, grades and writes per-item rows to `request.output_dir` (answers.jsonl,
  /// judgments.jsonl, meta_judgments.jsonl; nothing is written when it is empty). Throws
  /// mr::sdk::Interrupted when `request.stop_requested` says so between batches.
  mr::sdk::EvaluationResult evaluate(const mr::sdk::EvaluationRequest& request) override;

  /// The options in use.
  const EvaluatorOptions& options() const { return options_; }
  /// The eval prompts in use (at most max_prompts).
  const std::vector<EvalPrompt>& prompts() const { return prompts_; }

 private:
  mr::sdk::HostContext& ctx_;
  EvaluatorOptions options_;
  std::vector<EvalPrompt> prompts_;
};

}  // namespace mr::plugins::testbed
