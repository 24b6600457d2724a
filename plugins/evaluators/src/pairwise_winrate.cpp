// The `pairwise_winrate` evaluator: AlpacaEval-2-style win rate and length-controlled win rate
// of the actor against a baseline, judged pairwise, with bootstrap confidence intervals.
#include <cmath>

#include "metareward/evaluators/evaluators.hpp"
#include "metareward/evaluators/head_to_head.hpp"
#include "metareward/evaluators/win_rates.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::plugins::evaluators {

namespace {

constexpr std::uint64_t kStreamBootstrap = 0x7077426f6f747374ULL;  // "pwBootst"

/// The preference for the model of `item`'s parsed games (ties 0.5); nullopt when none parsed.
std::optional<double> preference(const HeadToHeadItem& item) {
  double sum = 0;
  int n = 0;
  for (const auto& g : item.games) {
    if (!g.outcome) continue;
    sum += *g.outcome > 0 ? 1.0 : (*g.outcome < 0 ? 0.0 : 0.5);
    ++n;
  }
  if (n == 0) return std::nullopt;
  return sum / n;
}

class PairwiseWinrate final : public sdk::Evaluator {
 public:
  explicit PairwiseWinrate(sdk::HostContext& ctx) : ctx_(ctx), template_(ctx.config()), lc_{} {
    const sdk::Config& c = ctx.config();
    lc_.penalty = parse_penalty(c.get_string("lc_penalty"));
    lc_.lambda = c.get_float("lc_lambda");
  }

  sdk::EvaluationResult evaluate(const sdk::EvaluationRequest& request) override {
    const sdk::Config& c = ctx_.config();
    const HeadToHead games = play_head_to_head(c, request, ctx_, template_);
    log_head_to_head(games, ctx_, "pairwise_winrate");

    std::vector<PreferenceItem> items;
    std::vector<nlohmann::json> rows = head_to_head_rows(games);
    double model_chars = 0, baseline_chars = 0;
    std::size_t ties = 0, truncated = 0;
    for (std::size_t i = 0; i < games.items.size(); ++i) {
      const HeadToHeadItem& item = games.items[i];
      const auto p = preference(item);
      rows[i]["preference"] = p ? nlohmann::json(*p) : nlohmann::json(nullptr);
      if (!p) continue;
      PreferenceItem pi;
      pi.preference = *p;
      pi.model_chars = rows[i]["length_chars"].get<double>();
      pi.baseline_chars = rows[i]["baseline_length_chars"].get<double>();
      pi.difficulty = item.instruction.difficulty;
      model_chars += pi.model_chars;
      baseline_chars += pi.baseline_chars;
      ties += *p == 0.5;
      truncated += item.model_truncated;
      items.push_back(pi);
    }
    write_rows_atomic(request.output_dir / "pairwise_winrate.jsonl", rows);
    if (items.empty())
      throw sdk::DataError("pairwise_winrate: no instruction was judged (" +
                           std::to_string(games.parse_failures) + " verdicts did not parse, " +
                           std::to_string(games.verdict_failures) + " judge calls failed); see " +
                           (request.output_dir / "pairwise_winrate.jsonl").string());

    std::vector<std::size_t> all(items.size());
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
    const LcEstimate point = length_controlled_win_rate(items, all, lc_);
    const int rounds = static_cast<int>(c.get_int("bootstrap_rounds"));
    const double confidence = c.get_float("confidence");
    const std::uint64_t seed = sdk::derive_seed(request.info.seed, kStreamBootstrap);
    const BootstrapResult wr =
        bootstrap(items.size(), rounds, confidence, seed, [&](const auto& s) {
          double sum = 0;
          for (std::size_t i : s) sum += items[i].preference;
          return std::optional<double>(100.0 * sum / static_cast<double>(s.size()));
        });
    const BootstrapResult lc =
        bootstrap(items.size(), rounds, confidence, seed, [&](const auto& s) {
          return std::optional<double>(length_controlled_win_rate(items, s, lc_).lc_win_rate);
        });

    // Standard error of the raw win rate (AlpacaEval reports SEM × 100).
    double var = 0;
    for (const auto& it : items) var += std::pow(100.0 * it.preference - point.win_rate, 2);
    const double n = static_cast<double>(items.size());
    const double sem = items.size() > 1 ? std::sqrt(var / (n - 1) / n) : 0.0;

    const double gap = std::fabs(point.lc_win_rate - point.win_rate);
    const double bound = std::min(point.win_rate, 100.0 - point.win_rate);
    if (gap > std::max(10.0, bound / 4.0))
      ctx_.logger().log(sdk::LogLevel::Warn,
                        "pairwise_winrate: the LC win rate (" + std::to_string(point.lc_win_rate) +
                            ") differs from the raw win rate (" + std::to_string(point.win_rate) +
                            ") by more than max(10, a quarter of the distance to the bound): the "
                            "length term dominates; check the answers' lengths");
    if (!point.converged)
      ctx_.logger().log(sdk::LogLevel::Warn,
                        "pairwise_winrate: the LC GLM did not converge (separable preferences, "
                        "e.g. every instruction won or lost); the LC win rate is at its bound");

    sdk::EvaluationResult out;
    auto& m = out.metrics;
    put_with_ci(m, "actor/win_rate", point.win_rate, wr.low, wr.high);
    put_with_ci(m, "actor/lc_win_rate", point.lc_win_rate, lc.low, lc.high);
    m["actor/win_rate/standard_error"] = sem;
    m["actor/lc_length_coef"] = point.length_coef;
    m["actor/avg_length"] = model_chars / n;
    m["baseline/avg_length"] = baseline_chars / n;
    m["actor/judged_instructions"] = n;
    m["actor/ties"] = static_cast<double>(ties);
    m["actor/truncated_answers"] = static_cast<double>(truncated);
    m["actor/answer_failures"] = static_cast<double>(games.answer_failures);
    m["judge/verdict_parse_failures"] = static_cast<double>(games.parse_failures);
    m["judge/verdict_failures"] = static_cast<double>(games.verdict_failures);
    m["data/dropped_rows"] = static_cast<double>(games.drops.count());
    return out;
  }

 private:
  sdk::HostContext& ctx_;
  PairwiseTemplate template_;
  LcOptions lc_;
};

}  // namespace

HeadToHeadDefaults alpaca_style_defaults() {
  HeadToHeadDefaults d;
  d.judge_system =
      "You compare the answers of two AI assistants to the same instruction and decide which "
      "one a careful human expert would prefer.";
  d.judge_template =
      "Instruction:\n{instruction}\n\n"
      "[Output (a)]\n{output_a}\n[End of output (a)]\n\n"
      "[Output (b)]\n{output_b}\n[End of output (b)]\n\n"
      "Which output follows the instruction better: which is more helpful, accurate, relevant "
      "and complete? Do not prefer an output for its length or its position. Think briefly, "
      "then end with exactly one verdict line: [[A]] if output (a) is better, [[B]] if output "
      "(b) is better.";
  d.verdict_regex = R"(\[\[\s*(A|B)\s*\]\])";
  d.verdict_labels = {"A=1", "B=-1"};
  d.order = "random";
  d.bootstrap_rounds = 1000;
  return d;
}

sdk::Schema pairwise_winrate_schema() {
  sdk::Schema s = head_to_head_schema(alpaca_style_defaults());
  s.push_back(sdk::ParamSpec::string_("lc_penalty", "l2",
                                      "Penalty of the LC GLM on the length and difficulty "
                                      "coefficients (never on the model-strength term): 'l2', "
                                      "'l1' (AlpacaEval uses L1 with a cross-validated "
                                      "strength), or 'none'.")
                  .one_of({"l2", "l1", "none"}));
  s.push_back(sdk::ParamSpec::float_("lc_lambda", 0.01,
                                     "Strength λ of lc_penalty (per unit weight of the rows).")
                  .range(0.0, {}));
  return s;
}

std::unique_ptr<sdk::Evaluator> make_pairwise_winrate(sdk::HostContext& ctx) {
  return std::make_unique<PairwiseWinrate>(ctx);
}

}  // namespace mr::plugins::evaluators
