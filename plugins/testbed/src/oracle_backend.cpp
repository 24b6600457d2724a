// The `testbed_oracle` model backend: a judge and meta-judge of set quality (oracle_backend.hpp).
#include "metareward/testbed/oracle_backend.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "metareward/sdk/error.hpp"
#include "metareward/testbed/judge_data.hpp"
#include "metareward/testbed/oracle.hpp"
#include "metareward/testbed/rng.hpp"
#include "metareward/testbed/tasks.hpp"
#include "score_parser.hpp"  // mr_recipe_impl: the parser additive5 uses

namespace mr::plugins::testbed {

namespace sdk = mr::sdk;

namespace {

// Stream ids of the draws, so that the judge's and the meta-judge's noise are independent.
constexpr std::uint64_t kJudgeStream = 0x6a75646765ULL;  // "judge"
constexpr std::uint64_t kMetaStream = 0x6d657461ULL;     // "meta"

/// A template cut into its literal parts; literals.size() == placeholders + 1.
struct TemplateParts {
  std::vector<std::string> literals;
};

TemplateParts split_template(std::string_view t) {
  TemplateParts parts;
  std::string literal;
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (t.compare(i, 2, "{{") == 0 || t.compare(i, 2, "}}") == 0) {
      literal += t[i];
      ++i;
      continue;
    }
    if (t[i] == '{') {
      const std::size_t close = t.find('}', i);
      if (close != std::string_view::npos) {
        parts.literals.push_back(std::move(literal));
        literal.clear();
        i = close;
        continue;
      }
    }
    literal += t[i];
  }
  parts.literals.push_back(std::move(literal));
  return parts;
}

/// The user text of a one-turn prompt (what additive5 and pairwise_elo send), or nullopt.
std::optional<std::string> lone_user_text(const sdk::Conversation& messages) {
  if (messages.size() != 1 || messages[0].role != "user") return std::nullopt;
  return messages[0].content;
}

double probability(const sdk::Config& config, const char* key) {
  const double p = config.get_float(key);
  if (!(p >= 0.0 && p <= 1.0)) config.fail(key, "must be a probability in [0, 1]");
  return p;
}

}  // namespace

sdk::Schema oracle_backend_schema() {
  using sdk::ParamSpec;
  const OracleBackendOptions d;
  return {
      ParamSpec::string_("judge_template", kTestbedJudgeTemplate,
                         "The [judge_rubric] template of the run (the testbed's compact one by "
                         "default): judge prompts are recognised by its literal text."),
      ParamSpec::string_("meta_judge_template", kTestbedMetaJudgeTemplate,
                         "The [meta_judge] template of the run: meta-judge prompts are recognised "
                         "by its literal text."),
      ParamSpec::float_("judge_accuracy", d.judge_accuracy,
                        "Probability that a judgment states the oracle score; otherwise a "
                        "uniformly random score 0-5.")
          .range(0.0, 1.0),
      ParamSpec::float_("length_bias", d.length_bias,
                        "Points the judge adds per extra sentence of the response (after the "
                        "accuracy draw; stochastically rounded, clipped to 0-5).")
          .range(0.0, 5.0),
      ParamSpec::float_("meta_accuracy", d.meta_accuracy,
                        "Probability that a verdict names the judgment closer to the oracle "
                        "score (when no position bias applies).")
          .range(0.0, 1.0),
      ParamSpec::float_("meta_position_bias", d.meta_position_bias,
                        "Probability that a verdict names judgment A (shown first) whatever "
                        "the judgments say.")
          .range(0.0, 1.0),
      ParamSpec::int_("max_prompt_bytes", d.max_prompt_bytes,
                      "Longest prompt accepted; a longer one fails alone.")
          .range(1.0, std::nullopt),
  };
}

OracleBackendOptions OracleBackendOptions::from_config(const sdk::Config& config) {
  OracleBackendOptions o;
  o.judge_template = config.get_string("judge_template");
  o.meta_judge_template = config.get_string("meta_judge_template");
  o.judge_accuracy = probability(config, "judge_accuracy");
  o.length_bias = config.get_float("length_bias");
  if (!(o.length_bias >= 0.0 && o.length_bias <= 5.0))
    config.fail("length_bias", "must be in [0, 5] points per sentence");
  o.meta_accuracy = probability(config, "meta_accuracy");
  o.meta_position_bias = probability(config, "meta_position_bias");
  o.max_prompt_bytes = config.get_int("max_prompt_bytes");
  if (o.max_prompt_bytes < 1) config.fail("max_prompt_bytes", "must be >= 1");
  const auto need = [&](const char* key, const std::string& t, std::size_t placeholders) {
    if (split_template(t).literals.size() != placeholders + 1)
      config.fail(key, "must have exactly " + std::to_string(placeholders) +
                           " placeholders, as the recipe's template does");
  };
  need("judge_template", o.judge_template, 2);
  need("meta_judge_template", o.meta_judge_template, 4);
  if (o.judge_template == o.meta_judge_template)
    config.fail("meta_judge_template", "must differ from judge_template");
  return o;
}

std::optional<std::vector<std::string>> match_template(std::string_view template_text,
                                                       std::string_view text) {
  const TemplateParts parts = split_template(template_text);
  const auto& lit = parts.literals;
  if (text.substr(0, lit.front().size()) != lit.front()) return std::nullopt;
  const std::string& tail = lit.back();
  if (text.size() < lit.front().size() + tail.size() ||
      text.substr(text.size() - tail.size()) != tail)
    return std::nullopt;
  const std::size_t end = text.size() - tail.size();
  std::vector<std::string> values;
  std::size_t pos = lit.front().size();
  for (std::size_t k = 1; k + 1 < lit.size(); ++k) {
    const std::size_t at = text.find(lit[k], pos);
    if (at == std::string_view::npos || at > end) return std::nullopt;
    values.emplace_back(text.substr(pos, at - pos));
    pos = at + lit[k].size();
  }
  if (lit.size() >= 2) {
    if (pos > end) return std::nullopt;
    values.emplace_back(text.substr(pos, end - pos));
  }
  return values;
}

int extra_sentences(std::string_view response) {
  const std::string_view t = trim_ascii(response);
  int ends = 0;
  for (std::size_t i = 0; i < t.size(); ++i) {
    const char c = t[i];
    if (c != '.' && c != '!' && c != '?') continue;
    const bool at_end = i + 1 == t.size();
    if (at_end || t[i + 1] == ' ' || t[i + 1] == '\n' || t[i + 1] == '\t') ++ends;
  }
  // "42" and "The answer is 42." are one sentence; every further one is filler.
  return std::max(0, ends - 1);
}

int controlled_judge_score(int oracle,
                           int extra,
                           const OracleBackendOptions& options,
                           std::uint64_t seed) {
  Rng rng(stream_seed(seed, kJudgeStream));
  const bool accurate = rng.bernoulli(options.judge_accuracy);
  const auto random_score = static_cast<int>(rng.uniform_int(0, kOracleCriteria));
  double score = accurate ? oracle : random_score;
  const double bias = options.length_bias * extra;
  const double whole = std::floor(bias);
  score += whole + (rng.bernoulli(bias - whole) ? 1.0 : 0.0);
  return std::clamp(static_cast<int>(score), 0, kOracleCriteria);
}

bool controlled_verdict_a(int oracle,
                          std::optional<double> score_a,
                          std::optional<double> score_b,
                          const OracleBackendOptions& options,
                          std::uint64_t seed) {
  Rng rng(stream_seed(seed, kMetaStream));
  const bool position = rng.bernoulli(options.meta_position_bias);
  const bool accurate = rng.bernoulli(options.meta_accuracy);
  const bool coin = rng.bernoulli(0.5);
  if (position) return true;
  // An unparseable judgment is the farthest from the oracle.
  const auto distance = [&](const std::optional<double>& s) {
    return s ? std::abs(*s - oracle) : 1e9;
  };
  const double da = distance(score_a), db = distance(score_b);
  const bool a_better = da < db || (da == db && coin);
  return accurate ? a_better : !a_better;
}

OracleBackend::OracleBackend(sdk::HostContext& ctx)
    : options_(OracleBackendOptions::from_config(ctx.config())) {
  const std::string& path = ctx.config().path();
  const std::string prefix = "models.";
  name_ = path.rfind(prefix, 0) == 0 ? path.substr(prefix.size()) : path;
}

sdk::ModelInfo OracleBackend::info() const {
  sdk::ModelInfo i;
  i.name = name_;
  i.architecture = "testbed_oracle";
  i.path = "";
  i.parameters = 0;
  i.context_length = options_.max_prompt_bytes;
  return i;
}

std::int64_t OracleBackend::count_tokens(std::string_view text) const {
  return static_cast<std::int64_t>(text.size());
}

void OracleBackend::reload(const std::filesystem::path&) {}

std::vector<sdk::GenerationResult> OracleBackend::generate(
    const std::vector<sdk::GenerationRequest>& requests) {
  std::vector<sdk::GenerationResult> out;
  out.reserve(requests.size());
  for (const auto& r : requests) out.push_back(generate_one(r));
  return out;
}

sdk::GenerationResult OracleBackend::generate_one(const sdk::GenerationRequest& request) const {
  sdk::GenerationResult result;
  result.request_id = request.id;
  const auto fail = [&](const std::string& why) {
    result.error = "testbed_oracle '" + name_ + "': request '" + request.id + "': " + why;
    return result;
  };
  const std::optional<std::string> text =
      request.prompt_text.empty() ? lone_user_text(request.messages) : request.prompt_text;
  if (!text) return fail("expected one user turn (a judge or meta-judge prompt)");
  result.prompt_tokens = count_tokens(*text);
  if (result.prompt_tokens > options_.max_prompt_bytes)
    return fail("prompt of " + std::to_string(result.prompt_tokens) +
                " bytes exceeds max_prompt_bytes " + std::to_string(options_.max_prompt_bytes));

  // The meta-judge template is tried first: it extends the judge's in the testbed's defaults.
  const auto meta = match_template(options_.meta_judge_template, *text);
  const auto judge = meta ? std::nullopt : match_template(options_.judge_template, *text);
  if (!meta && !judge)
    return fail(
        "the prompt matches neither judge_template nor meta_judge_template; "
        "testbed_oracle plays judge and meta-judge only");
  const std::string& instruction = meta ? (*meta)[0] : (*judge)[0];
  const std::string& response = meta ? (*meta)[1] : (*judge)[1];
  const std::optional<TaskInstance> task = parse_prompt(instruction);
  if (!task) return fail("the task in the prompt is not a testbed task the oracle can grade");
  const int oracle = oracle_score(*task, response).score;
  // What the prompt says is read once; only the draws differ between samples.
  std::optional<double> score_a, score_b;
  if (meta) {
    static const recipe::ScoreParser parser(
        sdk::ScoreRange{0.0, static_cast<double>(kOracleCriteria)});
    score_a = parser.parse((*meta)[2]).score;
    score_b = parser.parse((*meta)[3]).score;
  }
  const int extra = meta ? 0 : extra_sentences(response);

  if (request.n < 1) return fail("n must be >= 1, got " + std::to_string(request.n));
  for (int i = 0; i < request.n; ++i) {
    const std::uint64_t seed = stream_seed(request.seed, static_cast<std::uint64_t>(i));
    std::string completion =
        meta ? verdict_text(controlled_verdict_a(oracle, score_a, score_b, options_, seed))
             : judgment_text(controlled_judge_score(oracle, extra, options_, seed));
    sdk::Completion c;
    const auto budget = static_cast<std::size_t>(std::max(0, request.sampling.max_new_tokens));
    if (completion.size() > budget) {
      completion.resize(budget);
      c.finish_reason = sdk::FinishReason::Length;
    }
    c.tokens = static_cast<std::int64_t>(completion.size());
    c.text = std::move(completion);
    result.completions.push_back(std::move(c));
  }
  return result;
}

}  // namespace mr::plugins::testbed
