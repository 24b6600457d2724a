// The `testbed` evaluator with scripted models: each metric is checked against a model whose
// quality is known by construction (a perfect actor, a judge that copies the oracle, a judge that
// always says 5, a length-biased judge, a meta-judge that always answers A, ...), and the
// bookkeeping around them (seed answers, files, determinism, stop requests, bad inputs).
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "additive_rubric.hpp"
#include "cli_runner.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/testbed/dataset.hpp"
#include "metareward/testbed/evaluator.hpp"
#include "metareward/testbed/judge_data.hpp"
#include "no_meta_judge.hpp"
#include "pairwise_elo.hpp"
#include "scripted_backend.hpp"
#include "test_host_context.hpp"

namespace fs = std::filesystem;
namespace tb = mr::plugins::testbed;
namespace recipe = mr::plugins::recipe;
namespace sdk = mr::sdk;
using mr::test::config_from_schema;
using mr::test::ScriptedBackend;
using mr::test::TestHostContext;
using mr::tests::read_text;
using mr::tests::ScratchDir;
using sdk::Table;
using sdk::Value;

namespace {

constexpr std::int64_t kPrompts = 25;

/// Writes `n` eval prompts (seed 5) to DIR/eval_prompts.jsonl and returns the path.
fs::path write_eval_prompts(const ScratchDir& dir, std::int64_t n = kPrompts) {
  tb::DatasetOptions o;
  o.seed = 5;
  o.sft_examples = 0;
  o.train_prompts = 0;
  o.eval_prompts = n;
  const tb::Dataset d = tb::build_dataset(o);
  std::string text;
  for (const auto& line : tb::eval_prompt_lines(d)) text += line + "\n";
  return dir.write("eval_prompts.jsonl", text);
}

/// The tasks of an eval prompts file, in order.
std::vector<tb::TaskInstance> tasks_of(const fs::path& file) {
  std::vector<tb::TaskInstance> out;
  for (const auto& p : tb::read_eval_prompts(file, 1000)) out.push_back(p.task);
  return out;
}

std::string content(const sdk::GenerationRequest& r) {
  return r.messages.back().content;
}

/// (task prompt, response) of a judge prompt built with the testbed template.
std::pair<std::string, std::string> split_judge_prompt(const std::string& c) {
  const auto task = c.find("Task: ") + 6;
  const auto answer = c.find("\nAnswer: ", task);
  std::string response = c.substr(answer + 9);
  if (!response.empty() && response.back() == '\n') response.pop_back();
  return {c.substr(task, answer - task), response};
}

int oracle_of_judge_prompt(const std::string& c) {
  const auto [prompt, response] = split_judge_prompt(c);
  const auto task = tb::parse_prompt(prompt);
  REQUIRE(task.has_value());
  return tb::oracle_score(*task, response).score;
}

std::vector<std::string> repeat(const sdk::GenerationRequest& r, const std::string& text) {
  return std::vector<std::string>(static_cast<std::size_t>(r.n), text);
}

/// An actor that answers every prompt exactly.
ScriptedBackend perfect_actor() {
  return ScriptedBackend([](const sdk::GenerationRequest& r) {
    const auto task = tb::parse_prompt(content(r));
    return repeat(r, task ? task->answer : "");
  });
}

/// An actor that always says `text`.
ScriptedBackend constant_model(std::string text) {
  return ScriptedBackend([text](const sdk::GenerationRequest& r) { return repeat(r, text); });
}

/// A judge that writes the oracle's score.
ScriptedBackend oracle_judge() {
  return ScriptedBackend([](const sdk::GenerationRequest& r) {
    return repeat(r, tb::judgment_text(oracle_of_judge_prompt(content(r))));
  });
}

/// A meta-judge that names the judgment closer to the oracle (parses the testbed template).
ScriptedBackend perfect_meta_judge() {
  return ScriptedBackend([](const sdk::GenerationRequest& r) {
    const std::string c = content(r);
    const auto a = c.rfind("\nA: "), b = c.rfind("\nB: ");
    const int oracle = oracle_of_judge_prompt(c.substr(0, a + 1));
    auto score = [](const std::string& judgment) {
      const auto at = judgment.rfind("Score: ");
      return std::stoi(judgment.substr(at + 7));
    };
    const int sa = score(c.substr(a + 4, b - a - 4));
    const int sb = score(c.substr(b + 4));
    return repeat(r, tb::verdict_text(std::abs(sa - oracle) < std::abs(sb - oracle)));
  });
}

/// The models and strategies of one evaluation, owned together.
struct Setup {
  explicit Setup(const fs::path& prompts,
                 Table overrides = {},
                 Table meta_overrides = {{"template", Value(tb::kTestbedMetaJudgeTemplate)}})
      : ctx(config_from_schema(tb::testbed_evaluator_schema(), with_prompts(prompts, overrides))),
        meta_ctx(config_from_schema(recipe::pairwise_elo_schema(), std::move(meta_overrides))),
        rubric(config_from_schema(recipe::additive5_schema(),
                                  Table{{"template", Value(tb::kTestbedJudgeTemplate)}})),
        elo(meta_ctx),
        evaluator(ctx) {}

  static Table with_prompts(const fs::path& prompts, Table t) {
    t["prompts"] = Value(prompts.string());
    return t;
  }

  sdk::EvaluationResult run(ScriptedBackend& actor,
                            ScriptedBackend& judge,
                            ScriptedBackend& meta_judge,
                            int iteration = 1,
                            fs::path output_dir = {},
                            sdk::MetaJudgeStrategy* meta = nullptr,
                            std::function<bool()> stop = {}) {
    sdk::EvaluationRequest r;
    r.info = {iteration, 3, 1000 + static_cast<std::uint64_t>(iteration)};
    r.actor = &actor;
    r.judge = &judge;
    r.meta_judge = &meta_judge;
    r.rubric = &rubric;
    r.meta = meta != nullptr ? meta : &elo;
    r.output_dir = std::move(output_dir);
    r.stop_requested = std::move(stop);
    return evaluator.evaluate(r);
  }

  TestHostContext ctx;
  TestHostContext meta_ctx;
  recipe::AdditiveRubric rubric;
  recipe::PairwiseEloStrategy elo;
  tb::TestbedEvaluator evaluator;
};

double metric(const sdk::EvaluationResult& r, const std::string& key) {
  auto it = r.metrics.find(key);
  INFO("metric " << key);
  REQUIRE(it != r.metrics.end());
  return it->second;
}

std::vector<nlohmann::json> jsonl(const fs::path& file) {
  std::vector<nlohmann::json> rows;
  std::istringstream in(read_text(file));
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

bool logged(TestHostContext& ctx, const std::string& text) {
  for (const auto& [level, message] : ctx.recorder().messages())
    if (message.find(text) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("testbed evaluator: actor metrics against the oracle", "[testbed][evaluator]") {
  ScratchDir dir("tb_eval_actor");
  const fs::path prompts = write_eval_prompts(dir);
  Setup s(prompts);
  auto judge = oracle_judge();
  auto meta = perfect_meta_judge();
  SECTION("a perfect actor scores 5 on every prompt") {
    auto actor = perfect_actor();
    const auto r = s.run(actor, judge, meta);
    CHECK(metric(r, "actor/oracle_score") == 5.0);
    CHECK(metric(r, "actor/exact_accuracy") == 1.0);
    CHECK(metric(r, "actor/correct_accuracy") == 1.0);
    double length = 0;
    for (const auto& t : tasks_of(prompts)) length += static_cast<double>(t.answer.size());
    CHECK(metric(r, "actor/mean_length_chars") == Approx(length / kPrompts));
    CHECK(actor.requests().size() == kPrompts);
    CHECK(actor.requests()[0].sampling.temperature == 0.0);
    CHECK(actor.requests()[0].sampling.max_new_tokens == 64);
  }
  SECTION("a verbose correct actor is correct but never exact") {
    auto actor = ScriptedBackend([](const sdk::GenerationRequest& r) {
      return repeat(r, "Sure! The answer is " + tb::parse_prompt(content(r))->answer + ".");
    });
    const auto r = s.run(actor, judge, meta);
    CHECK(metric(r, "actor/oracle_score") == 4.0);
    CHECK(metric(r, "actor/exact_accuracy") == 0.0);
    CHECK(metric(r, "actor/correct_accuracy") == 1.0);
  }
  SECTION("an actor that fails to generate is graded as empty answers") {
    auto actor = ScriptedBackend([](const sdk::GenerationRequest&) -> std::vector<std::string> {
      throw std::runtime_error("boom");
    });
    const auto r = s.run(actor, judge, meta);
    CHECK(metric(r, "actor/oracle_score") == 0.0);
    CHECK(metric(r, "actor/mean_length_chars") == 0.0);
    CHECK(logged(s.ctx, "actor generations failed"));
  }
  SECTION("max_prompts takes the first rows") {
    Setup few(prompts, Table{{"max_prompts", Value(std::int64_t{7})}});
    auto actor = perfect_actor();
    few.run(actor, judge, meta);
    CHECK(actor.requests().size() == 7);
    CHECK(actor.requests()[6].id == "eval-000007");
  }
}

TEST_CASE("testbed evaluator: win rate against the seed model's answers", "[testbed][evaluator]") {
  ScratchDir dir("tb_eval_win");
  const fs::path prompts = write_eval_prompts(dir);
  const auto tasks = tasks_of(prompts);
  const fs::path run = dir.path() / "run";
  Setup s(prompts);
  auto judge = oracle_judge();
  auto meta = perfect_meta_judge();
  auto seed_actor = constant_model("0");
  const auto r0 = s.run(seed_actor, judge, meta, 0, run / "iter_0" / "eval");

  SECTION("iteration 0 stores the seed answers and ties with itself") {
    CHECK(metric(r0, "actor/win_rate_vs_seed") == 0.5);
    const auto rows = jsonl(run / "iter_0" / "eval" / "answers.jsonl");
    REQUIRE(rows.size() == kPrompts);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      CHECK(rows[i]["prompt"] == tasks[i].prompt);
      CHECK(rows[i]["reference"] == tasks[i].answer);
      CHECK(rows[i]["answer"] == "0");
      CHECK(rows[i]["oracle_score"] == tb::oracle_score(tasks[i], "0").score);
      CHECK(rows[i]["criteria"].size() == 5);
      CHECK(rows[i]["criteria"]["relevant"] == tb::oracle_score(tasks[i], "0").awarded[0]);
    }
  }
  SECTION("a later iteration is compared prompt by prompt (ties count 0.5)") {
    auto actor = perfect_actor();
    const auto r2 = s.run(actor, judge, meta, 2, run / "iter_2" / "eval");
    double expected = 0;
    for (const auto& t : tasks) expected += tb::oracle_score(t, "0").score == 5 ? 0.5 : 1.0;
    CHECK(metric(r2, "actor/win_rate_vs_seed") == Approx(expected / kPrompts));
    CHECK(expected / kPrompts > 0.9);  // "0" is rarely an exact answer
    auto same = constant_model("0");
    CHECK(metric(s.run(same, judge, meta, 1, run / "iter_1" / "eval"), "actor/win_rate_vs_seed") ==
          0.5);
  }
  SECTION("a hand-written seed file: only prompts with the same id and text count") {
    const fs::path seed = run / "iter_0" / "eval" / "answers.jsonl";
    std::ofstream(seed)
        << nlohmann::json{{"id", "eval-000001"},
                          {"prompt", tasks[0].prompt},
                          {"answer", tasks[0].answer}}
               .dump()
        << "\n"
        << nlohmann::json{{"id", "eval-000002"}, {"prompt", "another prompt"}, {"answer", "1"}}
               .dump()
        << "\nnot json\n"
        << nlohmann::json{{"id", "eval-000003"}, {"prompt", tasks[2].prompt}, {"answer", "xyz"}}
               .dump()
        << "\n";
    auto actor = perfect_actor();
    const auto r = s.run(actor, judge, meta, 1, run / "iter_1" / "eval");
    // eval-000001: 5 vs 5 (tie); eval-000003: 5 vs worse (win); eval-000002: other prompt.
    CHECK(metric(r, "actor/win_rate_vs_seed") == 0.75);
    CHECK(logged(s.ctx, "skipped 1 malformed row(s)"));
    CHECK(logged(s.ctx, "only 2 of 25 eval prompts have a seed answer"));
  }
  SECTION("without seed answers the metric is omitted with a warning") {
    auto actor = perfect_actor();
    const auto r = s.run(actor, judge, meta, 1, dir.path() / "elsewhere" / "iter_1" / "eval");
    CHECK(r.metrics.count("actor/win_rate_vs_seed") == 0);
    CHECK(r.metrics.count("actor/oracle_score") == 1);
    CHECK(logged(s.ctx, "file missing"));
    const auto r_nodir = s.run(actor, judge, meta, 1, {});
    CHECK(r_nodir.metrics.count("actor/win_rate_vs_seed") == 0);
  }
}

TEST_CASE("testbed evaluator: judge agreement with the oracle", "[testbed][evaluator]") {
  ScratchDir dir("tb_eval_judge");
  const fs::path prompts = write_eval_prompts(dir);
  Setup s(prompts);
  auto actor = perfect_actor();
  auto meta = perfect_meta_judge();
  SECTION("a judge that copies the oracle agrees perfectly") {
    auto judge = oracle_judge();
    const auto r = s.run(actor, judge, meta);
    CHECK(metric(r, "judge/pairwise_accuracy") == 1.0);
    CHECK(metric(r, "judge/spearman") == Approx(1.0));
    CHECK(metric(r, "judge/parse_failure_rate") == 0.0);
    CHECK(metric(r, "judge/length_bias") == -1.0);  // verbose correct 4, bare correct 5
    double hist_sum = 0;
    for (int k = 0; k <= 5; ++k) hist_sum += metric(r, "judge/score_hist_" + std::to_string(k));
    CHECK(hist_sum == Approx(1.0));
    // The model's own answer and four teacher answers per prompt, built by the run's rubric.
    REQUIRE(judge.requests().size() == 5 * kPrompts);
    const auto tasks = tasks_of(prompts);
    CHECK(content(judge.requests()[0]) ==
          tb::judge_conversation({{"user", tasks[0].prompt}}, tasks[0].answer)[0].content);
    CHECK(judge.requests()[1].id == "eval-000001/bare_correct");
    CHECK(judge.requests()[4].id == "eval-000001/off_task");
  }
  SECTION("a judge that always says 5 is at chance") {
    auto judge = constant_model("Looks fine. Score: 5");
    const auto r = s.run(actor, judge, meta);
    CHECK(metric(r, "judge/pairwise_accuracy") == 0.5);
    CHECK(metric(r, "judge/spearman") == 0.0);
    CHECK(metric(r, "judge/mean_score") == 5.0);
    CHECK(metric(r, "judge/score_hist_5") == 1.0);
    CHECK(metric(r, "judge/score_hist_0") == 0.0);
    CHECK(metric(r, "judge/length_bias") == 0.0);
  }
  SECTION("a length-biased judge has a positive length bias") {
    // Chatty answers (the teacher's fillers all end a sentence) get 5, bare ones 3.
    auto judge = ScriptedBackend([](const sdk::GenerationRequest& r) {
      const auto response = split_judge_prompt(content(r)).second;
      return repeat(r, response.find('.') != std::string::npos ? "Score: 5" : "Score: 3");
    });
    const auto r = s.run(actor, judge, meta);
    CHECK(metric(r, "judge/length_bias") == 2.0);
  }
  SECTION("unparseable judgments count as parse failures, not as scores") {
    auto judge = ScriptedBackend([](const sdk::GenerationRequest& r) {
      // Every answer that is not exact gets no score line.
      return repeat(r, oracle_of_judge_prompt(content(r)) == 5 ? "Score: 5" : "I cannot tell.");
    });
    const auto r = s.run(actor, judge, meta);
    CHECK(metric(r, "judge/parse_failure_rate") == Approx(3.0 / 5.0));
    CHECK(metric(r, "judge/mean_score") == 5.0);
    CHECK(r.metrics.count("judge/pairwise_accuracy") == 0);  // only equal-oracle pairs left
  }
  SECTION("judge_samples asks for N judgments per response and averages them") {
    Setup three(prompts, Table{{"judge_samples", Value(std::int64_t{3})}});
    auto judge = oracle_judge();
    const auto r = three.run(actor, judge, meta);
    REQUIRE(judge.requests().size() == 5 * kPrompts);
    CHECK(judge.requests()[0].n == 3);
    CHECK(metric(r, "judge/pairwise_accuracy") == 1.0);
  }
}

TEST_CASE("testbed evaluator: meta-judge accuracy", "[testbed][evaluator]") {
  ScratchDir dir("tb_eval_meta");
  const fs::path prompts = write_eval_prompts(dir);
  auto actor = perfect_actor();
  auto judge = oracle_judge();
  SECTION("battles come from the run's strategy: both orders, its template and system prompt") {
    Setup s(
        prompts, Table{{"judge_pairs", Value(std::int64_t{30})}},
        Table{{"template", Value(tb::kTestbedMetaJudgeTemplate)}, {"system", Value("Be fair.")}});
    auto meta = perfect_meta_judge();
    const auto r = s.run(actor, judge, meta);
    CHECK(metric(r, "meta_judge/accuracy") == 1.0);
    CHECK(metric(r, "meta_judge/position_a_rate") == 0.5);
    CHECK(metric(r, "meta_judge/parse_failure_rate") == 0.0);
    REQUIRE(meta.requests().size() == 60);
    CHECK(meta.requests()[0].messages.size() == 2);
    CHECK(meta.requests()[0].messages[0].content == "Be fair.");
    CHECK(meta.requests()[0].sampling.max_new_tokens == 48);
    // Item 0 in both orders.
    const std::string first = content(meta.requests()[0]), second = content(meta.requests()[1]);
    const auto judgments = [](const std::string& c) { return c.substr(c.rfind("\nA: ")); };
    CHECK(judgments(first) != judgments(second));
    CHECK(first.substr(0, first.rfind("\nA: ")) == second.substr(0, second.rfind("\nA: ")));
  }
  SECTION("a meta-judge that always answers A is at chance") {
    Setup s(prompts);
    auto meta = constant_model("Winner: Judgement A");
    const auto r = s.run(actor, judge, meta);
    CHECK(metric(r, "meta_judge/accuracy") == 0.5);
    CHECK(metric(r, "meta_judge/position_a_rate") == 1.0);
    CHECK(meta.requests().size() == 200);  // judge_pairs 100, both orders
  }
  SECTION("unparseable verdicts are parse failures") {
    Setup s(prompts);
    auto meta = constant_model("Both are fine.");
    const auto r = s.run(actor, judge, meta);
    CHECK(metric(r, "meta_judge/parse_failure_rate") == 1.0);
    CHECK(r.metrics.count("meta_judge/accuracy") == 0);
  }
  SECTION("a strategy that plans nothing (none): the testbed template, both orders") {
    Setup s(prompts, Table{{"judge_pairs", Value(std::int64_t{10})}});
    recipe::NoMetaJudge none;
    auto meta = perfect_meta_judge();
    const auto r = s.run(actor, judge, meta, 1, {}, &none);
    CHECK(metric(r, "meta_judge/accuracy") == 1.0);
    CHECK(metric(r, "meta_judge/position_a_rate") == 0.5);
    REQUIRE(meta.requests().size() == 20);
    CHECK(content(meta.requests()[0]).rfind("Which rating is right?\nTask: ", 0) == 0);
  }
  SECTION("judge_pairs = 0 skips the meta-judge") {
    Setup s(prompts, Table{{"judge_pairs", Value(std::int64_t{0})}});
    auto meta = perfect_meta_judge();
    const auto r = s.run(actor, judge, meta);
    CHECK(meta.requests().empty());
    CHECK(r.metrics.count("meta_judge/accuracy") == 0);
  }
}

TEST_CASE("testbed evaluator: deterministic, files, stop requests", "[testbed][evaluator]") {
  ScratchDir dir("tb_eval_det");
  const fs::path prompts = write_eval_prompts(dir);
  Setup s(prompts, Table{{"batch_size", Value(std::int64_t{10})}, {"temperature", Value(0.7)}});
  SECTION("same seed, same requests, metrics and files; another seed, other sampling seeds") {
    auto a1 = perfect_actor(), j1 = oracle_judge(), m1 = perfect_meta_judge();
    auto a2 = perfect_actor(), j2 = oracle_judge(), m2 = perfect_meta_judge();
    const auto r1 = s.run(a1, j1, m1, 1, dir.path() / "a");
    const auto r2 = s.run(a2, j2, m2, 1, dir.path() / "b");
    CHECK(r1.metrics == r2.metrics);
    for (const char* f : {"answers.jsonl", "judgments.jsonl", "meta_judgments.jsonl"})
      CHECK(read_text(dir.path() / "a" / f) == read_text(dir.path() / "b" / f));
    REQUIRE(a1.requests().size() == a2.requests().size());
    for (std::size_t i = 0; i < a1.requests().size(); ++i)
      CHECK(a1.requests()[i].seed == a2.requests()[i].seed);
    CHECK(a1.requests()[0].seed != a1.requests()[1].seed);
    CHECK(a1.requests()[0].sampling.temperature == 0.7);
    auto a3 = perfect_actor(), j3 = oracle_judge(), m3 = perfect_meta_judge();
    s.run(a3, j3, m3, 2);  // iteration 2: another info.seed
    CHECK(a3.requests()[0].seed != a1.requests()[0].seed);
    // The judged responses are the same in every evaluation (fixed per prompt).
    for (std::size_t i = 1; i < 5; ++i)
      CHECK(content(j3.requests()[i]) == content(j1.requests()[i]));
  }
  SECTION("per-item rows are written for all three roles") {
    auto a = perfect_actor(), j = oracle_judge(), m = perfect_meta_judge();
    s.run(a, j, m, 1, dir.path() / "rows");
    CHECK(jsonl(dir.path() / "rows" / "answers.jsonl").size() == kPrompts);
    const auto judged = jsonl(dir.path() / "rows" / "judgments.jsonl");
    REQUIRE(judged.size() == 5 * kPrompts);
    CHECK(judged[1]["kind"] == "bare_correct");
    CHECK(judged[1]["oracle_score"] == 5);
    CHECK(judged[1]["judge_score"] == 5.0);
    const auto battles = jsonl(dir.path() / "rows" / "meta_judgments.jsonl");
    REQUIRE(battles.size() == 200);
    for (const auto& b : battles) CHECK(b["correct"] == true);
  }
  SECTION(
      "an evaluation interrupted part-way resumes: only the unfinished requests are generated") {
    auto a = perfect_actor(), j = oracle_judge(), m = perfect_meta_judge();
    const auto reference = s.run(a, j, m, 1, dir.path() / "whole");
    const fs::path out = dir.path() / "resumed";
    auto a1 = perfect_actor(), j1 = oracle_judge(), m1 = perfect_meta_judge();
    int polls = 0;  // 3 actor batches, then 2 of the judge's 13, then the stop
    CHECK_THROWS_AS(s.run(a1, j1, m1, 1, out, nullptr, [&polls] { return ++polls > 5; }),
                    sdk::Interrupted);
    REQUIRE(j1.requests().size() == 20);
    auto a2 = perfect_actor(), j2 = oracle_judge(), m2 = perfect_meta_judge();
    const auto resumed = s.run(a2, j2, m2, 1, out);
    CHECK(a2.requests().empty());  // every answer came from the log
    CHECK(j2.requests().size() == j.requests().size() - 20);
    CHECK(m2.requests().size() == m.requests().size());
    CHECK(resumed.metrics == reference.metrics);
    for (const char* f : {"answers.jsonl", "judgments.jsonl", "meta_judgments.jsonl"})
      CHECK(read_text(out / f) == read_text(dir.path() / "whole" / f));
    for (const auto& e : fs::directory_iterator(out))  // the logs go once the rows are written
      CHECK(e.path().filename().string().find(".partial") == std::string::npos);
  }
  SECTION("a stop request between batches throws Interrupted") {
    auto a = perfect_actor(), j = oracle_judge(), m = perfect_meta_judge();
    int polls = 0;
    CHECK_THROWS_AS(s.run(a, j, m, 1, {}, nullptr, [&polls] { return ++polls > 1; }),
                    sdk::Interrupted);
    CHECK(a.requests().size() == 10);  // one batch
    CHECK(j.requests().empty());
  }
}

TEST_CASE("testbed evaluator: candidates, agreement statistics and bad inputs",
          "[testbed][evaluator]") {
  SECTION("teacher candidates: fixed per prompt, of known quality") {
    tb::Rng rng(3);
    for (int i = 0; i < 50; ++i) {
      const auto task =
          tb::generate_instance(tb::kAllFamilies[static_cast<std::size_t>(i % 5)], rng);
      const auto c = tb::teacher_candidates(task);
      REQUIRE(c.size() == 4);
      CHECK(c[0].kind == "bare_correct");
      CHECK(tb::oracle_score(task, c[0].text).score == 5);
      CHECK(c[1].kind == "verbose_correct");
      CHECK(tb::oracle_score(task, c[1].text).score == 4);
      CHECK(c[2].kind == "wrong");
      const int wrong = tb::oracle_score(task, c[2].text).score;
      CHECK(wrong >= 1);
      CHECK(wrong <= 3);
      CHECK(c[3].kind == "off_task");
      CHECK(tb::oracle_score(task, c[3].text).score <= 3);
      CHECK(tb::teacher_candidates(task)[2].text == c[2].text);
    }
  }
  SECTION("spearman") {
    CHECK(*tb::spearman({1, 2, 3, 4}, {10, 20, 30, 40}) == Approx(1.0));
    CHECK(*tb::spearman({1, 2, 3, 4}, {4, 3, 2, 1}) == Approx(-1.0));
    // Ranks with ties: x = (1, 2.5, 2.5, 4), y = (1, 2, 3, 4): r = 4.5 / sqrt(4.5 * 5).
    CHECK(*tb::spearman({0, 5, 5, 9}, {1, 2, 3, 4}) == Approx(4.5 / std::sqrt(4.5 * 5.0)));
    CHECK_FALSE(tb::spearman({1, 2, 3}, {2, 2, 2}).has_value());
    CHECK_FALSE(tb::spearman({1}, {1}).has_value());
  }
  SECTION("pairwise accuracy: within groups, unequal oracle scores, ties count half") {
    using Item = tb::JudgedItem;
    const std::vector<Item> items = {
        {0, 5, 5.0}, {0, 3, 4.0}, {0, 1, 4.0},           // 5>3 ok, 5>1 ok, 3>1 tie
        {1, 4, 2.0}, {1, 2, 3.0}, {1, 2, std::nullopt},  // 4>2 wrong; unparsed left out
        {2, 3, 1.0},                                     // alone in its group
    };
    CHECK(*tb::pairwise_accuracy(items) == Approx(2.5 / 4.0));
    CHECK_FALSE(tb::pairwise_accuracy({{0, 2, 1.0}, {0, 2, 3.0}}).has_value());
  }
  SECTION("a missing prompts file is a config error naming the key and the directory") {
    TestHostContext ctx(config_from_schema(
        tb::testbed_evaluator_schema(), Table{{"prompts", Value("no/such/eval_prompts.jsonl")}}));
    try {
      tb::TestbedEvaluator e(ctx);
      FAIL("no error");
    } catch (const sdk::ConfigError& e) {
      CHECK_THAT(e.what(), Catch::Contains("prompts") && Catch::Contains("no/such") &&
                               Catch::Contains("current directory"));
    }
  }
  SECTION("a malformed row is a data error naming the file and line") {
    ScratchDir dir("tb_eval_bad");
    const auto good = tb::eval_prompt_lines([] {
      tb::DatasetOptions o;
      o.sft_examples = 0;
      o.train_prompts = 0;
      o.eval_prompts = 2;
      return tb::build_dataset(o);
    }());
    const auto file = dir.write(
        "bad.jsonl",
        good[0] + "\n" +
            R"({"id":"x","prompt":"Add the numbers: 1 + 2","task":"add","answer":"4"})" + "\n");
    TestHostContext ctx(config_from_schema(tb::testbed_evaluator_schema(),
                                           Table{{"prompts", Value(file.string())}}));
    try {
      tb::TestbedEvaluator e(ctx);
      FAIL("no error");
    } catch (const sdk::DataError& e) {
      CHECK_THAT(e.what(), Catch::Contains("bad.jsonl:2"));
    }
    const auto dup = dir.write("dup.jsonl", good[0] + "\n" + good[0] + "\n");
    CHECK_THROWS_WITH(tb::read_eval_prompts(dup, 10), Catch::Contains("repeated id"));
    const auto empty = dir.write("empty.jsonl", "\n");
    CHECK_THROWS_WITH(tb::read_eval_prompts(empty, 10), Catch::Contains("no rows"));
  }
  SECTION("the schema's defaults") {
    const auto o = tb::EvaluatorOptions::from_config(
        config_from_schema(tb::testbed_evaluator_schema(), Table{{"prompts", Value("p.jsonl")}}));
    CHECK(o.max_prompts == 200);
    CHECK(o.actor_max_new_tokens == 64);
    CHECK(o.judge_max_new_tokens == 64);
    CHECK(o.meta_judge_max_new_tokens == 48);
    CHECK(o.judge_samples == 1);
    CHECK(o.temperature == 0.0);
    CHECK(o.batch_size == 32);
    CHECK(o.judge_pairs == 100);
  }
}
