// End-to-end-ish: the registered recipe plugins driven like the host drives them, with a
// scripted backend playing actor, judge and meta-judge.
#include <catch2/catch.hpp>

#include <map>
#include <regex>

#include "recipe_plugins.hpp"
#include "recipe_test_util.hpp"
#include "scripted_backend.hpp"
#include "text_util.hpp"

using namespace mr::sdk;
using mr::test::config_from_schema;
using mr::test::ScriptedBackend;
using mr::test::TestHostContext;

namespace {

// Collects descriptors like the host's registrar does.
class Collector : public Registrar {
 public:
  void add(PluginDescriptor d) override { plugins.emplace(d.name, std::move(d)); }
  std::map<std::string, PluginDescriptor> plugins;
};

template <class Interface>
std::unique_ptr<Interface> create(Collector& c, const std::string& name, TestHostContext& ctx) {
  const auto& d = c.plugins.at(name);
  REQUIRE(d.kind() == kind_of<Interface>());
  return std::get<Factory<Interface>>(d.factory)(ctx);
}

// Actor: response i of prompt P is "Answer i to P. quality=Q" padded to a known length.
// Quality and length per sample index: quality {5, 4, 2, 1}, length {300, 120, 50, 400}.
const int kQuality[] = {5, 4, 2, 1};
const int kLength[] = {300, 120, 50, 400};

std::vector<std::string> actor(const GenerationRequest& req) {
  std::vector<std::string> out;
  for (int i = 0; i < req.n; ++i) {
    std::string t = "Answer " + std::to_string(i) + " to " + req.messages.back().content +
                    " quality=" + std::to_string(kQuality[i]) + " ";
    t.resize(static_cast<std::size_t>(kLength[i]), '.');
    out.push_back(t);
  }
  return out;
}

// Judge: reads quality=Q from the judge prompt. Sample 0 is accurate, sample 1 is one point
// generous (capped at 5), sample 2 is unparseable. The accurate one says "accurate".
std::vector<std::string> judge(const GenerationRequest& req) {
  std::smatch m;
  const std::string& prompt = req.messages.back().content;
  REQUIRE(std::regex_search(prompt, m, std::regex("quality=(\\d)")));
  int q = std::stoi(m[1]);
  return {"An accurate reading of the rubric.\nScore: " + std::to_string(q),
          "A generous reading.\n**Score:** " + std::to_string(std::min(q + 1, 5)),
          "I refuse to grade this."};
}

// Meta-judge: prefers the judgment that calls itself accurate, whatever its position.
std::vector<std::string> meta(const GenerationRequest& req) {
  const std::string& p = req.messages.back().content;
  auto a = p.find("<judgment_a>"), b = p.find("<judgment_b>");
  bool a_accurate = p.substr(a, b - a).find("accurate reading") != std::string::npos;
  return {std::string("Reasoning.\nWinner: ") + (a_accurate ? "Judgement A" : "Judgement B")};
}

}  // namespace

TEST_CASE("pipeline: actor -> judge -> actor pairs -> meta-judge -> judge pairs",
          "[recipe][pipeline]") {
  Collector plugins;
  mr::plugins::recipe::register_recipe_plugins(plugins);
  TestHostContext rubric_ctx(config_from_schema(plugins.plugins.at("additive5").schema));
  TestHostContext policy_ctx(
      config_from_schema(plugins.plugins.at("length_control").schema, {{"rho", 0.25}}));
  TestHostContext meta_ctx(config_from_schema(plugins.plugins.at("pairwise_elo").schema));
  auto rubric = create<JudgeRubric>(plugins, "additive5", rubric_ctx);
  auto policy = create<PairSelectionPolicy>(plugins, "length_control", policy_ctx);
  auto strategy = create<MetaJudgeStrategy>(plugins, "pairwise_elo", meta_ctx);
  const IterationInfo info{1, 2, 2024};

  // 1. Prompts and actor samples.
  std::vector<PromptGroup> groups(2);
  groups[0].prompt_id = "p0";
  groups[0].prompt = {{"user", "What is a prime?"}};
  groups[1].prompt_id = "p1";
  groups[1].prompt = {{"user", "Why is the sky blue?"}};
  ScriptedBackend actor_model(actor, "actor");
  std::vector<GenerationRequest> actor_requests;
  for (const auto& g : groups) actor_requests.push_back({g.prompt_id, g.prompt, {}, 4, 1});
  auto actor_out = actor_model.generate(actor_requests);
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    REQUIRE(actor_out[gi].error.empty());
    for (std::size_t i = 0; i < actor_out[gi].completions.size(); ++i) {
      ResponseCandidate r;
      r.id = groups[gi].prompt_id + "/r" + std::to_string(i);
      r.text = actor_out[gi].completions[i].text;
      r.length_chars = mr::plugins::recipe::utf8_length(r.text);
      groups[gi].responses.push_back(r);
    }
  }

  // 2. Judge: three judgments per response, parsed by the rubric.
  ScriptedBackend judge_model(judge, "judge");
  std::vector<GenerationRequest> judge_requests;
  for (const auto& g : groups)
    for (const auto& r : g.responses)
      judge_requests.push_back({r.id, rubric->build_prompt(g.prompt, r.text), {}, 3, 7});
  auto judge_out = judge_model.generate(judge_requests);
  std::size_t k = 0;
  std::int64_t parse_failures = 0;
  for (auto& g : groups) {
    for (auto& r : g.responses) {
      double sum = 0;
      int valid = 0;
      const auto& res = judge_out[k++];
      REQUIRE(res.completions.size() == 3);
      for (std::size_t j = 0; j < res.completions.size(); ++j) {
        Judgment jd{r.id + "/j" + std::to_string(j), res.completions[j].text, std::nullopt};
        auto parsed = rubric->parse(jd.text);
        jd.score = parsed.score;
        if (parsed.score) {
          sum += *parsed.score;
          ++valid;
        } else {
          ++parse_failures;
        }
        r.judgments.push_back(jd);
      }
      if (valid > 0) r.mean_score = sum / valid;
    }
  }
  CHECK(parse_failures == 8);  // one refusal per response
  // The judge saw the actor's text inside <response> tags.
  CHECK(judge_model.requests()[0].messages[0].content.find(
            "<response>\n" + groups[0].responses[0].text) != std::string::npos);

  // 3. Actor pairs. Means: 5, 4.5, 2.5, 1.5 -> S_max 5, S_min 1.5, rho 0.25: top tier >= 4.125
  // (r0 300, r1 120 -> shortest r1), bottom tier <= 2.375 (r3 400 only).
  auto actor_pairs = policy->select(groups, info);
  REQUIRE(actor_pairs.pairs.size() == 2);
  for (const auto& p : actor_pairs.pairs) {
    CHECK(p.chosen_id == p.prompt_id + "/r1");
    CHECK(p.rejected_id == p.prompt_id + "/r3");
    CHECK(*p.chosen_score == 4.5);
    CHECK(*p.rejected_score == 1.5);
  }

  // 4. Meta-judge: the max-variance response per prompt (variance 0.25 for every response with
  // a generous judge except quality 5, so ties are broken by the seed), both orders.
  auto battles_requested = strategy->plan(groups, *rubric, info);
  REQUIRE(battles_requested.size() == 4);  // 2 prompts x C(2,2) x 2 orders
  ScriptedBackend meta_model(meta, "meta");
  std::vector<GenerationRequest> meta_requests;
  for (const auto& b : battles_requested) meta_requests.push_back({b.id, b.messages, {}, 1, 3});
  auto meta_out = meta_model.generate(meta_requests);
  std::vector<Battle> battles;
  for (std::size_t i = 0; i < battles_requested.size(); ++i)
    battles.push_back({battles_requested[i], meta_out[i].completions.at(0).text, 0});
  auto decided = strategy->decide(groups, *rubric, battles, info,
                                  static_cast<std::int64_t>(actor_pairs.pairs.size()));

  // 5. Judge pairs: the accurate judgment beats the generous one for each prompt.
  REQUIRE(decided.judge_pairs.size() == 2);
  for (const auto& p : decided.judge_pairs) {
    CHECK(p.role == PairRole::Judge);
    CHECK(p.chosen.find("accurate reading") != std::string::npos);
    CHECK(p.rejected.find("generous reading") != std::string::npos);
    CHECK(p.chosen_id.substr(p.chosen_id.size() - 3) == "/j0");
    CHECK(p.rejected_id.substr(p.rejected_id.size() - 3) == "/j1");
    // The judge pair's prompt is the judge prompt of the response the judgments are about.
    const std::string response_id = p.meta.at("response_id");
    const auto& g = groups[p.prompt_id == "p0" ? 0 : 1];
    const ResponseCandidate* resp = nullptr;
    for (const auto& r : g.responses)
      if (r.id == response_id) resp = &r;
    REQUIRE(resp != nullptr);
    CHECK(p.prompt == rubric->build_prompt(g.prompt, resp->text));
  }
  CHECK(decided.diagnostics.at("positional_bias") == Approx(0.5));
  CHECK(decided.diagnostics.at("verdict_parse_failure_rate") == 0.0);
  CHECK(decided.diagnostics.at("score_bias") == 0.0);  // the lower (accurate) score always wins
}
