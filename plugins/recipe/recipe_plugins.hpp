/// @file recipe_plugins.hpp
/// Registration of every plugin of the mr-recipe library. The function is an ordinary one (not
/// only the MR_PLUGIN entry point) so tests and static builds can register the plugins in-process.
#pragma once

#include "metareward/sdk/plugin.hpp"

namespace mr::plugins::recipe {

/// Library name and version reported by MR_PLUGIN.
inline constexpr const char* kLibraryName = "mr-recipe";
inline constexpr const char* kLibraryVersion = "0.1.0";

/// Registers: judge_rubric additive5, likert10; meta_judge pairwise_elo, none; pair_selection
/// length_control, best_worst.
void register_recipe_plugins(mr::sdk::Registrar& registrar);

}  // namespace mr::plugins::recipe
