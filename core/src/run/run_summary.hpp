// Log text of a run: durations, the per-iteration summary table, the evaluation line.
// Internal to core/run.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace mr::core {

/// "1.25s" / "12.5s".
std::string duration(double seconds);
/// `v` with `digits` decimals.
std::string fixed(double v, int digits);
/// "actor/score 2.9, judge/spearman 0.41" (4 significant digits); "(no metrics)" when empty.
std::string evaluation_line(const nlohmann::json& evaluation);
/// Logs the summary of iteration `t` from its metrics.json and timings.json contents.
void log_summary(int t,
                 int iterations,
                 bool with_evaluation,
                 const nlohmann::json& metrics,
                 const nlohmann::json& timings);

}  // namespace mr::core
