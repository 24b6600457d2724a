// register_evaluator_plugins (evaluators.hpp).
#include "metareward/evaluators/evaluators.hpp"

namespace mr::plugins::evaluators {

void register_evaluator_plugins(sdk::Registrar& registrar) {
  registrar.add<sdk::Evaluator>(
      "pairwise_winrate", kLibraryVersion,
      "AlpacaEval-2-style win rate and length-controlled win rate against a baseline, judged "
      "pairwise, with bootstrap CIs.",
      pairwise_winrate_schema(), make_pairwise_winrate);
  registrar.add<sdk::Evaluator>(
      "arena_score", kLibraryVersion,
      "Arena-Hard-style Bradley-Terry score against a baseline (two games per question, "
      "strength-weighted verdicts, optional style control), with bootstrap percentiles.",
      arena_score_schema(), make_arena_score);
  registrar.add<sdk::Evaluator>(
      "judge_agreement", kLibraryVersion,
      "The model as judge (the run's rubric) on labelled or strong-judge-relabelled preference "
      "pairs: agreement, ties, Spearman, parse failures.",
      judge_agreement_schema(), make_judge_agreement);
}

}  // namespace mr::plugins::evaluators
