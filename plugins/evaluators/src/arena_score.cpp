// The `arena_score` evaluator: Arena-Hard-style score of the actor against a baseline. Two games
// per question with the positions swapped, strength-weighted verdicts, a Bradley-Terry fit with
// bootstrap percentiles, optional style control (length and markdown density).
#include <array>
#include <cctype>
#include <cmath>

#include "metareward/evaluators/evaluators.hpp"
#include "metareward/evaluators/head_to_head.hpp"
#include "metareward/evaluators/win_rates.hpp"
#include "metareward/sdk/error.hpp"
#include "text_util.hpp"  // mr_recipe_impl

namespace mr::plugins::evaluators {

namespace {

constexpr std::uint64_t kStreamBootstrap = 0x617242006f6f7473ULL;

/// Markdown elements outside fenced code blocks: headers, list items, bold spans.
std::array<double, 3> markdown_counts(const std::string& text) {
  // Fenced code blocks removed by a scan (std::regex recurses per character on long text).
  std::string plain;
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t open = text.find("```", pos);
    if (open == std::string::npos) {
      plain.append(text, pos, std::string::npos);
      break;
    }
    plain.append(text, pos, open - pos);
    const std::size_t close = text.find("```", open + 3);
    pos = close == std::string::npos ? text.size() : close + 3;
  }
  std::array<double, 3> counts{0, 0, 0};
  std::size_t begin = 0;
  while (begin <= plain.size()) {
    std::size_t end = plain.find('\n', begin);
    if (end == std::string::npos) end = plain.size();
    const std::string line = plain.substr(begin, end - begin);
    const auto first = line.find_first_not_of(" \t");
    if (first != std::string::npos) {
      const std::string l = line.substr(first);
      std::size_t hashes = 0;
      while (hashes < l.size() && l[hashes] == '#') ++hashes;
      if (hashes >= 1 && hashes <= 6 && hashes < l.size() && l[hashes] == ' ') counts[0] += 1;
      if (l.size() > 1 && (l[0] == '-' || l[0] == '*' || l[0] == '+') && l[1] == ' ')
        counts[1] += 1;
      std::size_t digits = 0;
      while (digits < l.size() && std::isdigit(static_cast<unsigned char>(l[digits]))) ++digits;
      if (digits > 0 && digits + 1 < l.size() && l[digits] == '.' && l[digits + 1] == ' ')
        counts[1] += 1;
    }
    begin = end + 1;
  }
  for (std::size_t pos = plain.find("**"); pos != std::string::npos;) {
    const std::size_t close = plain.find("**", pos + 2);
    if (close == std::string::npos) break;
    counts[2] += 1;
    pos = plain.find("**", close + 2);
  }
  return counts;
}

double normalised_difference(double a, double b) {
  return a + b > 0 ? (a - b) / (a + b) : 0.0;
}

class ArenaScore final : public sdk::Evaluator {
 public:
  explicit ArenaScore(sdk::HostContext& ctx) : ctx_(ctx), template_(ctx.config()) {
    options_.strong_weight = ctx.config().get_float("strong_weight");
    options_.style_control = ctx.config().get_bool("style_control");
  }

  sdk::EvaluationResult evaluate(const sdk::EvaluationRequest& request) override {
    const sdk::Config& c = ctx_.config();
    const HeadToHead result = play_head_to_head(c, request, ctx_, template_);
    log_head_to_head(result, ctx_, "arena_score");

    std::vector<ArenaGame> games;
    std::vector<std::vector<std::size_t>> games_of_item;
    std::array<double, 5> verdicts{0, 0, 0, 0, 0};  // -2..2 from the model's side
    for (const HeadToHeadItem& item : result.items) {
      const double lm = static_cast<double>(recipe::utf8_length(item.model_output));
      const double lb = static_cast<double>(recipe::utf8_length(item.baseline_output));
      const auto mm = markdown_counts(item.model_output),
                 mb = markdown_counts(item.baseline_output);
      std::vector<double> style{normalised_difference(lm, lb)};
      for (std::size_t k = 0; k < 3; ++k) style.push_back(normalised_difference(mm[k], mb[k]));
      std::vector<std::size_t> mine;
      for (const Game& g : item.games) {
        if (!g.outcome) continue;
        mine.push_back(games.size());
        games.push_back({*g.outcome, style});
        verdicts[static_cast<std::size_t>(*g.outcome + 2)] += 1;
      }
      if (!mine.empty()) games_of_item.push_back(std::move(mine));
    }
    write_rows_atomic(request.output_dir / "arena_score.jsonl", head_to_head_rows(result));
    if (games.empty())
      throw sdk::DataError("arena_score: no game was judged (" +
                           std::to_string(result.parse_failures) + " verdicts did not parse, " +
                           std::to_string(result.verdict_failures) + " judge calls failed); see " +
                           (request.output_dir / "arena_score.jsonl").string());

    auto fit_items = [&](const std::vector<std::size_t>& items) {
      std::vector<std::size_t> subset;
      for (std::size_t i : items)
        subset.insert(subset.end(), games_of_item[i].begin(), games_of_item[i].end());
      return arena_win_rate(games, subset, options_);
    };
    std::vector<std::size_t> all(games_of_item.size());
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
    const double point = fit_items(all);
    const BootstrapResult b = bootstrap(
        games_of_item.size(), static_cast<int>(c.get_int("bootstrap_rounds")),
        c.get_float("confidence"), sdk::derive_seed(request.info.seed, kStreamBootstrap),
        [&](const std::vector<std::size_t>& s) { return std::optional<double>(fit_items(s)); });

    sdk::EvaluationResult out;
    auto& m = out.metrics;
    // Arena-Hard reports the bootstrap mean, and the median under style control.
    put_with_ci(m, "actor/arena_score", options_.style_control ? b.median : b.mean, b.low, b.high);
    m["actor/arena_score/point"] = point;
    m["actor/arena_games"] = static_cast<double>(games.size());
    const char* names[] = {"much_worse", "worse", "tie", "better", "much_better"};
    for (std::size_t k = 0; k < 5; ++k)
      m[std::string("actor/arena_verdicts/") + names[k]] = verdicts[k];
    m["actor/answer_failures"] = static_cast<double>(result.answer_failures);
    m["judge/verdict_parse_failures"] = static_cast<double>(result.parse_failures);
    m["judge/verdict_failures"] = static_cast<double>(result.verdict_failures);
    m["data/dropped_rows"] = static_cast<double>(result.drops.count());
    return out;
  }

 private:
  sdk::HostContext& ctx_;
  PairwiseTemplate template_;
  ArenaOptions options_;
};

}  // namespace

HeadToHeadDefaults arena_style_defaults() {
  HeadToHeadDefaults d;
  d.judge_system =
      "You are an impartial judge of AI assistants. Write your own answer to the user's prompt "
      "first, then compare both assistants' answers with it: find and correct mistakes, and "
      "judge helpfulness, relevance, concision and what is missing. Do not let the answers' "
      "order, length or the assistants' names sway you.";
  d.judge_template =
      "<|User Prompt|>\n{instruction}\n\n"
      "<|The Start of Assistant A's Answer|>\n{output_a}\n<|The End of Assistant A's Answer|>\n\n"
      "<|The Start of Assistant B's Answer|>\n{output_b}\n<|The End of Assistant B's Answer|>\n\n"
      "End with one verdict label: [[A>>B]] (A is significantly better), [[A>B]] (A is "
      "slightly better), [[A=B]] (a tie), [[B>A]] (B is slightly better) or [[B>>A]] (B is "
      "significantly better).";
  d.verdict_regex = R"(\[\[\s*([AB]\s*(?:>>|>|=)\s*[AB])\s*\]\])";
  d.verdict_labels = {"A>>B=2", "A>B=1", "A=B=0", "B=A=0", "B>A=-1", "B>>A=-2"};
  d.order = "both";
  d.bootstrap_rounds = 100;
  d.confidence = 0.90;  // 5th-95th percentile, as Arena-Hard reports.
  return d;
}

sdk::Schema arena_score_schema() {
  sdk::Schema s = head_to_head_schema(arena_style_defaults());
  s.push_back(sdk::ParamSpec::float_("strong_weight", 3.0,
                                     "How many wins (losses) a 'much better' ('much worse') "
                                     "verdict counts as; Arena-Hard uses 3.")
                  .range(1.0, {}));
  s.push_back(sdk::ParamSpec::bool_("style_control", false,
                                    "Add style covariates to the Bradley-Terry fit (normalised "
                                    "length, header, list and bold differences, each divided "
                                    "by its standard deviation); the score is then the win rate "
                                    "at equal style."));
  return s;
}

std::unique_ptr<sdk::Evaluator> make_arena_score(sdk::HostContext& ctx) {
  return std::make_unique<ArenaScore>(ctx);
}

}  // namespace mr::plugins::evaluators
