// The `testbed` evaluator: actor, judge and meta-judge measured against the oracle on the
// held-out eval prompts.
//
// One file (~720 lines) on purpose: the actor, judge and meta-judge measurements share the eval
// prompt reader, the request seeding and the rank/accuracy helpers at the top.
#include "metareward/testbed/evaluator.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>
#include <utility>

#include "batched_generation.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/testbed/dataset.hpp"
#include "metareward/testbed/judge_data.hpp"
#include "metareward/testbed/teacher.hpp"
#include "score_parser.hpp"  // mr_recipe_impl: the default verdict pattern (fallback battles)
#include "text_util.hpp"

namespace mr::plugins::testbed {

namespace fs = std::filesystem;
namespace sdk = mr::sdk;
namespace recipe = mr::plugins::recipe;
using ordered_json = nlohmann::ordered_json;

namespace {

// Seed streams. The sampling seeds derive from info.seed; the candidates and the meta-judge
// items derive from the prompt text only, so they are the same in every evaluation.
constexpr std::uint64_t kStreamActor = 0x6576616c41637472ULL;       // "evalActr"
constexpr std::uint64_t kStreamJudge = 0x6576616c4a756467ULL;       // "evalJudg"
constexpr std::uint64_t kStreamMeta = 0x6576616c4d657461ULL;        // "evalMeta"
constexpr std::uint64_t kStreamCandidates = 0x63616e6469646174ULL;  // "candidat"
constexpr std::uint64_t kStreamMetaItems = 0x6d6574614974656dULL;   // "metaItem"

sdk::SamplingParams sampling(double temperature, int max_new_tokens) {
  sdk::SamplingParams s;
  s.temperature = temperature;
  s.top_p = 1.0;
  s.top_k = 0;
  s.max_new_tokens = max_new_tokens;
  return s;
}

std::uint64_t request_seed(std::uint64_t seed, std::uint64_t stream, std::size_t index) {
  return sdk::derive_seed(sdk::derive_seed(seed, stream), static_cast<std::uint64_t>(index));
}

/// Sample `i` of a result, or "" (with `failed` set) when the request or the sample failed.
std::string sample_text(const sdk::GenerationResult& r, std::size_t i, bool& failed) {
  failed = !r.error.empty() || i >= r.completions.size() ||
           r.completions[i].finish_reason == sdk::FinishReason::Error;
  return failed ? std::string() : r.completions[i].text;
}

void write_jsonl(const fs::path& dir, const char* name, const std::vector<ordered_json>& rows) {
  if (dir.empty()) return;
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::string text;
  for (const auto& row : rows)
    text += row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  write_text_atomic(dir / name, text);
}

double share(std::int64_t part, std::int64_t whole) {
  return whole > 0 ? static_cast<double>(part) / static_cast<double>(whole) : 0.0;
}

ordered_json criteria_json(const OracleScore& s) {
  ordered_json j = ordered_json::object();
  for (int k = 0; k < kOracleCriteria; ++k)
    j[std::string(oracle_criterion_name(k))] = s.awarded[static_cast<std::size_t>(k)];
  return j;
}

/// 1 when `mine` beats `theirs` under the oracle, 0.5 for a tie, 0 otherwise.
double win_value(int mine, int theirs) {
  return mine > theirs ? 1.0 : (mine == theirs ? 0.5 : 0.0);
}

/// Average ranks (1-based) of `v`, ties sharing the mean of their positions.
std::vector<double> average_ranks(const std::vector<double>& v) {
  std::vector<std::size_t> order(v.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
  std::vector<double> ranks(v.size());
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double rank = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
    for (std::size_t k = i; k <= j; ++k) ranks[order[k]] = rank;
    i = j + 1;
  }
  return ranks;
}

}  // namespace

sdk::Schema testbed_evaluator_schema() {
  using sdk::ParamSpec;
  using sdk::ParamType;
  const EvaluatorOptions d;
  return {
      ParamSpec::required_("prompts", ParamType::String,
                           "eval_prompts.jsonl written by `metareward testbed bootstrap` (or "
                           "`testbed data`). A relative path is relative to the CURRENT "
                           "directory, not to the config file."),
      ParamSpec::int_("max_prompts", d.max_prompts, "Evaluate the first N eval prompts.")
          .range(1.0, std::nullopt),
      ParamSpec::int_("actor_max_new_tokens", d.actor_max_new_tokens,
                      "Longest actor answer in tokens.")
          .range(1.0, std::nullopt),
      ParamSpec::int_("judge_max_new_tokens", d.judge_max_new_tokens, "Longest judgment in tokens.")
          .range(1.0, std::nullopt),
      ParamSpec::int_("meta_judge_max_new_tokens", d.meta_judge_max_new_tokens,
                      "Longest meta-judge verdict in tokens.")
          .range(1.0, std::nullopt),
      ParamSpec::int_("judge_samples", d.judge_samples,
                      "Judgments per judged response; its judge score is their mean.")
          .range(1.0, 64.0),
      ParamSpec::float_("temperature", d.temperature,
                        "Sampling temperature of all three roles (0 = greedy; otherwise plain "
                        "sampling with top_p 1).")
          .range(0.0, std::nullopt),
      ParamSpec::int_("batch_size", d.batch_size,
                      "Requests per generate() call; a stop request is honoured between "
                      "batches.")
          .range(1.0, std::nullopt),
      ParamSpec::int_("judge_pairs", d.judge_pairs,
                      "Meta-judge items (two judgments of one response, shown in both orders); "
                      "0 = no meta-judge evaluation.")
          .range(0.0, std::nullopt),
  };
}

EvaluatorOptions EvaluatorOptions::from_config(const sdk::Config& config) {
  EvaluatorOptions o;
  o.prompts = config.get_string("prompts");
  if (o.prompts.empty()) config.fail("prompts", "must name the eval_prompts.jsonl file");
  o.max_prompts = config.get_int("max_prompts");
  o.actor_max_new_tokens = static_cast<int>(config.get_int("actor_max_new_tokens"));
  o.judge_max_new_tokens = static_cast<int>(config.get_int("judge_max_new_tokens"));
  o.meta_judge_max_new_tokens = static_cast<int>(config.get_int("meta_judge_max_new_tokens"));
  o.judge_samples = static_cast<int>(config.get_int("judge_samples"));
  o.temperature = config.get_float("temperature");
  o.batch_size = static_cast<int>(config.get_int("batch_size"));
  o.judge_pairs = config.get_int("judge_pairs");
  if (o.max_prompts < 1) config.fail("max_prompts", "must be >= 1");
  if (o.judge_samples < 1) config.fail("judge_samples", "must be >= 1");
  if (o.batch_size < 1) config.fail("batch_size", "must be >= 1");
  if (o.judge_pairs < 0) config.fail("judge_pairs", "must be >= 0");
  if (!(o.temperature >= 0.0) || !std::isfinite(o.temperature))
    config.fail("temperature", "must be a finite number >= 0");
  return o;
}

std::vector<EvalPrompt> read_eval_prompts(const fs::path& file, std::int64_t max_rows) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw sdk::DataError("cannot open the eval prompts '" + file.string() + "'");
  std::vector<EvalPrompt> out;
  std::set<std::string> ids;
  std::string line;
  std::int64_t number = 0;
  while (static_cast<std::int64_t>(out.size()) < max_rows && std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = file.string() + ":" + std::to_string(number) + ": ";
    nlohmann::json row;
    try {
      row = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      throw sdk::DataError(where + "malformed JSON: " + e.what());
    }
    for (const char* key : {"id", "prompt", "task", "answer"})
      if (!row.is_object() || !row.contains(key) || !row[key].is_string())
        throw sdk::DataError(where + "expected a string \"" + key +
                             "\" (rows are {\"id\", \"prompt\", \"task\", \"answer\"})");
    EvalPrompt p;
    p.id = row["id"].get<std::string>();
    if (!ids.insert(p.id).second) throw sdk::DataError(where + "repeated id '" + p.id + "'");
    try {
      p.task = instance_from_row(row["task"].get<std::string>(), row["prompt"].get<std::string>(),
                                 row["answer"].get<std::string>());
    } catch (const sdk::DataError& e) {
      throw sdk::DataError(where + e.what());
    }
    out.push_back(std::move(p));
  }
  if (out.empty()) throw sdk::DataError("the eval prompts '" + file.string() + "' have no rows");
  return out;
}

std::vector<JudgeCandidate> teacher_candidates(const TaskInstance& task) {
  Rng rng(stream_seed(recipe::stable_hash(task.prompt), kStreamCandidates));
  std::vector<JudgeCandidate> out;
  out.push_back({"bare_correct", task.answer});
  out.push_back({"verbose_correct", wrap_verbose(task.answer, rng)});
  out.push_back({"wrong", wrong_answer(task, rng)});
  // The answer to a fresh instance of another family: wrong form or far off. Redrawn in the
  // rare case that it happens to be right (e.g. a count of 3 for a sum of 3).
  std::size_t own = 0;
  while (kAllFamilies[own] != task.family) ++own;
  std::string off_task;
  for (int attempt = 0; attempt < 16; ++attempt) {
    const auto offset = 1 + rng.uniform_below(kAllFamilies.size() - 1);
    const TaskInstance other =
        generate_instance(kAllFamilies[(own + offset) % kAllFamilies.size()], rng);
    if (!oracle_score(task, other.answer).correct()) {
      off_task = other.answer;
      break;
    }
  }
  out.push_back({"off_task", off_task});
  return out;
}

std::optional<double> pairwise_accuracy(const std::vector<JudgedItem>& items) {
  std::map<std::size_t, std::vector<const JudgedItem*>> groups;
  for (const auto& item : items)
    if (item.judge_score) groups[item.group].push_back(&item);
  double agree = 0.0;
  std::int64_t pairs = 0;
  for (const auto& [group, members] : groups) {
    for (std::size_t i = 0; i < members.size(); ++i) {
      for (std::size_t j = i + 1; j < members.size(); ++j) {
        const JudgedItem& a = *members[i];
        const JudgedItem& b = *members[j];
        if (a.oracle == b.oracle) continue;
        ++pairs;
        const double judge_diff = *a.judge_score - *b.judge_score;
        if (judge_diff == 0.0)
          agree += 0.5;
        else if ((judge_diff > 0.0) == (a.oracle > b.oracle))
          agree += 1.0;
      }
    }
  }
  if (pairs == 0) return std::nullopt;
  return agree / static_cast<double>(pairs);
}

std::optional<double> spearman(const std::vector<double>& x, const std::vector<double>& y) {
  MR_CHECK(x.size() == y.size(), "spearman: sizes differ (", x.size(), " vs ", y.size(), ")");
  if (x.size() < 2) return std::nullopt;
  const std::vector<double> rx = average_ranks(x), ry = average_ranks(y);
  const double n = static_cast<double>(x.size());
  double mx = 0.0, my = 0.0;
  for (std::size_t i = 0; i < rx.size(); ++i) {
    mx += rx[i];
    my += ry[i];
  }
  mx /= n;
  my /= n;
  double sxy = 0.0, sxx = 0.0, syy = 0.0;
  for (std::size_t i = 0; i < rx.size(); ++i) {
    sxy += (rx[i] - mx) * (ry[i] - my);
    sxx += (rx[i] - mx) * (rx[i] - mx);
    syy += (ry[i] - my) * (ry[i] - my);
  }
  if (sxx <= 0.0 || syy <= 0.0) return std::nullopt;
  return std::clamp(sxy / std::sqrt(sxx * syy), -1.0, 1.0);
}

TestbedEvaluator::TestbedEvaluator(sdk::HostContext& ctx)
    : ctx_(ctx), options_(EvaluatorOptions::from_config(ctx.config())) {
  std::error_code ec;
  if (!fs::is_regular_file(options_.prompts, ec)) {
    const fs::path cwd = fs::current_path(ec);
    ctx.config().fail("prompts", "cannot read '" + options_.prompts.string() +
                                     "' (a relative path is relative to the current directory, "
                                     "here '" +
                                     cwd.string() +
                                     "'); write it with `metareward testbed bootstrap` or "
                                     "`metareward testbed data`");
  }
  prompts_ = read_eval_prompts(options_.prompts, options_.max_prompts);
}

namespace {

using Metrics = std::map<std::string, double>;

/// What every stage of one evaluate() call reads.
struct Evaluation {
  sdk::HostContext& ctx;
  const EvaluatorOptions& options;
  const std::vector<EvalPrompt>& prompts;
  const sdk::EvaluationRequest& request;

  /// Where a stage's generation results are logged until its rows are written, so that an
  /// interrupted evaluation resumes part-way (none without an output directory).
  fs::path generation_log(const char* stage) const {
    return request.output_dir.empty()
               ? fs::path()
               : request.output_dir / (std::string(stage) + ".partial.jsonl");
  }
};

/// The actor's answers and their oracle grades, by eval prompt.
struct ActorAnswers {
  std::vector<std::string> answers;
  std::vector<OracleScore> grades;
};

/// Actor stage: one answer per eval prompt, graded by the oracle; writes answers.jsonl.
ActorAnswers evaluate_actor(const Evaluation& e, Metrics& m) {
  const std::size_t n_prompts = e.prompts.size();
  std::vector<sdk::GenerationRequest> actor_requests;
  for (std::size_t i = 0; i < n_prompts; ++i) {
    sdk::GenerationRequest g;
    g.id = e.prompts[i].id;
    g.messages = {{"user", e.prompts[i].task.prompt}};
    g.sampling = sampling(e.options.temperature, e.options.actor_max_new_tokens);
    g.seed = request_seed(e.request.info.seed, kStreamActor, i);
    actor_requests.push_back(std::move(g));
  }
  const auto actor_results =
      generate_batched(*e.request.actor, actor_requests, e.options.batch_size,
                       e.request.stop_requested, e.ctx, "eval actor", e.generation_log("actor"));
  std::vector<std::string> answers(n_prompts);
  std::vector<OracleScore> grades(n_prompts);
  std::int64_t failed_answers = 0, exact = 0, correct = 0, length_sum = 0;
  double score_sum = 0.0;
  std::vector<ordered_json> answer_rows;
  for (std::size_t i = 0; i < n_prompts; ++i) {
    bool failed = false;
    answers[i] = sample_text(actor_results[i], 0, failed);
    if (failed) ++failed_answers;
    grades[i] = oracle_score(e.prompts[i].task, answers[i]);
    score_sum += grades[i].score;
    exact += grades[i].exact() ? 1 : 0;
    correct += grades[i].correct() ? 1 : 0;
    const std::int64_t length = recipe::utf8_length(answers[i]);
    length_sum += length;
    answer_rows.push_back(ordered_json{{"id", e.prompts[i].id},
                                       {"task", std::string(family_name(e.prompts[i].task.family))},
                                       {"prompt", e.prompts[i].task.prompt},
                                       {"reference", e.prompts[i].task.answer},
                                       {"answer", answers[i]},
                                       {"oracle_score", grades[i].score},
                                       {"criteria", criteria_json(grades[i])},
                                       {"length_chars", length},
                                       {"failed", failed}});
  }
  const auto n = static_cast<std::int64_t>(n_prompts);
  m["actor/oracle_score"] = score_sum / static_cast<double>(n);
  m["actor/exact_accuracy"] = share(exact, n);
  m["actor/correct_accuracy"] = share(correct, n);
  m["actor/mean_length_chars"] = static_cast<double>(length_sum) / static_cast<double>(n);
  if (failed_answers > 0)
    e.ctx.logger().warn("testbed eval: " + std::to_string(failed_answers) + " of " +
                        std::to_string(n) + " actor generations failed (graded as empty answers)");
  write_jsonl(e.request.output_dir, "answers.jsonl", answer_rows);
  return {std::move(answers), std::move(grades)};
}

/// actor/win_rate_vs_seed: against the seed model's answers, stored by the iteration-0
/// evaluation in RUN/iter_0/eval/answers.jsonl.
void add_win_rate(const Evaluation& e, const std::vector<OracleScore>& grades, Metrics& m) {
  const std::size_t n_prompts = e.prompts.size();
  const auto n = static_cast<std::int64_t>(n_prompts);
  if (e.request.info.iteration <= 0) {
    m["actor/win_rate_vs_seed"] = 0.5;  // The seed model against itself: every prompt ties.
  } else if (e.request.output_dir.empty()) {
    e.ctx.logger().warn(
        "testbed eval: no output directory, so no seed answers to compare with; "
        "actor/win_rate_vs_seed omitted");
  } else {
    const fs::path seed_file =
        (e.request.output_dir / ".." / ".." / "iter_0" / "eval" / "answers.jsonl")
            .lexically_normal();
    std::unordered_map<std::string, std::pair<std::string, std::string>> seed_answers;
    std::int64_t bad_rows = 0;
    std::ifstream in(seed_file, std::ios::binary);
    for (std::string line; in && std::getline(in, line);) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const auto row = nlohmann::json::parse(line, nullptr, false);
      if (row.is_discarded() || !row.is_object() || !row.contains("id") || !row["id"].is_string() ||
          !row.contains("prompt") || !row["prompt"].is_string() || !row.contains("answer") ||
          !row["answer"].is_string()) {
        ++bad_rows;
        continue;
      }
      seed_answers[row["id"].get<std::string>()] = {row["prompt"].get<std::string>(),
                                                    row["answer"].get<std::string>()};
    }
    double wins = 0.0;
    std::int64_t matched = 0;
    for (std::size_t i = 0; i < n_prompts; ++i) {
      auto it = seed_answers.find(e.prompts[i].id);
      if (it == seed_answers.end() || it->second.first != e.prompts[i].task.prompt) continue;
      ++matched;
      wins += win_value(grades[i].score, oracle_score(e.prompts[i].task, it->second.second).score);
    }
    if (bad_rows > 0)
      e.ctx.logger().warn("testbed eval: skipped " + std::to_string(bad_rows) +
                          " malformed row(s) of " + seed_file.string());
    if (matched == 0) {
      e.ctx.logger().warn("testbed eval: no seed answers for these eval prompts in '" +
                          seed_file.string() + "' (" +
                          (fs::exists(seed_file) ? "no prompt matches" : "file missing") +
                          "); actor/win_rate_vs_seed omitted");
    } else {
      if (matched < n)
        e.ctx.logger().warn("testbed eval: only " + std::to_string(matched) + " of " +
                            std::to_string(n) + " eval prompts have a seed answer in '" +
                            seed_file.string() + "'; the win rate is over those");
      m["actor/win_rate_vs_seed"] = wins / static_cast<double>(matched);
    }
  }
}

/// Judge stage: the model's answer and four teacher answers per prompt, judged with the run's
/// rubric; writes judgments.jsonl.
void evaluate_judge(const Evaluation& e, const ActorAnswers& actor, Metrics& m) {
  const std::size_t n_prompts = e.prompts.size();
  struct Candidate {
    std::size_t prompt = 0;
    JudgeCandidate response;
    OracleScore grade;
  };
  std::vector<Candidate> candidates;
  for (std::size_t i = 0; i < n_prompts; ++i) {
    candidates.push_back({i, {"model", actor.answers[i]}, actor.grades[i]});
    for (auto& c : teacher_candidates(e.prompts[i].task)) {
      OracleScore grade = oracle_score(e.prompts[i].task, c.text);
      candidates.push_back({i, std::move(c), std::move(grade)});
    }
  }
  std::vector<sdk::GenerationRequest> judge_requests;
  for (std::size_t c = 0; c < candidates.size(); ++c) {
    const Candidate& cand = candidates[c];
    sdk::GenerationRequest g;
    g.id = e.prompts[cand.prompt].id + "/" + cand.response.kind;
    g.messages = e.request.rubric->build_prompt({{"user", e.prompts[cand.prompt].task.prompt}},
                                                cand.response.text);
    g.sampling = sampling(e.options.temperature, e.options.judge_max_new_tokens);
    g.n = e.options.judge_samples;
    g.seed = request_seed(e.request.info.seed, kStreamJudge, c);
    judge_requests.push_back(std::move(g));
  }
  const auto judge_results =
      generate_batched(*e.request.judge, judge_requests, e.options.batch_size,
                       e.request.stop_requested, e.ctx, "eval judge", e.generation_log("judge"));
  std::vector<JudgedItem> items;
  std::array<std::int64_t, kOracleCriteria + 1> histogram{};
  std::int64_t judgments = 0, parse_failures = 0, parsed = 0;
  double parsed_sum = 0.0;
  std::vector<double> bare_correct, verbose_correct;
  std::vector<ordered_json> judgment_rows;
  for (std::size_t c = 0; c < candidates.size(); ++c) {
    const Candidate& cand = candidates[c];
    ordered_json texts = ordered_json::array(), scores = ordered_json::array();
    double sum = 0.0;
    int valid = 0;
    for (int s = 0; s < e.options.judge_samples; ++s) {
      ++judgments;
      bool failed = false;
      const std::string text = sample_text(judge_results[c], static_cast<std::size_t>(s), failed);
      const sdk::ParsedScore p = failed ? sdk::ParsedScore{} : e.request.rubric->parse(text);
      texts.push_back(text);
      if (!p.score) {
        ++parse_failures;
        scores.push_back(nullptr);
        continue;
      }
      scores.push_back(*p.score);
      ++valid;
      ++parsed;
      sum += *p.score;
      parsed_sum += *p.score;
      const long bin = std::lround(*p.score);
      if (bin >= 0 && bin <= kOracleCriteria) ++histogram[static_cast<std::size_t>(bin)];
    }
    JudgedItem item{cand.prompt, static_cast<double>(cand.grade.score), std::nullopt};
    if (valid > 0) item.judge_score = sum / valid;
    if (item.judge_score && cand.grade.exact()) bare_correct.push_back(*item.judge_score);
    if (item.judge_score && cand.grade.correct() && !cand.grade.exact())
      verbose_correct.push_back(*item.judge_score);
    items.push_back(item);
    judgment_rows.push_back(ordered_json{
        {"id", judge_requests[c].id},
        {"prompt_id", e.prompts[cand.prompt].id},
        {"kind", cand.response.kind},
        {"response", cand.response.text},
        {"oracle_score", cand.grade.score},
        {"judgments", texts},
        {"scores", scores},
        {"judge_score", item.judge_score ? ordered_json(*item.judge_score) : ordered_json()}});
  }
  write_jsonl(e.request.output_dir, "judgments.jsonl", judgment_rows);
  if (auto acc = pairwise_accuracy(items)) m["judge/pairwise_accuracy"] = *acc;
  {
    std::vector<double> oracle, judge;
    for (const auto& item : items) {
      if (!item.judge_score) continue;
      oracle.push_back(item.oracle);
      judge.push_back(*item.judge_score);
    }
    // A judge whose scores are all equal has no rank order: reported as no correlation.
    if (oracle.size() >= 2) m["judge/spearman"] = spearman(oracle, judge).value_or(0.0);
  }
  m["judge/parse_failure_rate"] = share(parse_failures, judgments);
  if (parsed > 0) {
    m["judge/mean_score"] = parsed_sum / static_cast<double>(parsed);
    for (int s = 0; s <= kOracleCriteria; ++s)
      m["judge/score_hist_" + std::to_string(s)] =
          share(histogram[static_cast<std::size_t>(s)], parsed);
  }
  if (!bare_correct.empty() && !verbose_correct.empty()) {
    auto mean = [](const std::vector<double>& v) {
      double s = 0.0;
      for (double x : v) s += x;
      return s / static_cast<double>(v.size());
    };
    m["judge/length_bias"] = mean(verbose_correct) - mean(bare_correct);
  }
}

/// Meta-judge stage: `judge_pairs` items of two judgments, one closer to the oracle, shown in
/// both orders; writes meta_judgments.jsonl.
void evaluate_meta_judge(const Evaluation& e, Metrics& m) {
  const std::size_t n_prompts = e.prompts.size();
  const sdk::IterationInfo& info = e.request.info;
  struct MetaItem {
    std::size_t prompt = 0;
    std::string response;
    int oracle = 0;
    bool a_better = false;
  };
  std::vector<MetaItem> meta_items;
  std::vector<sdk::PromptGroup> groups;
  for (std::int64_t k = 0; k < e.options.judge_pairs; ++k) {
    MetaItem item;
    item.prompt = static_cast<std::size_t>(k) % n_prompts;
    const TaskInstance& task = e.prompts[item.prompt].task;
    const auto round = static_cast<std::uint64_t>(k) / n_prompts;
    Rng rng(stream_seed(recipe::stable_hash(task.prompt), kStreamMetaItems + round));
    const auto teacher = teacher_candidates(task);
    item.response = teacher[static_cast<std::size_t>(rng.uniform_below(teacher.size()))].text;
    item.oracle = oracle_score(task, item.response).score;
    // Exact labels: the better judgment is strictly closer to the oracle score.
    const MetaJudgeExample ex = meta_judge_example(item.oracle, {0.0, 0.7}, rng);
    item.a_better = ex.a_better;

    sdk::PromptGroup group;
    group.prompt_id = "m" + std::to_string(k);
    group.prompt = {{"user", task.prompt}};
    sdk::ResponseCandidate r;
    r.id = group.prompt_id + "/r";
    r.text = item.response;
    r.length_chars = recipe::utf8_length(r.text);
    r.judgments = {{r.id + "/a", ex.judgment_a, static_cast<double>(ex.score_a)},
                   {r.id + "/b", ex.judgment_b, static_cast<double>(ex.score_b)}};
    r.mean_score = (ex.score_a + ex.score_b) / 2.0;
    group.responses.push_back(std::move(r));
    groups.push_back(std::move(group));
    meta_items.push_back(std::move(item));
  }
  // The run's own strategy renders the battles (its template, system prompt, both orders).
  std::vector<sdk::BattleRequest> battles = e.request.meta->plan(groups, *e.request.rubric, info);
  const bool fallback = battles.empty();
  if (fallback) {
    // A strategy that plans no battles (meta_judge = "none"): the testbed's template.
    e.ctx.logger().info(
        "testbed eval: the meta-judge strategy plans no battles; meta-judge items use the "
        "testbed's compact pairwise_elo template and the default verdict pattern");
    for (std::size_t k = 0; k < meta_items.size(); ++k) {
      const auto& item = meta_items[k];
      const auto& r = groups[k].responses[0];
      for (int order = 0; order < 2; ++order) {
        const auto& first = r.judgments[order == 0 ? 0 : 1];
        const auto& second = r.judgments[order == 0 ? 1 : 0];
        sdk::BattleRequest b;
        b.id = r.id + (order == 0 ? "/a-b" : "/b-a");
        b.prompt_id = groups[k].prompt_id;
        b.response_id = r.id;
        b.judgment_a_id = first.id;
        b.judgment_b_id = second.id;
        b.messages = meta_judge_conversation(groups[k].prompt, item.response, first.text,
                                             second.text, kTestbedMetaJudgeTemplate);
        battles.push_back(std::move(b));
      }
    }
  }
  // judgment id -> (item, whether it is the better judgment)
  std::unordered_map<std::string, std::pair<std::size_t, bool>> judgment_of;
  std::unordered_map<std::string, std::string> text_of;
  for (std::size_t k = 0; k < meta_items.size(); ++k) {
    const auto& r = groups[k].responses[0];
    judgment_of[r.judgments[0].id] = {k, meta_items[k].a_better};
    judgment_of[r.judgments[1].id] = {k, !meta_items[k].a_better};
    for (const auto& j : r.judgments) text_of[j.id] = j.text;
  }
  std::vector<sdk::GenerationRequest> meta_requests;
  for (std::size_t b = 0; b < battles.size(); ++b) {
    sdk::GenerationRequest g;
    g.id = battles[b].id;
    g.messages = battles[b].messages;
    g.sampling = sampling(e.options.temperature, e.options.meta_judge_max_new_tokens);
    g.seed = request_seed(e.request.info.seed, kStreamMeta, b);
    meta_requests.push_back(std::move(g));
  }
  const auto meta_results = generate_batched(*e.request.meta_judge, meta_requests,
                                             e.options.batch_size, e.request.stop_requested, e.ctx,
                                             "eval meta-judge", e.generation_log("meta_judge"));
  std::vector<sdk::Battle> verdicts;
  for (std::size_t b = 0; b < battles.size(); ++b) {
    bool failed = false;
    verdicts.push_back({battles[b], sample_text(meta_results[b], 0, failed), 0});
  }
  // Outcomes as the run's strategy parses them (its verdict pattern), else the default one.
  std::unordered_map<std::string, int> outcome_of;
  if (fallback) {
    const recipe::VerdictParser parser;
    for (const auto& v : verdicts) outcome_of[v.request.id] = parser.parse(v.verdict_text);
  } else {
    const sdk::MetaJudgeResult decided =
        e.request.meta->decide(groups, *e.request.rubric, verdicts, info, 0);
    for (const auto& v : decided.battles) outcome_of[v.request.id] = v.outcome;
  }
  std::int64_t total = 0, unparsed = 0, right = 0, a_wins = 0;
  std::vector<ordered_json> meta_rows;
  for (const auto& v : verdicts) {
    auto a = judgment_of.find(v.request.judgment_a_id);
    auto b = judgment_of.find(v.request.judgment_b_id);
    if (a == judgment_of.end() || b == judgment_of.end() || a->second.first != b->second.first)
      continue;  // Not one of our items (a strategy may add its own battles).
    const auto found = outcome_of.find(v.request.id);
    const int outcome = found == outcome_of.end() ? 0 : found->second;
    const bool a_good = a->second.second;
    const bool is_right = (outcome > 0 && a_good) || (outcome < 0 && !a_good);
    ++total;
    if (outcome == 0) ++unparsed;
    if (outcome > 0) ++a_wins;
    if (is_right) ++right;
    const MetaItem& item = meta_items[a->second.first];
    meta_rows.push_back(ordered_json{{"id", v.request.id},
                                     {"prompt_id", e.prompts[item.prompt].id},
                                     {"response", item.response},
                                     {"oracle_score", item.oracle},
                                     {"judgment_a", text_of.at(v.request.judgment_a_id)},
                                     {"judgment_b", text_of.at(v.request.judgment_b_id)},
                                     {"better", a_good ? "A" : "B"},
                                     {"verdict", v.verdict_text},
                                     {"outcome", outcome},
                                     {"correct", is_right}});
  }
  write_jsonl(e.request.output_dir, "meta_judgments.jsonl", meta_rows);
  if (total > 0) {
    const std::int64_t valid = total - unparsed;
    m["meta_judge/parse_failure_rate"] = share(unparsed, total);
    if (valid > 0) {
      m["meta_judge/accuracy"] = share(right, valid);
      m["meta_judge/position_a_rate"] = share(a_wins, valid);
    }
  } else {
    e.ctx.logger().warn("testbed eval: the meta-judge strategy planned none of the " +
                        std::to_string(meta_items.size()) + " items; meta_judge metrics omitted");
  }
}

}  // namespace

sdk::EvaluationResult TestbedEvaluator::evaluate(const sdk::EvaluationRequest& request) {
  MR_CHECK(request.actor != nullptr && request.judge != nullptr && request.meta_judge != nullptr &&
               request.rubric != nullptr && request.meta != nullptr,
           "testbed evaluator: the request lacks a model, the rubric or the meta-judge strategy");
  const Evaluation e{ctx_, options_, prompts_, request};
  sdk::EvaluationResult result;
  auto& m = result.metrics;
  const ActorAnswers actor = evaluate_actor(e, m);
  add_win_rate(e, actor.grades, m);
  evaluate_judge(e, actor, m);
  if (options_.judge_pairs > 0) evaluate_meta_judge(e, m);
  // Every stage's rows are written: a re-evaluation would not read these logs any more.
  for (const char* stage : {"actor", "judge", "meta_judge"})
    discard_generation_log(e.generation_log(stage));

  std::string summary = "testbed eval (iteration " + std::to_string(request.info.iteration) + "):";
  for (const char* key : {"actor/oracle_score", "actor/exact_accuracy", "actor/win_rate_vs_seed",
                          "judge/pairwise_accuracy", "judge/spearman", "meta_judge/accuracy"}) {
    auto it = m.find(key);
    if (it == m.end()) continue;
    char buf[64];
    std::snprintf(buf, sizeof buf, " %s %.3f", key, it->second);
    summary += buf;
  }
  ctx_.logger().info(summary);
  return result;
}

}  // namespace mr::plugins::testbed
