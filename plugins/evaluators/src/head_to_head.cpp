// Answers, judge prompt, verdict parsing and games shared by pairwise_winrate and arena_score
// (head_to_head.hpp).
#include "metareward/evaluators/head_to_head.hpp"

#include <algorithm>
#include <cctype>
#include <map>

#include "metareward/evaluators/cached_generation.hpp"
#include "metareward/sdk/error.hpp"
#include "text_util.hpp"  // mr_recipe_impl

namespace mr::plugins::evaluators {

namespace fs = std::filesystem;
using json = nlohmann::json;
using sdk::ParamSpec;

// Seed streams: answers and verdicts are seeded by content, never by iteration, so a cached
// answer or verdict is the one a fresh call would give.
constexpr std::uint64_t kStreamAnswer = 0x683268416e737772ULL;   // "h2hAnswr"
constexpr std::uint64_t kStreamOrder = 0x683268326f726465ULL;    // "h2h2orde"
constexpr std::uint64_t kStreamVerdict = 0x6832685665726469ULL;  // "h2hVerdi"

sdk::Schema pairwise_template_schema(const HeadToHeadDefaults& d) {
  return {
      ParamSpec::string_("judge_system", d.judge_system,
                         "System prompt of the pairwise judge; empty = none."),
      ParamSpec::string_("judge_template", d.judge_template,
                         "The pairwise judge prompt. Placeholders (substituted in one pass): "
                         "{instruction}, {output_a}, {output_b} (all three required)."),
      ParamSpec::string_("verdict_regex", d.verdict_regex,
                         "PCRE2 regex (case-insensitive) with one capture group holding the "
                         "verdict label; the last match in the judge's output decides."),
      ParamSpec::string_list("verdict_labels", d.verdict_labels,
                             "'LABEL=VALUE' per label the regex captures: VALUE is output A's "
                             "outcome, 2 much better, 1 better, 0 tie, -1 worse, -2 much worse. "
                             "A captured label not listed is a parse failure (counted).")};
}

sdk::Schema head_to_head_schema(const HeadToHeadDefaults& d) {
  sdk::Schema schema = {
      ParamSpec::required_("instructions", sdk::ParamType::String,
                           "JSON array or JSONL file of instructions: AlpacaEval records "
                           "(instruction, output, generator, instruction_difficulty), Arena-Hard "
                           "questions (question_id, turns) or {\"prompt\"} rows. Relative paths "
                           "are relative to the working directory."),
      ParamSpec::int_("limit", 0, "Use only the first N instructions (0 = all).").range(0, {}),
      ParamSpec::string_("baseline_outputs", "",
                         "File (same formats) holding the baseline's 'output' per instruction, "
                         "matched by id, else by instruction text. Empty: baseline_model, else "
                         "the instructions' own 'output' fields (AlpacaEval's files carry the "
                         "reference model's)."),
      ParamSpec::string_("baseline_model", "",
                         "A [models.NAME] that generates the baseline's answers (with the same "
                         "sampling as the model), cached in RUN/eval_cache."),
      ParamSpec::string_("judge_model", "",
                         "The [models.NAME] that judges (typically an `openai` model serving a "
                         "strong judge). Empty: the run's judge role (self-judging: cheap, but "
                         "not the paper's protocol)."),
      ParamSpec::float_("temperature", 0.0,
                        "Sampling temperature of the model's answers (0 = greedy, as AlpacaEval "
                        "and Arena-Hard run models).")
          .range(0.0, 5.0),
      ParamSpec::float_("top_p", 1.0, "Nucleus sampling of the answers (temperature > 0 only).")
          .range(0.0, 1.0, true, false),
      ParamSpec::int_("max_new_tokens", 1024, "Token limit of each answer.").range(1, {}),
      ParamSpec::int_("judge_max_new_tokens", 1024, "Token limit of each verdict.").range(1, {}),
      ParamSpec::float_("judge_temperature", 0.0, "Judge sampling temperature (0 = greedy).")
          .range(0.0, 5.0),
      ParamSpec::string_("order", d.order,
                         "'both': every instruction judged twice, the outputs' positions swapped "
                         "(position bias cancels; twice the judge calls); 'random': once, the "
                         "model's position drawn per instruction from the run seed.")
          .one_of({"both", "random"}),
      ParamSpec::int_("batch_size", 16,
                      "Requests per generate() call (each batch is cached "
                      "durably before the next).")
          .range(1, {}),
      ParamSpec::int_("bootstrap_rounds", d.bootstrap_rounds,
                      "Bootstrap resamples of the instructions for the confidence intervals.")
          .range(10, {}),
      ParamSpec::float_("confidence", d.confidence,
                        "Coverage of the bootstrap percentile intervals (…/ci_low, …/ci_high).")
          .range(0.5, 1.0, false, true),
  };
  const sdk::Schema judge = pairwise_template_schema(d);
  schema.insert(schema.begin() + 10, judge.begin(), judge.end());
  return schema;
}

// ---------------------------------------------------------------------------------------------

namespace {

/// `s` upper-cased without whitespace: "a >> b" and "A>>B" are one label.
std::string upper_trimmed(std::string_view s) {
  std::string out;
  for (char c : s)
    if (!std::isspace(static_cast<unsigned char>(c)))
      out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string checked_template(const sdk::Config& config) {
  const std::string t = config.get_string("judge_template");
  for (const char* p : {"instruction", "output_a", "output_b"})
    if (!recipe::has_placeholder(t, p))
      config.fail("judge_template", std::string("must contain the placeholder {") + p + "}");
  return t;
}

std::vector<std::pair<std::string, int>> parse_labels(const sdk::Config& config) {
  std::vector<std::pair<std::string, int>> out;
  for (const std::string& entry : config.get_string_list("verdict_labels")) {
    const auto eq = entry.rfind('=');
    int value = 0;
    bool ok = eq != std::string::npos && eq > 0;
    if (ok) {
      const std::string v = entry.substr(eq + 1);
      ok = v == "2" || v == "1" || v == "0" || v == "-1" || v == "-2";
      if (ok) value = std::stoi(v);
    }
    if (!ok)
      config.fail("verdict_labels",
                  "entry '" + entry + "' is not LABEL=VALUE with VALUE one of 2, 1, 0, -1, -2");
    out.emplace_back(upper_trimmed(entry.substr(0, eq)), value);
  }
  if (out.empty()) config.fail("verdict_labels", "needs at least one LABEL=VALUE");
  return out;
}

}  // namespace

PairwiseTemplate::PairwiseTemplate(const sdk::Config& config)
    : system_(config.get_string("judge_system")),
      template_(checked_template(config)),
      pattern_(
          recipe::Pattern::compile(config.get_string("verdict_regex"), config, "verdict_regex")),
      labels_(parse_labels(config)) {
  std::vector<std::string> parts{system_, template_, pattern_.source()};
  for (const auto& [label, value] : labels_) parts.push_back(label + "=" + std::to_string(value));
  fingerprint_ = content_key(parts);
}

sdk::Conversation PairwiseTemplate::render(const std::string& instruction,
                                           const std::string& output_a,
                                           const std::string& output_b) const {
  sdk::Conversation out;
  if (!system_.empty()) out.push_back({"system", system_});
  out.push_back({"user", recipe::substitute(template_, {{"instruction", instruction},
                                                        {"output_a", output_a},
                                                        {"output_b", output_b}})});
  return out;
}

PairwiseTemplate::Verdict PairwiseTemplate::parse(std::string_view judge_output) const {
  Verdict v;
  const auto match = pattern_.last_capture(judge_output);
  if (!match.error.empty()) {
    v.error = "verdict_regex failed: " + match.error;
    return v;
  }
  if (!match.matched || !match.captured) {
    v.error = "no verdict (verdict_regex did not match)";
    return v;
  }
  v.label = match.capture;
  const std::string key = upper_trimmed(match.capture);
  for (const auto& [label, value] : labels_)
    if (label == key) {
      v.outcome = value;
      return v;
    }
  v.error = "verdict '" + match.capture + "' is not one of verdict_labels";
  return v;
}

// ---------------------------------------------------------------------------------------------

namespace {

std::size_t model_chars(const std::string& s) {
  return static_cast<std::size_t>(recipe::utf8_length(s));
}

/// The baseline's answer per instruction (nullopt: none), and the unusable rows.
std::vector<std::optional<std::string>> baseline_from_file(const fs::path& file,
                                                           const std::vector<Instruction>& items,
                                                           Drops& drops) {
  Drops file_drops;
  const std::vector<Instruction> rows = read_instructions(file, file_drops);
  std::map<std::string, std::string> by_id, by_text;
  for (const auto& r : rows) {
    if (!r.output) continue;
    by_id.emplace(r.id, *r.output);
    by_text.emplace(r.text, *r.output);
  }
  std::vector<std::optional<std::string>> out;
  for (const auto& item : items) {
    if (auto it = by_id.find(item.id); it != by_id.end()) {
      out.emplace_back(it->second);
    } else if (auto jt = by_text.find(item.text); jt != by_text.end()) {
      out.emplace_back(jt->second);
    } else {
      out.emplace_back(std::nullopt);
      drops.reasons.push_back(file.string() + ": no output for instruction '" + item.id + "'");
    }
  }
  drops.reasons.insert(drops.reasons.end(), file_drops.reasons.begin(), file_drops.reasons.end());
  return out;
}

std::vector<KeyedRequest> answer_requests(const std::vector<Instruction>& items,
                                          const sdk::ModelBackend& model,
                                          const sdk::SamplingParams& sampling,
                                          std::uint64_t seed) {
  std::vector<KeyedRequest> out;
  const std::string identity = model_identity(model);
  for (const auto& item : items) {
    KeyedRequest k;
    k.request.id = item.id;
    k.request.messages = {{"user", item.text}};
    k.request.sampling = sampling;
    k.request.seed =
        sdk::derive_seed(sdk::derive_seed(seed, kStreamAnswer), recipe::stable_hash(item.text));
    k.key = content_key(
        {"answer", identity, item.text, sampling_key(sampling), std::to_string(k.request.seed)});
    out.push_back(std::move(k));
  }
  return out;
}

}  // namespace

HeadToHead play_head_to_head(const sdk::Config& config,
                             const sdk::EvaluationRequest& request,
                             sdk::HostContext& ctx,
                             const PairwiseTemplate& judge_template) {
  HeadToHead result;
  std::vector<Instruction> items =
      read_instructions(config.get_string("instructions"), result.drops);
  if (const auto limit = config.get_int("limit");
      limit > 0 && items.size() > static_cast<std::size_t>(limit))
    items.resize(static_cast<std::size_t>(limit));
  const int batch = static_cast<int>(config.get_int("batch_size"));
  const sdk::SamplingParams sampling =
      make_sampling(config.get_float("temperature"), config.get_float("top_p"),
                    static_cast<int>(config.get_int("max_new_tokens")));
  const std::uint64_t seed = ctx.seed();

  // The model's answers (this evaluation's models: cached beside its rows).
  RecordStore answers(request.output_dir / "answers.jsonl", ctx.logger());
  GenerationCounts counts;
  const auto model_out =
      generate_cached(*request.actor, answer_requests(items, *request.actor, sampling, seed),
                      answers, batch, request.stop_requested, ctx, "model answers", counts);

  // The baseline's.
  std::vector<std::optional<std::string>> baseline(items.size());
  const std::string baseline_file = config.get_string("baseline_outputs");
  const std::string baseline_model = config.get_string("baseline_model");
  if (!baseline_file.empty() && !baseline_model.empty())
    config.fail("baseline_model", "set either baseline_outputs or baseline_model, not both");
  if (!baseline_file.empty()) {
    baseline = baseline_from_file(baseline_file, items, result.drops);
  } else if (!baseline_model.empty()) {
    sdk::ModelBackend* model = request.model(baseline_model);
    RecordStore store(request.cache_dir / "baseline_answers.jsonl", ctx.logger());
    GenerationCounts baseline_counts;
    const auto out =
        generate_cached(*model, answer_requests(items, *model, sampling, seed), store, batch,
                        request.stop_requested, ctx, "baseline answers", baseline_counts);
    for (std::size_t i = 0; i < items.size(); ++i)
      if (out[i]) baseline[i] = out[i]->text;
  } else {
    for (std::size_t i = 0; i < items.size(); ++i) baseline[i] = items[i].output;
    if (std::none_of(baseline.begin(), baseline.end(), [](const auto& b) { return b.has_value(); }))
      config.fail("baseline_outputs",
                  "no baseline: the instructions carry no 'output'; set baseline_outputs (a file "
                  "of the baseline's outputs) or baseline_model");
    for (std::size_t i = 0; i < items.size(); ++i)
      if (!baseline[i])
        result.drops.reasons.push_back(config.get_string("instructions") + ": instruction '" +
                                       items[i].id + "' has no 'output' (baseline)");
  }

  // The games.
  const std::string judge_name = config.get_string("judge_model");
  sdk::ModelBackend& judge = judge_name.empty() ? *request.judge : *request.model(judge_name);
  const sdk::SamplingParams judge_sampling =
      make_sampling(config.get_float("judge_temperature"), 1.0,
                    static_cast<int>(config.get_int("judge_max_new_tokens")));
  const std::string judge_identity = model_identity(judge);
  const bool both = config.get_string("order") == "both";
  std::vector<KeyedRequest> verdict_requests;
  std::vector<std::pair<std::size_t, std::size_t>> game_of;  // (item, game)
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (!model_out[i] || !baseline[i]) {
      if (!model_out[i]) ++result.answer_failures;
      continue;
    }
    HeadToHeadItem item;
    item.instruction = items[i];
    item.model_output = model_out[i]->text;
    item.model_truncated = model_out[i]->truncated;
    item.baseline_output = *baseline[i];
    item.identical = item.model_output == item.baseline_output;
    std::vector<bool> orders;
    if (both) {
      orders = {true, false};
    } else {
      orders = {recipe::seeded_index(sdk::derive_seed(sdk::derive_seed(seed, kStreamOrder),
                                                      recipe::stable_hash(items[i].text)),
                                     2) == 0};
    }
    for (bool model_first : orders) {
      Game game;
      game.model_first = model_first;
      if (item.identical) game.outcome = 0;
      item.games.push_back(game);
      if (item.identical) continue;
      const std::string& a = model_first ? item.model_output : item.baseline_output;
      const std::string& b = model_first ? item.baseline_output : item.model_output;
      KeyedRequest k;
      k.request.id = items[i].id + (model_first ? "/model-first" : "/baseline-first");
      k.request.messages = judge_template.render(items[i].text, a, b);
      k.request.sampling = judge_sampling;
      const std::string game_key = content_key(
          {judge_template.fingerprint(), items[i].text, a, b, sampling_key(judge_sampling)});
      k.key = content_key({"verdict", judge_identity, game_key});
      // Seeded by the game, not the judge's identity: the same judge served over HTTP or loaded
      // in process samples the same verdict.
      k.request.seed = sdk::derive_seed(kStreamVerdict, recipe::stable_hash(game_key));
      verdict_requests.push_back(std::move(k));
      game_of.emplace_back(result.items.size(), item.games.size() - 1);
    }
    result.items.push_back(std::move(item));
  }
  RecordStore verdicts(request.cache_dir / "verdicts.jsonl", ctx.logger());
  GenerationCounts verdict_counts;
  const auto judged = generate_cached(judge, verdict_requests, verdicts, batch,
                                      request.stop_requested, ctx, "verdicts", verdict_counts);
  result.verdicts_asked = verdict_counts.asked;
  result.verdicts_cached = verdict_counts.cached;
  for (std::size_t v = 0; v < judged.size(); ++v) {
    Game& game = result.items[game_of[v].first].games[game_of[v].second];
    if (!judged[v]) {
      ++result.verdict_failures;
      game.error = "the judge's request failed";
      continue;
    }
    game.verdict_text = judged[v]->text;
    const PairwiseTemplate::Verdict verdict = judge_template.parse(game.verdict_text);
    game.label = verdict.label;
    if (!verdict.outcome) {
      ++result.parse_failures;
      game.error = verdict.error;
      continue;
    }
    game.outcome = game.model_first ? *verdict.outcome : -*verdict.outcome;
  }
  return result;
}

std::vector<json> head_to_head_rows(const HeadToHead& result) {
  std::vector<json> rows;
  for (const auto& item : result.items) {
    json games = json::array();
    for (const auto& g : item.games) {
      json game = {{"model_position", g.model_first ? "A" : "B"},
                   {"outcome", g.outcome ? json(*g.outcome) : json(nullptr)},
                   {"label", g.label}};
      if (!g.error.empty()) game["error"] = g.error;
      if (!item.identical) game["verdict"] = g.verdict_text;
      games.push_back(std::move(game));
    }
    rows.push_back({{"id", item.instruction.id},
                    {"instruction", item.instruction.text},
                    {"output", item.model_output},
                    {"baseline_output", item.baseline_output},
                    {"length_chars", model_chars(item.model_output)},
                    {"baseline_length_chars", model_chars(item.baseline_output)},
                    {"truncated", item.model_truncated},
                    {"identical", item.identical},
                    {"games", std::move(games)}});
  }
  return rows;
}

void log_head_to_head(const HeadToHead& result, sdk::HostContext& ctx, const std::string& name) {
  auto& log = ctx.logger();
  if (result.drops.count() > 0) {
    std::string first;
    for (std::size_t i = 0; i < std::min<std::size_t>(3, result.drops.count()); ++i)
      first += "\n  " + result.drops.reasons[i];
    log.log(sdk::LogLevel::Warn,
            name + ": dropped " + std::to_string(result.drops.count()) + " input row(s):" + first);
  }
  if (result.parse_failures + result.verdict_failures + result.answer_failures > 0)
    log.log(sdk::LogLevel::Warn,
            name + ": " + std::to_string(result.parse_failures) + " verdict(s) did not parse, " +
                std::to_string(result.verdict_failures) + " judge call(s) and " +
                std::to_string(result.answer_failures) +
                " answer(s) failed (left out; counted in the metrics)");
  log.log(sdk::LogLevel::Info, name + ": " + std::to_string(result.items.size()) +
                                   " instructions, " + std::to_string(result.verdicts_asked) +
                                   " verdicts asked, " + std::to_string(result.verdicts_cached) +
                                   " from the cache");
}

void put_with_ci(std::map<std::string, double>& metrics,
                 const std::string& key,
                 double value,
                 double low,
                 double high) {
  metrics[key] = value;
  metrics[key + "/ci_low"] = low;
  metrics[key + "/ci_high"] = high;
}

}  // namespace mr::plugins::evaluators
