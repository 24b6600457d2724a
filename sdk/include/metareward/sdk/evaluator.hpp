/// @file evaluator.hpp
/// The evaluator plugin kind: the loop's optional evaluation hook. After every iteration (and
/// once for the seed model) the host hands the evaluator the models in their roles; it measures
/// them on its own held-out data and returns named numbers, recorded in the iteration's
/// metrics.json under "evaluation". Also run by `metareward eval`. Text-level; no libtorch.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <string>

#include "metareward/sdk/judge_rubric.hpp"
#include "metareward/sdk/meta_judge.hpp"
#include "metareward/sdk/model_backend.hpp"
#include "metareward/sdk/types.hpp"

namespace mr::sdk {

/// What one evaluation sees. All pointers are non-null and owned by the host; they stay valid
/// for the duration of the evaluate() call only.
struct EvaluationRequest {
  /// iteration 0 = the seed model (before the first iteration); seed derived for this call.
  IterationInfo info;
  ModelBackend* actor = nullptr;        ///< The model in the actor role (M_t).
  ModelBackend* judge = nullptr;        ///< The model in the judge role.
  ModelBackend* meta_judge = nullptr;   ///< The model in the meta-judge role.
  const JudgeRubric* rubric = nullptr;  ///< The run's rubric: builds and parses judge prompts.
  MetaJudgeStrategy* meta = nullptr;    ///< The run's meta-judge strategy (plan/decide).
  /// A directory the evaluator may write its per-item rows to (created by the host; e.g.
  /// RUN/iter_2/eval). Evaluations of earlier iterations are in the sibling iter_*/eval
  /// directories of the same run (RUN/iter_0/eval for the seed model).
  std::filesystem::path output_dir;
  /// A directory that outlives this call and is shared by every evaluation of the run
  /// (RUN/eval_cache; OUT/cache for `metareward eval`), for results keyed by their content, e.g.
  /// a judge's verdict on a pair of outputs or a fixed baseline's answers, so that a re-run, a
  /// resumed evaluation or a later iteration asks a model only for new items. Created by the
  /// host; never emptied by it.
  std::filesystem::path cache_dir;
  /// The model of the run config's `[models.NAME]` table (e.g. a strong judge or a baseline
  /// model that plays no role in training), loaded on first use and kept for the run. Throws
  /// sdk::ConfigError naming the config when it has no such table. Never null in a host request.
  std::function<ModelBackend*(const std::string& name)> model;
  /// Polled by long evaluations; true means stop and throw sdk::Interrupted.
  std::function<bool()> stop_requested;
};

/// Named results, e.g. {"actor/oracle_score": 2.9, "judge/spearman": 0.41}. Keys are
/// "role/metric"; values must be finite.
struct EvaluationResult {
  std::map<std::string, double> metrics;
};

/// Evaluates models. Created once per run from the `[evaluation]` table (absent table: no
/// evaluation); evaluate() is called from the host's main thread. Must be deterministic given
/// the models and `info.seed`.
class Evaluator {
 public:
  virtual ~Evaluator();

  /// Required. Measures the models of `request`.
  virtual EvaluationResult evaluate(const EvaluationRequest& request) = 0;
};

}  // namespace mr::sdk
