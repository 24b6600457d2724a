// Conformance of every registered evaluator (see conformance_support.hpp): the shipped ones (the
// testbed's, and mr-evaluators' pairwise_winrate, arena_score, judge_agreement) and third-party
// ones (the loader fixture evaluator fixture_eval), each covered as soon as its library is built.
// Models are scripted backends; the rubric and meta-judge strategy are the recipe's defaults
// (additive5, pairwise_elo), loaded from its library.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "conformance_support.hpp"
#include "metareward/sdk/error.hpp"
#include "scripted_backend.hpp"

using namespace mr::test::conformance;
using mr::core::RegisteredPlugin;
using mr::sdk::Evaluator;
using mr::sdk::PluginKind;

namespace {

/// Text that depends only on the request (id, last message, seed) and the sample index: the
/// scripted models are deterministic, as real backends are for equal seeds.
std::string sample_text(const mr::sdk::GenerationRequest& req, int i, const std::string& kind) {
  const std::uint64_t s = mr::sdk::derive_seed(req.seed, static_cast<std::uint64_t>(i));
  const std::string& last = req.messages.empty() ? req.id : req.messages.back().content;
  const std::uint64_t h = mr::sdk::derive_seed(s, std::hash<std::string>{}(last));
  if (kind == "judge")
    return "The response addresses the question. Score: " + std::to_string(h % 6);
  if (kind == "meta") return std::string("Winner: Judgment ") + (h % 2 ? "A" : "B");
  return "The answer is " + std::to_string(h % 100) + ".";
}

std::unique_ptr<mr::test::ScriptedBackend> scripted(const std::string& kind) {
  return std::make_unique<mr::test::ScriptedBackend>(
      [kind](const mr::sdk::GenerationRequest& req) {
        std::vector<std::string> texts;
        for (int i = 0; i < req.n; ++i) texts.push_back(sample_text(req, i, kind));
        return texts;
      },
      kind);
}

/// Everything one evaluation call needs, owned together.
struct Bench {
  Instance<mr::sdk::JudgeRubric> rubric = make_default<mr::sdk::JudgeRubric>("additive5");
  Instance<mr::sdk::MetaJudgeStrategy> meta =
      make_default<mr::sdk::MetaJudgeStrategy>("pairwise_elo");
  std::unique_ptr<mr::test::ScriptedBackend> actor = scripted("actor"), judge = scripted("judge"),
                                             meta_judge = scripted("meta");

  mr::sdk::EvaluationRequest request(
      int iteration, std::uint64_t seed, const fs::path& out, std::function<bool()> stop = [] {
        return false;
      }) {
    fs::create_directories(out);
    mr::sdk::EvaluationRequest r;
    r.info = {iteration, 2, seed};
    r.actor = actor.get();
    r.judge = judge.get();
    r.meta_judge = meta_judge.get();
    r.rubric = rubric.plugin.get();
    r.meta = meta.plugin.get();
    r.output_dir = out;
    // As a run lays it out: RUN/eval_cache beside RUN/iter_t.
    r.cache_dir = out.parent_path().parent_path() / "eval_cache";
    fs::create_directories(r.cache_dir);
    r.model = [this](const std::string& name) -> mr::sdk::ModelBackend* {
      if (name == "strong_judge") return judge.get();
      throw mr::sdk::ConfigError("no [models." + name + "] table");
    };
    r.stop_requested = std::move(stop);
    return r;
  }
};

/// An evaluator object with its context (the context outlives the object).
struct EvaluatorInstance {
  std::unique_ptr<mr::test::TestHostContext> ctx;
  std::unique_ptr<Evaluator> plugin;
};

/// Values for the required keys (no default to construct with) of the evaluators this suite
/// knows, with the files they name written into `dir`; nullopt for an evaluator it does not know
/// (a test failure: a new evaluator with required keys needs an entry here).
std::optional<mr::sdk::Table> required_values(const std::string& name, const fs::path& dir) {
  if (name == "testbed") {
    // A few held-out rows in the format of `metareward testbed data` (plugins/testbed/README.md).
    const fs::path file = dir / "eval_prompts.jsonl";
    std::ofstream(file)
        << R"({"id": "eval-1", "task": "add", "prompt": "Add the numbers: 42 + 17", "answer": "59"})"
        << "\n"
        << R"({"id": "eval-2", "task": "sort", "prompt": "Sort ascending: 42 7 19", "answer": "7 19 42"})"
        << "\n"
        << R"({"id": "eval-3", "task": "reverse", "prompt": "Reverse the word: hello", "answer": "olleh"})"
        << "\n"
        << R"({"id": "eval-4", "task": "count", "prompt": "Count the letter 'a' in: banana", "answer": "3"})"
        << "\n";
    return mr::sdk::Table{{"prompts", mr::sdk::Value(file.string())}};
  }
  // The scripted judge answers "... Score: N" to any prompt: as a pairwise verdict, N reads as
  // output A's outcome.
  auto score_verdicts = [](mr::sdk::Table t) {
    t.emplace("verdict_regex", mr::sdk::Value(std::string("Score: ([0-5])")));
    mr::sdk::Array labels;
    for (const char* l : {"0=-2", "1=-1", "2=0", "3=1", "4=2", "5=1"})
      labels.push_back(mr::sdk::Value(std::string(l)));
    t.emplace("verdict_labels", mr::sdk::Value(std::move(labels)));
    return t;
  };
  if (name == "pairwise_winrate" || name == "arena_score") {
    const fs::path file = dir / "instructions.jsonl";
    std::ofstream out(file);
    for (int i = 0; i < 6; ++i)
      out << R"({"instruction": "Name a prime above )" << i * 10 << R"(", "output": "It is )"
          << std::string(static_cast<std::size_t>(i + 1), '7') << R"(."})"
          << "\n";
    return score_verdicts({{"instructions", mr::sdk::Value(file.string())},
                           {"bootstrap_rounds", mr::sdk::Value(std::int64_t{50})}});
  }
  if (name == "judge_agreement") {
    const fs::path file = dir / "pairs.jsonl";
    std::ofstream out(file);
    for (int i = 0; i < 6; ++i)
      out << R"({"prompt": "Question )" << i << R"(", "chosen": "A good answer )" << i
          << R"(", "rejected": "bad", "chosen_score": 4, "rejected_score": )" << i % 3 << "}\n";
    return score_verdicts({{"pairs", mr::sdk::Value(file.string())},
                           {"label_judge", mr::sdk::Value(std::string("strong_judge"))},
                           {"bootstrap_rounds", mr::sdk::Value(std::int64_t{50})}});
  }
  return std::nullopt;
}

EvaluatorInstance make_evaluator(const mr::sdk::PluginDescriptor& d, mr::sdk::Table values) {
  EvaluatorInstance inst;
  inst.ctx = std::make_unique<mr::test::TestHostContext>(
      mr::test::config_from_schema(d.schema, std::move(values), 2, "evaluation"));
  inst.plugin = std::get<mr::sdk::Factory<Evaluator>>(d.factory)(*inst.ctx);
  return inst;
}

/// Every file under `dir`, relative to it.
std::vector<std::string> files_under(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(fs::relative(e.path(), dir).string());
  return out;
}

/// The contract of sdk::Evaluator, checked on one plugin.
void check_evaluator(const RegisteredPlugin& plugin) {
  const auto& d = plugin.descriptor;
  INFO("evaluator " << d.name << " from " << plugin.library_name);
  REQUIRE(d.kind() == PluginKind::Evaluator);
  check_descriptor(d);
  TempDir tmp(d.name);
  mr::sdk::Table values;
  if (has_required_keys(d.name)) {
    auto known = required_values(d.name, tmp.path());
    if (!known)
      FAIL("evaluator '" << d.name
                         << "' has required keys and this suite does not know values for them: "
                            "add them to required_values()");
    values = std::move(*known);
  }
  EvaluatorInstance first;
  REQUIRE_NOTHROW(first = make_evaluator(d, values));
  REQUIRE(first.plugin != nullptr);
  Bench bench;

  // Metrics are named "role/metric" and finite, for the seed models (iteration 0) and later.
  // The directories are laid out as in a run (RUN/iter_t/eval), since an evaluator may read the
  // rows of earlier iterations from their siblings.
  const auto out0 = tmp.path() / "run" / "iter_0" / "eval";
  const auto out1 = tmp.path() / "run" / "iter_1" / "eval";
  const mr::sdk::EvaluationResult at0 = first.plugin->evaluate(bench.request(0, 11, out0));
  const mr::sdk::EvaluationResult at1 = first.plugin->evaluate(bench.request(1, 12, out1));
  for (const auto* result : {&at0, &at1}) {
    CHECK_FALSE(result->metrics.empty());
    for (const auto& [key, value] : result->metrics) {
      INFO("metric '" << key << "' = " << value);
      CHECK(key.find('/') != std::string::npos);
      CHECK(key.front() != '/');
      CHECK(key.back() != '/');
      CHECK(std::isfinite(value));
    }
  }
  // Files go to output_dir and cache_dir only.
  for (const auto& f : files_under(tmp.path() / "run")) {
    INFO("file " << f);
    CHECK((f.rfind("iter_0/eval/", 0) == 0 || f.rfind("iter_1/eval/", 0) == 0 ||
           f.rfind("eval_cache/", 0) == 0));
  }

  // Deterministic given the models and the seed: again on the same object (into an emptied
  // directory, as the host does when it redoes an evaluation), and on a new object with new,
  // identically scripted models (a resumed run).
  fs::remove_all(out1);
  CHECK(first.plugin->evaluate(bench.request(1, 12, out1)).metrics == at1.metrics);
  EvaluatorInstance second = make_evaluator(d, values);
  Bench other;
  const auto run2 = tmp.path() / "run2";
  CHECK(second.plugin->evaluate(other.request(0, 11, run2 / "iter_0" / "eval")).metrics ==
        at0.metrics);
  CHECK(second.plugin->evaluate(other.request(1, 12, run2 / "iter_1" / "eval")).metrics ==
        at1.metrics);

  // A stop request ends the call normally (a short evaluation need not poll) or with
  // sdk::Interrupted, never with another error.
  try {
    first.plugin->evaluate(
        bench.request(1, 12, tmp.path() / "run3" / "iter_1" / "eval", [] { return true; }));
  } catch (const mr::sdk::Interrupted&) {
  } catch (const std::exception& e) {
    FAIL("a stop request raised something other than sdk::Interrupted: " << e.what());
  }
}

}  // namespace

TEST_CASE("evaluator conformance: registered evaluators exist", "[conformance][evaluator]") {
  const auto names = names_of(PluginKind::Evaluator);
  CHECK(std::find(names.begin(), names.end(), "fixture_eval") != names.end());
#ifdef MR_CONFORMANCE_HAVE_TESTBED
  CHECK(std::find(names.begin(), names.end(), "testbed") != names.end());
#endif
#ifdef MR_CONFORMANCE_HAVE_EVALUATORS
  for (const char* name : {"pairwise_winrate", "arena_score", "judge_agreement"})
    CHECK(std::find(names.begin(), names.end(), name) != names.end());
#endif
}

TEST_CASE("evaluator conformance: every registered evaluator keeps the contract",
          "[conformance][evaluator]") {
  if (!registered("additive5") || !registered("pairwise_elo"))
    MR_SKIP(
        "the evaluators are driven with the recipe's additive5 and pairwise_elo, which this "
        "build does not register (the recipe plugins are not built)");
  auto name = GENERATE(from_range(names_of(PluginKind::Evaluator)));
  check_evaluator(plugin(name));
}
