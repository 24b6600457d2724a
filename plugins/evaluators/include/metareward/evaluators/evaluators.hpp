// The evaluator plugins of mr-evaluators: pairwise_winrate (AlpacaEval-2-style win rate and
// length-controlled win rate), arena_score (Arena-Hard-style Bradley-Terry score) and
// judge_agreement (the judge's agreement with labelled or strong-judge-relabelled pairs).
#pragma once

#include <memory>

#include "metareward/sdk/evaluator.hpp"
#include "metareward/sdk/plugin.hpp"

namespace mr::plugins::evaluators {

inline constexpr const char* kLibraryName = "mr-evaluators";
inline constexpr const char* kLibraryVersion = "0.1.0";

sdk::Schema pairwise_winrate_schema();
sdk::Schema arena_score_schema();
sdk::Schema judge_agreement_schema();

std::unique_ptr<sdk::Evaluator> make_pairwise_winrate(sdk::HostContext& ctx);
std::unique_ptr<sdk::Evaluator> make_arena_score(sdk::HostContext& ctx);
std::unique_ptr<sdk::Evaluator> make_judge_agreement(sdk::HostContext& ctx);

/// Registers the three evaluators.
void register_evaluator_plugins(sdk::Registrar& registrar);

}  // namespace mr::plugins::evaluators
