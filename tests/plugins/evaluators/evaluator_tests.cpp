// The three evaluators driven by scripted models: metrics against hand-computed values, both
// presentation orders, ties without a judge call, the content-keyed caches (a re-run asks the
// judge nothing; an interrupted evaluation resumes), and the strong-judge relabelling.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "metareward/evaluators/evaluators.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/sdk/judge_rubric.hpp"
#include "scripted_backend.hpp"
#include "test_host_context.hpp"

namespace fs = std::filesystem;
using namespace mr::plugins::evaluators;
using mr::test::ScriptedBackend;

namespace {

/// The text between `open` and `close` in the last user message.
std::string between(const mr::sdk::GenerationRequest& r,
                    const std::string& open,
                    const std::string& close) {
  const std::string& t = r.messages.back().content;
  const auto b = t.find(open);
  const auto e = t.find(close, b + open.size());
  return t.substr(b + open.size(), e - b - open.size());
}

/// A judge for the test template "I: {instruction}\nA: {output_a}\nB: {output_b}\nEND": prefers
/// the longer output ("[[A]]" / "[[B]]", or the arena labels), "[[tie]]"-free.
std::vector<std::string> longer_wins(const mr::sdk::GenerationRequest& r, bool arena) {
  const std::string a = between(r, "\nA: ", "\nB: "), b = between(r, "\nB: ", "\nEND");
  if (arena) {
    const long d = static_cast<long>(a.size()) - static_cast<long>(b.size());
    return {d > 5     ? "[[A>>B]]"
            : d > 0   ? "[[A>B]]"
            : d == 0  ? "[[A=B]]"
            : d >= -5 ? "[[B>A]]"
                      : "[[B>>A]]"};
  }
  return {a.size() >= b.size() ? "I prefer (a). [[A]]" : "Output (b) wins: [[B]]"};
}

struct Fixture {
  fs::path dir;
  std::unique_ptr<ScriptedBackend> actor, judge, strong;
  std::unique_ptr<mr::test::TestHostContext> ctx;
  std::unique_ptr<mr::sdk::Evaluator> evaluator;

  Fixture(const std::string& name, bool arena = false)
      : dir(fs::temp_directory_path() / ("mr_eval_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    // The model answers "answer <n x 'x'>": instruction i gets i+1 x's; the baseline (in the
    // file) 3 x's; instruction 3 is answered identically by both.
    actor = std::make_unique<ScriptedBackend>(
        [](const mr::sdk::GenerationRequest& r) {
          const int i = std::stoi(r.messages.back().content.substr(5));
          return std::vector<std::string>{i == 3 ? "same" : "answer " + std::string(i + 1, 'x')};
        },
        "actor");
    judge = std::make_unique<ScriptedBackend>(
        [arena](const mr::sdk::GenerationRequest& r) { return longer_wins(r, arena); }, "judge");
    strong = std::make_unique<ScriptedBackend>(
        [arena](const mr::sdk::GenerationRequest& r) { return longer_wins(r, arena); }, "strong");
    std::ofstream out(dir / "instructions.jsonl");
    for (int i = 0; i < 6; ++i)
      out << "{\"id\": \"i" << i << "\", \"instruction\": \"task " << i << "\", \"output\": \""
          << (i == 3 ? "same" : "answer xxx") << "\"}\n";
  }
  ~Fixture() { fs::remove_all(dir); }

  void make(const mr::sdk::Schema& schema, mr::sdk::Table values, std::uint64_t seed = 9) {
    values.emplace(
        "judge_template",
        mr::sdk::Value(std::string("I: {instruction}\nA: {output_a}\nB: {output_b}\nEND")));
    values.emplace("judge_system", mr::sdk::Value(std::string("")));
    ctx = std::make_unique<mr::test::TestHostContext>(
        mr::test::config_from_schema(schema, std::move(values), 1, "evaluation"), seed);
  }

  mr::sdk::EvaluationRequest request(
      const std::string& iteration_dir, std::function<bool()> stop = [] { return false; }) {
    mr::sdk::EvaluationRequest r;
    r.info = {1, 1, 77};
    r.actor = actor.get();
    r.judge = judge.get();
    r.meta_judge = judge.get();
    r.output_dir = dir / "run" / iteration_dir / "eval";
    r.cache_dir = dir / "run" / "eval_cache";
    fs::create_directories(r.output_dir);
    fs::create_directories(r.cache_dir);
    r.model = [this](const std::string& name) -> mr::sdk::ModelBackend* {
      if (name == "strong") return strong.get();
      throw mr::sdk::ConfigError("no [models." + name + "]");
    };
    r.stop_requested = std::move(stop);
    return r;
  }
};

mr::sdk::Value text(const std::string& s) {
  return mr::sdk::Value(s);
}

}  // namespace

TEST_CASE("pairwise_winrate: both orders, ties without the judge, hand-computed win rate",
          "[evaluators][pairwise]") {
  Fixture f("pairwise");
  f.make(pairwise_winrate_schema(),
         {{"instructions", text((f.dir / "instructions.jsonl").string())},
          {"order", text("both")},
          {"bootstrap_rounds", mr::sdk::Value(std::int64_t{200})}});
  auto evaluator = make_pairwise_winrate(*f.ctx);
  const auto result = evaluator->evaluate(f.request("iter_1"));
  const auto& m = result.metrics;
  // Model answers have 1, 2, 3, -, 5, 6 x's against the baseline's 3: the longer wins; i2 and
  // i3 are identical to the baseline's (ties, never judged). Preferences: 0, 0, 0.5, 0.5, 1, 1.
  CHECK(m.at("actor/win_rate") == Approx(50.0));
  CHECK(m.at("actor/ties") == 2);
  CHECK(m.at("actor/judged_instructions") == 6);
  CHECK(m.at("judge/verdict_parse_failures") == 0);
  CHECK(f.judge->requests().size() == 8);  // 4 non-identical instructions x 2 orders
  for (const char* key : {"actor/win_rate", "actor/lc_win_rate"}) {
    INFO(key);
    CHECK(m.at(std::string(key) + "/ci_low") <= m.at(key));
    CHECK(m.at(std::string(key) + "/ci_high") >= m.at(key));
  }
  // Wins are exactly the longer answers: the LC win rate removes that and lands nearer 50 %
  // than any length-driven share would suggest; its coefficient says longer wins.
  CHECK(m.at("actor/lc_length_coef") < 0);
  CHECK(fs::exists(f.dir / "run" / "iter_1" / "eval" / "pairwise_winrate.jsonl"));

  // The same evaluation again (a re-run, or the next iteration with the same answers) asks the
  // judge for nothing and gives the same numbers.
  auto again = make_pairwise_winrate(*f.ctx);
  CHECK(again->evaluate(f.request("iter_2")).metrics == m);
  CHECK(f.judge->requests().size() == 8);
}

TEST_CASE("pairwise_winrate: an interrupted evaluation resumes from its cached batches",
          "[evaluators][pairwise]") {
  Fixture f("pairwise_resume");
  f.make(pairwise_winrate_schema(),
         {{"instructions", text((f.dir / "instructions.jsonl").string())},
          {"batch_size", mr::sdk::Value(std::int64_t{2})},
          {"bootstrap_rounds", mr::sdk::Value(std::int64_t{50})}});
  Fixture reference("pairwise_reference");
  reference.make(pairwise_winrate_schema(),
                 {{"instructions", text((f.dir / "instructions.jsonl").string())},
                  {"batch_size", mr::sdk::Value(std::int64_t{2})},
                  {"bootstrap_rounds", mr::sdk::Value(std::int64_t{50})}});
  const auto expected =
      make_pairwise_winrate(*reference.ctx)->evaluate(reference.request("iter_1"));

  int polls = 0;
  auto evaluator = make_pairwise_winrate(*f.ctx);
  // Stop after two batches: of the model's answers (3 batches of 2).
  CHECK_THROWS_AS(evaluator->evaluate(f.request("iter_1", [&] { return ++polls > 2; })),
                  mr::sdk::Interrupted);
  CHECK(f.actor->requests().size() == 4);
  const auto resumed = evaluator->evaluate(f.request("iter_1"));
  CHECK(f.actor->requests().size() == 6);  // only the 2 missing answers
  CHECK(resumed.metrics == expected.metrics);
  // order = "random" (the default): one game per non-identical instruction.
  CHECK(f.judge->requests().size() == 4);
}

TEST_CASE("pairwise_winrate: a baseline model, cached in the run's eval cache",
          "[evaluators][pairwise]") {
  Fixture f("baseline_model");
  f.make(pairwise_winrate_schema(),
         {{"instructions", text((f.dir / "instructions.jsonl").string())},
          {"baseline_model", text("strong")},
          {"bootstrap_rounds", mr::sdk::Value(std::int64_t{20})}});
  auto evaluator = make_pairwise_winrate(*f.ctx);
  evaluator->evaluate(f.request("iter_1"));
  const std::size_t after_first = f.strong->requests().size();
  CHECK(after_first == 6);
  CHECK(fs::exists(f.dir / "run" / "eval_cache" / "baseline_answers.jsonl"));
  evaluator->evaluate(f.request("iter_2"));
  CHECK(f.strong->requests().size() == after_first);
  f.make(pairwise_winrate_schema(),
         {{"instructions", text((f.dir / "instructions.jsonl").string())},
          {"baseline_model", text("nope")}});
  CHECK_THROWS_WITH(make_pairwise_winrate(*f.ctx)->evaluate(f.request("iter_3")),
                    Catch::Contains("[models.nope]"));
}

TEST_CASE("arena_score: strength-weighted Bradley-Terry equals the hand-computed fit",
          "[evaluators][arena]") {
  Fixture f("arena", /*arena=*/true);
  f.make(arena_score_schema(), {{"instructions", text((f.dir / "instructions.jsonl").string())}});
  const auto m = make_arena_score(*f.ctx)->evaluate(f.request("iter_1")).metrics;
  // From the model's side, per instruction (both orders agree): i0 (8 vs 10 chars) B>A = -1,
  // i1 -1, i2 and i3 identical (ties, not judged), i4 +1 (12 vs 10), i5 +1 (13): wins 2·2 = 4,
  // losses 4, ties 4 -> 50 %.
  CHECK(m.at("actor/arena_score/point") == Approx(50.0).margin(1e-6));
  CHECK(m.at("actor/arena_games") == 12);
  CHECK(m.at("actor/arena_verdicts/tie") == 4);
  CHECK(m.at("actor/arena_verdicts/better") == 4);
  CHECK(m.at("actor/arena_score/ci_low") <= m.at("actor/arena_score"));
  CHECK(m.at("actor/arena_score/ci_high") >= m.at("actor/arena_score"));
  CHECK(f.judge->requests().size() == 8);
}

namespace {

/// A rubric for the tests: "S: {response}" prompts; the score is the response's length capped at
/// 5 ("Score: N"), or no score for a response starting with '?'.
class LengthRubric final : public mr::sdk::JudgeRubric {
 public:
  mr::sdk::Conversation build_prompt(const mr::sdk::Conversation&,
                                     std::string_view response) const override {
    return {{"user", "S: " + std::string(response)}};
  }
  mr::sdk::ParsedScore parse(std::string_view judgment) const override {
    if (judgment.rfind("Score: ", 0) != 0) return {std::nullopt, "no score"};
    return {std::stod(std::string(judgment.substr(7))), ""};
  }
  mr::sdk::ScoreRange score_range() const override { return {0, 5}; }
};

}  // namespace

TEST_CASE("judge_agreement: agreement, ties and parse failures against the labels and relabelling",
          "[evaluators][agreement]") {
  Fixture f("agreement");
  // The model as judge scores a response by its length (capped at 5); '?' responses fail.
  f.judge = std::make_unique<ScriptedBackend>(
      [](const mr::sdk::GenerationRequest& r) {
        const std::string response = r.messages.back().content.substr(3);
        if (!response.empty() && response[0] == '?') return std::vector<std::string>{"hmm"};
        return std::vector<std::string>{"Score: " +
                                        std::to_string(std::min<std::size_t>(5, response.size()))};
      },
      "judge");
  std::ofstream(f.dir / "pairs.jsonl")
      << R"({"prompt": "q1", "chosen": "long", "rejected": "x", "chosen_score": 5, "rejected_score": 1})"
      << "\n"  // judge 4 vs 1: agrees
      << R"({"prompt": "q2", "chosen": "y", "rejected": "longer", "chosen_score": 4, "rejected_score": 2})"
      << "\n"  // 1 vs 5: disagrees
      << R"({"prompt": "q3", "chosen": "ab", "rejected": "cd", "chosen_score": 3, "rejected_score": 3})"
      << "\n"  // 2 vs 2: a tie
      << R"({"prompt": "q4", "chosen": "abc", "rejected": "?", "chosen_score": 4, "rejected_score": 0})"
      << "\n"  // rejected unparsed: undecidable
      << R"({"prompt": "q5", "chosen": "abcd", "rejected": "a"})"
      << "\n";  // 4 vs 1: agrees
  LengthRubric rubric;
  f.make(judge_agreement_schema(), {{"pairs", text((f.dir / "pairs.jsonl").string())},
                                    {"judgments", mr::sdk::Value(std::int64_t{2})},
                                    {"bootstrap_rounds", mr::sdk::Value(std::int64_t{100})}});
  auto request = f.request("iter_1");
  request.rubric = &rubric;
  const auto m = make_judge_agreement(*f.ctx)->evaluate(request).metrics;
  CHECK(m.at("judge/agreement") == Approx(2.0 / 3.0));
  CHECK(m.at("judge/agreement_pairs") == 3);
  CHECK(m.at("judge/agreement_ties") == 1);
  CHECK(m.at("judge/agreement_undecidable") == 1);
  CHECK(m.at("judge/parse_failures") == 2);  // the '?' response, judged twice
  CHECK(m.at("judge/parse_failure_rate") == Approx(2.0 / 20.0));
  // Spearman over the graded responses of q1-q3 (q4's '?' has no judge score): judge scores
  // 4 1 1 5 2 2 against labels 5 1 4 2 3 3, and q4's chosen 3 against 4.
  CHECK(m.count("judge/spearman") == 1);
  CHECK(f.judge->requests().size() == 20);

  // Relabelled by a strong judge that prefers the longer response: pairs whose chosen is longer
  // (q1, q4 ("abc" vs "?"), q5) agree with it, q2 does not, q3 ("ab"/"cd", equal) is judged A
  // in both orders -> a tie.
  f.make(judge_agreement_schema(), {{"pairs", text((f.dir / "pairs.jsonl").string())},
                                    {"judgments", mr::sdk::Value(std::int64_t{2})},
                                    {"label_judge", text("strong")},
                                    {"bootstrap_rounds", mr::sdk::Value(std::int64_t{100})}});
  const auto relabelled = make_judge_agreement(*f.ctx)->evaluate(request).metrics;
  CHECK(relabelled.at("judge/pair_agreement") == Approx(3.0 / 4.0));
  CHECK(relabelled.at("labels/ties") == 1);
  CHECK(relabelled.at("labels/pairs") == 4);
  CHECK(f.strong->requests().size() == 10);
  CHECK(f.judge->requests().size() == 20);  // the model's judgments came from its cache
}

TEST_CASE("judge_agreement: pairs = \"run\" reads the iteration's actor_pairs.jsonl",
          "[evaluators][agreement]") {
  Fixture f("agreement_run");
  f.make(judge_agreement_schema(), {{"pairs", text("run")}, {"label_judge", text("strong")}});
  auto evaluator = make_judge_agreement(*f.ctx);
  LengthRubric rubric;
  auto seed = f.request("iter_0");
  seed.rubric = &rubric;
  // The seed models' evaluation has no pairs: no metrics, no error.
  CHECK(evaluator->evaluate(seed).metrics.empty());
  auto at1 = f.request("iter_1");
  at1.rubric = &rubric;
  std::ofstream(f.dir / "run" / "iter_1" / "actor_pairs.jsonl")
      << R"({"id": "p1", "prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a long one"}], "rejected": [{"role": "assistant", "content": "short"}], "chosen_score": 4.0, "rejected_score": 2.0})"
      << "\n";
  const auto m = evaluator->evaluate(at1).metrics;
  CHECK(m.at("judge/pair_agreement") == 1.0);
}
