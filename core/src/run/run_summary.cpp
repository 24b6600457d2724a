// The per-iteration summary the run logs (run_summary.hpp).
#include "run_summary.hpp"

#include <iomanip>
#include <sstream>

#include <spdlog/spdlog.h>

namespace mr::core {

using json = nlohmann::json;

std::string duration(double seconds) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(seconds < 10 ? 2 : 1) << seconds << "s";
  return s.str();
}

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

/// "actor/score 2.9, judge/spearman 0.41" (4 significant digits); "(no metrics)" when empty.
std::string evaluation_line(const json& evaluation) {
  std::ostringstream s;
  s << std::setprecision(4);
  for (const auto& [key, value] : evaluation.items()) {
    if (s.tellp() > 0) s << ", ";
    s << key << " ";
    if (value.is_number())
      s << value.get<double>();
    else
      s << "-";
  }
  return s.tellp() > 0 ? s.str() : "(no metrics)";
}

void log_summary(int t, int iterations, bool with_evaluation, const json& m, const json& timings) {
  std::ostringstream s;
  auto num = [](const json& v, int digits) {
    return v.is_number() ? fixed(v.get<double>(), digits) : std::string("-");
  };
  const json& j = m["judge"];
  s << "iteration " << t << "/" << iterations << " summary\n";
  s << "  prompts            " << m["prompts"].get<std::int64_t>() << ", responses "
    << m["actor"]["responses"].get<std::int64_t>() << " (mean "
    << num(m["actor"]["mean_length_chars"], 1) << " chars, "
    << m["actor"]["finish_length"].get<std::int64_t>() << " hit max_new_tokens)\n";
  s << "  judgments          " << j["judgments"].get<std::int64_t>() << ", parse failures "
    << j["parse_failures"].get<std::int64_t>() << " ("
    << fixed(100 * j["parse_failure_rate"].get<double>(), 1) << "%), score mean "
    << num(j["score_mean"], 2) << " sd " << num(j["score_std"], 2) << "\n";
  s << "  score histogram   ";
  for (const auto& [bin, n] : j["score_histogram"].items())
    s << " " << bin << ":" << n.get<std::int64_t>();
  s << "\n";
  const json& ap = m["actor_pairs"];
  s << "  actor pairs        " << ap["pairs"].get<std::int64_t>() << " (chosen "
    << num(ap["chosen_length_mean"], 1) << " vs rejected " << num(ap["rejected_length_mean"], 1)
    << " chars; scores " << num(ap["chosen_score_mean"], 2) << " vs "
    << num(ap["rejected_score_mean"], 2) << ")";
  if (!ap["drops"].empty()) {
    s << ", dropped:";
    for (const auto& [k, v] : ap["drops"].items()) s << " " << k << "=" << v.get<std::int64_t>();
  }
  s << "\n";
  if (!m["meta_judge"].is_null()) {
    const json& d = m["meta_judge"]["diagnostics"];
    s << "  meta-judge         " << m["meta_judge"]["battles"].get<std::int64_t>()
      << " battles, positional bias "
      << (d.contains("positional_bias") ? num(d["positional_bias"], 3) : "-") << ", score bias "
      << (d.contains("score_bias") ? num(d["score_bias"], 3) : "-") << ", judge pairs "
      << m["judge_pairs"]["pairs"].get<std::int64_t>() << "\n";
  } else {
    s << "  meta-judge         (judge not trained this iteration)\n";
  }
  const json& f = m["training"]["final"];
  s << "  training           " << m["training"]["pairs"].get<std::int64_t>() << " pairs, "
    << m["training"]["steps"].get<std::int64_t>() << " steps; last step loss "
    << (f.contains("loss") ? num(f["loss"], 4) : "-") << " accuracy "
    << (f.contains("accuracy") ? num(f["accuracy"], 3) : "-") << " margin "
    << (f.contains("margin") ? num(f["margin"], 3) : "-") << "\n";
  if (with_evaluation) s << "  evaluation         " << evaluation_line(m["evaluation"]) << "\n";
  s << "  stage times       ";
  for (const auto& [stage, sec] : timings["stages"].items())
    s << " " << stage << " " << duration(sec.get<double>());
  spdlog::info("{}", s.str());
}

}  // namespace mr::core
