// The `judge_agreement` evaluator: the model as judge (the run's rubric, N judgments per
// response) on labelled preference pairs, against their labels (the paper's judge-evaluation
// table); optionally the pairs are first relabelled by a strong judge, which also measures how
// often the run's own judge chose as the strong judge would.
#include <cmath>

#include "metareward/evaluators/cached_generation.hpp"
#include "metareward/evaluators/evaluators.hpp"
#include "metareward/evaluators/head_to_head.hpp"
#include "metareward/evaluators/statistics.hpp"
#include "metareward/sdk/error.hpp"
#include "text_util.hpp"  // mr_recipe_impl

namespace mr::plugins::evaluators {

namespace fs = std::filesystem;
using json = nlohmann::json;
using sdk::ParamSpec;

namespace {

constexpr std::uint64_t kStreamJudgment = 0x6a61674a75646765ULL;  // "jagJudge"
constexpr std::uint64_t kStreamBootstrap = 0x6a6167426f6f7473ULL;

/// The rendered conversation as one string, for cache keys.
std::string conversation_key(const sdk::Conversation& c) {
  std::string out;
  for (const auto& m : c) out += m.role + "\x1f" + m.content + "\x1e";
  return out;
}

/// The strong judge's label of a pair: +1 chosen better, -1 rejected better, 0 tie; nullopt
/// when no verdict parsed.
struct StrongLabels {
  std::vector<std::optional<int>> label;
  std::size_t asked = 0, cached = 0, parse_failures = 0, failures = 0;
};

class JudgeAgreement final : public sdk::Evaluator {
 public:
  explicit JudgeAgreement(sdk::HostContext& ctx) : ctx_(ctx), template_(ctx.config()) {}

  sdk::EvaluationResult evaluate(const sdk::EvaluationRequest& request) override {
    const sdk::Config& c = ctx_.config();
    sdk::EvaluationResult out;
    fs::path file = c.get_string("pairs");
    if (file == "run") {
      // RUN/iter_T/eval (one evaluator) or RUN/iter_T/eval/NAME ([evaluation.NAME]).
      file = request.output_dir.parent_path() / "actor_pairs.jsonl";
      if (!fs::exists(file) && request.output_dir.parent_path().filename() == "eval")
        file = request.output_dir.parent_path().parent_path() / "actor_pairs.jsonl";
      if (!fs::exists(file)) {
        ctx_.logger().log(sdk::LogLevel::Info,
                          "judge_agreement: no " + file.string() +
                              " (the seed models' evaluation, or a run without pairs yet): "
                              "nothing to measure");
        return out;
      }
    }
    Drops drops;
    std::vector<LabelledPair> pairs = read_labelled_pairs(file, drops);
    if (const auto limit = c.get_int("limit");
        limit > 0 && pairs.size() > static_cast<std::size_t>(limit))
      pairs.resize(static_cast<std::size_t>(limit));
    if (drops.count() > 0)
      ctx_.logger().log(sdk::LogLevel::Warn, "judge_agreement: dropped " +
                                                 std::to_string(drops.count()) +
                                                 " row(s), first: " + drops.reasons.front());
    const int batch = static_cast<int>(c.get_int("batch_size"));

    // Labels: "chosen is better" as given, or the strong judge's.
    std::vector<std::optional<int>> label(pairs.size(), 1);
    const std::string label_judge = c.get_string("label_judge");
    StrongLabels strong;
    if (!label_judge.empty()) {
      strong = relabel(pairs, *request.model(label_judge), request, batch);
      label = strong.label;
    }

    // The model as judge: N judgments of each response with the run's rubric.
    const int n = static_cast<int>(c.get_int("judgments"));
    const sdk::SamplingParams sampling =
        make_sampling(c.get_float("judge_temperature"), c.get_float("judge_top_p"),
                      static_cast<int>(c.get_int("judge_max_new_tokens")));
    const std::string identity = model_identity(*request.judge);
    std::vector<KeyedRequest> requests;
    for (const auto& pair : pairs) {
      for (const std::string* response : {&pair.chosen, &pair.rejected}) {
        const sdk::Conversation prompt = request.rubric->build_prompt(pair.prompt, *response);
        for (int j = 0; j < n; ++j) {
          KeyedRequest k;
          k.request.id = pair.id + (response == &pair.chosen ? "/chosen/j" : "/rejected/j") +
                         std::to_string(j);
          k.request.messages = prompt;
          k.request.sampling = sampling;
          k.request.seed =
              sdk::derive_seed(sdk::derive_seed(sdk::derive_seed(ctx_.seed(), kStreamJudgment),
                                                recipe::stable_hash(conversation_key(prompt))),
                               static_cast<std::uint64_t>(j));
          k.key = content_key({"judgment", identity, conversation_key(prompt),
                               sampling_key(sampling), std::to_string(k.request.seed)});
          requests.push_back(std::move(k));
        }
      }
    }
    RecordStore store(request.output_dir / "judge_agreement_judgments.jsonl", ctx_.logger());
    GenerationCounts counts;
    const auto judged = generate_cached(*request.judge, requests, store, batch,
                                        request.stop_requested, ctx_, "judge agreement", counts);

    std::size_t parse_failures = 0, total = 0, ties = 0, undecidable = 0;
    std::vector<double> agree;  // 1 / 0 per decided pair
    std::vector<double> judge_scores, label_scores;
    std::vector<json> rows;
    for (std::size_t p = 0; p < pairs.size(); ++p) {
      std::optional<double> mean[2];
      json scores[2] = {json::array(), json::array()};
      for (int side = 0; side < 2; ++side) {
        double sum = 0;
        int valid = 0;
        for (int j = 0; j < n; ++j) {
          const auto& r =
              judged[(p * 2 + static_cast<std::size_t>(side)) * static_cast<std::size_t>(n) +
                     static_cast<std::size_t>(j)];
          ++total;
          const auto parsed = r ? request.rubric->parse(r->text) : sdk::ParsedScore{};
          if (!parsed.score) {
            ++parse_failures;
            scores[side].push_back(nullptr);
            continue;
          }
          sum += *parsed.score;
          ++valid;
          scores[side].push_back(*parsed.score);
        }
        if (valid > 0) mean[side] = sum / valid;
      }
      json row = {{"id", pairs[p].id},
                  {"label", label[p] ? json(*label[p]) : json(nullptr)},
                  {"chosen_scores", scores[0]},
                  {"rejected_scores", scores[1]}};
      if (mean[0] && pairs[p].chosen_score && pairs[p].rejected_score) {
        judge_scores.push_back(*mean[0]);
        label_scores.push_back(*pairs[p].chosen_score);
      }
      if (mean[1] && pairs[p].chosen_score && pairs[p].rejected_score) {
        judge_scores.push_back(*mean[1]);
        label_scores.push_back(*pairs[p].rejected_score);
      }
      if (!label[p] || *label[p] == 0 || !mean[0] || !mean[1]) {
        ++undecidable;
        row["agrees"] = nullptr;
      } else if (*mean[0] == *mean[1]) {
        ++ties;
        row["agrees"] = nullptr;
      } else {
        const int judge_pref = *mean[0] > *mean[1] ? 1 : -1;
        agree.push_back(judge_pref == *label[p] ? 1.0 : 0.0);
        row["agrees"] = judge_pref == *label[p];
      }
      rows.push_back(std::move(row));
    }
    write_rows_atomic(request.output_dir / "judge_agreement.jsonl", rows);

    auto& m = out.metrics;
    const int rounds = static_cast<int>(c.get_int("bootstrap_rounds"));
    const double confidence = c.get_float("confidence");
    const std::uint64_t seed = sdk::derive_seed(request.info.seed, kStreamBootstrap);
    auto mean_of = [](const std::vector<double>& v, const std::vector<std::size_t>& s) {
      double sum = 0;
      for (std::size_t i : s) sum += v[i];
      return std::optional<double>(sum / static_cast<double>(s.size()));
    };
    if (!agree.empty()) {
      std::vector<std::size_t> all(agree.size());
      for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
      const BootstrapResult b = bootstrap(agree.size(), rounds, confidence, seed,
                                          [&](const auto& s) { return mean_of(agree, s); });
      put_with_ci(m, "judge/agreement", *mean_of(agree, all), b.low, b.high);
    }
    m["judge/agreement_pairs"] = static_cast<double>(agree.size());
    m["judge/agreement_ties"] = static_cast<double>(ties);
    m["judge/agreement_undecidable"] = static_cast<double>(undecidable);
    m["judge/parse_failures"] = static_cast<double>(parse_failures);
    m["judge/parse_failure_rate"] =
        total > 0 ? static_cast<double>(parse_failures) / static_cast<double>(total) : 0.0;
    if (const auto rho = spearman(judge_scores, label_scores)) m["judge/spearman"] = *rho;
    m["data/dropped_rows"] = static_cast<double>(drops.count());

    if (!label_judge.empty()) {
      // How often the pairs' own choice (the run's judge) agrees with the strong judge.
      std::vector<double> own;
      std::size_t label_ties = 0, unlabelled = 0;
      for (const auto& l : strong.label) {
        if (!l)
          ++unlabelled;
        else if (*l == 0)
          ++label_ties;
        else
          own.push_back(*l > 0 ? 1.0 : 0.0);
      }
      if (!own.empty()) {
        std::vector<std::size_t> all(own.size());
        for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
        const BootstrapResult b = bootstrap(own.size(), rounds, confidence, seed + 1,
                                            [&](const auto& s) { return mean_of(own, s); });
        put_with_ci(m, "judge/pair_agreement", *mean_of(own, all), b.low, b.high);
      }
      m["labels/pairs"] = static_cast<double>(own.size());
      m["labels/ties"] = static_cast<double>(label_ties);
      m["labels/unparsed"] = static_cast<double>(unlabelled);
      m["labels/verdict_parse_failures"] = static_cast<double>(strong.parse_failures);
    }
    if (agree.empty())
      ctx_.logger().log(sdk::LogLevel::Warn,
                        "judge_agreement: no pair was decided (" + std::to_string(ties) +
                            " ties, " + std::to_string(undecidable) +
                            " without a parsed score or label); no judge/agreement");
    return out;
  }

 private:
  /// Both presentation orders per pair through `judge` with the pairwise template; verdicts
  /// cached in cache_dir/verdicts.jsonl.
  StrongLabels relabel(const std::vector<LabelledPair>& pairs,
                       sdk::ModelBackend& judge,
                       const sdk::EvaluationRequest& request,
                       int batch) {
    const sdk::Config& c = ctx_.config();
    const sdk::SamplingParams sampling =
        make_sampling(0.0, 1.0, static_cast<int>(c.get_int("judge_max_new_tokens")));
    const std::string identity = model_identity(judge);
    std::vector<KeyedRequest> requests;
    for (const auto& pair : pairs) {
      const std::string instruction =
          recipe::render_instruction(pair.prompt, recipe::InstructionTurns::All);
      for (bool chosen_first : {true, false}) {
        const std::string& a = chosen_first ? pair.chosen : pair.rejected;
        const std::string& b = chosen_first ? pair.rejected : pair.chosen;
        KeyedRequest k;
        k.request.id = pair.id + (chosen_first ? "/chosen-first" : "/rejected-first");
        k.request.messages = template_.render(instruction, a, b);
        k.request.sampling = sampling;
        const std::string game_key =
            content_key({template_.fingerprint(), instruction, a, b, sampling_key(sampling)});
        k.key = content_key({"verdict", identity, game_key});
        k.request.seed = recipe::stable_hash(game_key);
        requests.push_back(std::move(k));
      }
    }
    RecordStore store(request.cache_dir / "verdicts.jsonl", ctx_.logger());
    GenerationCounts counts;
    const auto verdicts = generate_cached(judge, requests, store, batch, request.stop_requested,
                                          ctx_, "strong-judge labels", counts);
    StrongLabels out;
    out.asked = counts.asked;
    out.cached = counts.cached;
    out.failures = counts.failed;
    for (std::size_t p = 0; p < pairs.size(); ++p) {
      double sum = 0;
      int parsed = 0;
      for (int order = 0; order < 2; ++order) {
        const auto& v = verdicts[2 * p + static_cast<std::size_t>(order)];
        if (!v) continue;
        const auto verdict = template_.parse(v->text);
        if (!verdict.outcome) {
          ++out.parse_failures;
          continue;
        }
        const int for_chosen = order == 0 ? *verdict.outcome : -*verdict.outcome;
        sum += for_chosen > 0 ? 1.0 : (for_chosen < 0 ? 0.0 : 0.5);
        ++parsed;
      }
      if (parsed == 0) {
        out.label.emplace_back(std::nullopt);
      } else {
        const double pref = sum / parsed;
        out.label.emplace_back(pref > 0.5 ? 1 : (pref < 0.5 ? -1 : 0));
      }
    }
    return out;
  }

  sdk::HostContext& ctx_;
  PairwiseTemplate template_;
};

}  // namespace

sdk::Schema judge_agreement_schema() {
  sdk::Schema s = {
      ParamSpec::required_("pairs", sdk::ParamType::String,
                           "JSONL of labelled pairs {\"prompt\", \"chosen\", \"rejected\"} "
                           "(strings or conversations; optional graded chosen_score / "
                           "rejected_score for Spearman), where chosen is the better response; "
                           "or 'run': the evaluated iteration's own actor_pairs.jsonl (then set "
                           "label_judge, since the run's judge chose them)."),
      ParamSpec::int_("limit", 0, "Use only the first N pairs (0 = all).").range(0, {}),
      ParamSpec::int_("judgments", 3,
                      "Judgments per response by the model as judge (scores averaged, as the "
                      "run's judge stage does).")
          .range(1, {}),
      ParamSpec::float_("judge_temperature", 0.8, "Sampling temperature of those judgments.")
          .range(0.0, 5.0),
      ParamSpec::float_("judge_top_p", 0.95, "Nucleus sampling of those judgments.")
          .range(0.0, 1.0, true, false),
      ParamSpec::int_("judge_max_new_tokens", 1024, "Token limit of each judgment and verdict.")
          .range(1, {}),
      ParamSpec::string_("label_judge", "",
                         "A [models.NAME] (e.g. an `openai` model serving a strong judge) that "
                         "relabels every pair with the pairwise template below, both orders, "
                         "greedy; ties are excluded and counted. Empty: the file's labels."),
      ParamSpec::int_("batch_size", 16, "Requests per generate() call.").range(1, {}),
      ParamSpec::int_("bootstrap_rounds", 1000, "Bootstrap resamples of the pairs.").range(10, {}),
      ParamSpec::float_("confidence", 0.95, "Coverage of the bootstrap percentile intervals.")
          .range(0.5, 1.0, false, true),
  };
  const sdk::Schema judge = pairwise_template_schema(alpaca_style_defaults());
  s.insert(s.end(), judge.begin(), judge.end());
  return s;
}

std::unique_ptr<sdk::Evaluator> make_judge_agreement(sdk::HostContext& ctx) {
  return std::make_unique<JudgeAgreement>(ctx);
}

}  // namespace mr::plugins::evaluators
