// The machinery pairwise_winrate and arena_score share: the model's and the baseline's answers to
// an instruction set (generated, or read from files, and cached), a pairwise judge prompt with
// its verdict parser, and the judged games (both presentation orders, or one seeded order per
// item), with every answer and verdict cached by content.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "metareward/evaluators/eval_io.hpp"
#include "metareward/sdk/config.hpp"
#include "metareward/sdk/evaluator.hpp"
#include "metareward/sdk/host.hpp"
#include "regex_pattern.hpp"  // mr_recipe_impl

namespace mr::plugins::evaluators {

/// The defaults that differ between the two evaluators.
struct HeadToHeadDefaults {
  std::string judge_system;
  std::string judge_template;
  std::string verdict_regex;
  std::vector<std::string> verdict_labels;  ///< "LABEL=VALUE", VALUE in -2..2 for output A.
  std::string order;                        ///< "both" or "random".
  int bootstrap_rounds = 1000;
  double confidence = 0.95;
};

/// The pairwise judge's keys: judge_system, judge_template, verdict_regex, verdict_labels.
sdk::Schema pairwise_template_schema(const HeadToHeadDefaults& defaults);

/// The defaults of pairwise_winrate (AlpacaEval-style, two labels, one seeded order per item)
/// and of arena_score (Arena-Hard-style, five labels, both orders).
HeadToHeadDefaults alpaca_style_defaults();
HeadToHeadDefaults arena_style_defaults();

/// The config keys of a head-to-head evaluator (instructions, baseline, judge, template,
/// sampling, bootstrap).
sdk::Schema head_to_head_schema(const HeadToHeadDefaults& defaults);

/// The judge's pairwise prompt and its verdict parser, from the config keys judge_system,
/// judge_template ({instruction}, {output_a}, {output_b}; substituted in one pass),
/// verdict_regex (one capture group; the last match decides) and verdict_labels.
class PairwiseTemplate {
 public:
  /// Validates the keys (placeholders present, regex compiles, labels well-formed); errors name
  /// the key.
  explicit PairwiseTemplate(const sdk::Config& config);
  sdk::Conversation render(const std::string& instruction,
                           const std::string& output_a,
                           const std::string& output_b) const;
  /// A parsed verdict: the outcome for output A (+2 … −2) or why there is none.
  struct Verdict {
    std::optional<int> outcome;
    std::string label;  ///< The captured label as written.
    std::string error;
  };
  Verdict parse(std::string_view judge_output) const;
  /// Identifies the prompt and the labels in cache keys.
  const std::string& fingerprint() const { return fingerprint_; }

 private:
  std::string system_, template_;
  recipe::Pattern pattern_;
  std::vector<std::pair<std::string, int>> labels_;  ///< Upper-cased label -> outcome.
  std::string fingerprint_;
};

/// One judged game: the model's output in position A (`model_first`) or B.
struct Game {
  bool model_first = true;
  std::optional<int> outcome;  ///< From the model's side; nullopt when the verdict did not parse.
  std::string label;
  std::string error;
  std::string verdict_text;
};

/// One instruction with both answers and its games.
struct HeadToHeadItem {
  Instruction instruction;
  std::string model_output, baseline_output;
  bool model_truncated = false;
  bool identical = false;  ///< Same text: a tie without asking the judge (as AlpacaEval does).
  std::vector<Game> games;
};

/// Everything play_head_to_head() measured.
struct HeadToHead {
  std::vector<HeadToHeadItem> items;
  Drops drops;                       ///< Unusable input rows.
  std::size_t answer_failures = 0;   ///< Model / baseline answers that failed (item left out).
  std::size_t verdicts_asked = 0;    ///< Judge calls made now.
  std::size_t verdicts_cached = 0;   ///< Verdicts found in the cache.
  std::size_t verdict_failures = 0;  ///< Judge calls that failed (no text).
  std::size_t parse_failures = 0;    ///< Verdicts whose text did not parse.
};

/// Reads the instructions, obtains both answers and judges the games. Model answers are cached
/// in request.output_dir/answers.jsonl, a baseline model's in cache_dir/baseline_answers.jsonl,
/// verdicts in cache_dir/verdicts.jsonl (keyed by judge, template, instruction and both
/// outputs), so a re-run asks only for what is new. Polls request.stop_requested per batch.
HeadToHead play_head_to_head(const sdk::Config& config,
                             const sdk::EvaluationRequest& request,
                             sdk::HostContext& ctx,
                             const PairwiseTemplate& judge_template);

/// The per-item rows of `result` (for RUN/iter_T/eval/<name>.jsonl).
std::vector<nlohmann::json> head_to_head_rows(const HeadToHead& result);

/// Logs the input drops (count and the first few) and the parse failures of `result`.
void log_head_to_head(const HeadToHead& result, sdk::HostContext& ctx, const std::string& name);

/// `metrics[prefix]` = value and, from `ci`, prefix/ci_low and prefix/ci_high.
void put_with_ci(std::map<std::string, double>& metrics,
                 const std::string& key,
                 double value,
                 double low,
                 double high);

}  // namespace mr::plugins::evaluators
