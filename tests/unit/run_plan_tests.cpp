// The generation budget (`metareward plan`) as a pure function of the resolved config: the
// paper's numbers for configs/meta_rewarding.toml, the Self-Rewarding baseline, per-iteration
// values, actual prompt counts, unknown meta-judges and the text / JSON renderings.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "metareward/core/config_loader.hpp"
#include "metareward/core/plugin_registry.hpp"
#include "metareward/core/run_plan.hpp"
#include "metareward/sdk/error.hpp"

namespace fs = std::filesystem;
using mr::core::IterationPlan;
using mr::core::plan_run;
using mr::core::ResolvedConfig;
using mr::core::RunPlan;

namespace {

/// The plugins the shipped configs name, with only the schema keys the plan reads (plus
/// `path`): plugin tables are reduced to these keys before resolving, so the test exercises the
/// configs' real [run], [prompts] and [generation.*] values without the plugin libraries.
class PlanCatalog : public mr::core::PluginCatalog {
 public:
  PlanCatalog() {
    using mr::sdk::ParamSpec;
    add(mr::sdk::Factory<mr::sdk::ModelBackend>{}, "torch",
        {ParamSpec::required_("path", mr::sdk::ParamType::String, "Checkpoint.")});
    add(mr::sdk::Factory<mr::sdk::JudgeRubric>{}, "additive5", {});
    add(mr::sdk::Factory<mr::sdk::MetaJudgeStrategy>{}, "pairwise_elo",
        {ParamSpec::string_("response_selection", "max_variance", "Responses meta-judged.")
             .one_of({"max_variance", "all", "random"})});
    add(mr::sdk::Factory<mr::sdk::MetaJudgeStrategy>{}, "none", {});
    add(mr::sdk::Factory<mr::sdk::MetaJudgeStrategy>{}, "third_party", {});
    add(mr::sdk::Factory<mr::sdk::PairSelectionPolicy>{}, "length_control", {});
    add(mr::sdk::Factory<mr::sdk::PairSelectionPolicy>{}, "best_worst", {});
    add(mr::sdk::Factory<mr::sdk::Optimizer>{}, "dpo", {});
  }
  const mr::core::RegisteredPlugin* find(std::string_view name) const override {
    for (const auto& p : plugins_)
      if (p.descriptor.name == name) return &p;
    return nullptr;
  }
  std::vector<std::string> names(mr::sdk::PluginKind kind) const override {
    std::vector<std::string> out;
    for (const auto& p : plugins_)
      if (p.descriptor.kind() == kind) out.push_back(p.descriptor.name);
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  template <class Interface>
  void add(mr::sdk::Factory<Interface> factory, const std::string& name, mr::sdk::Schema schema) {
    mr::core::RegisteredPlugin plugin;
    plugin.descriptor =
        mr::sdk::PluginDescriptor{name, "1.0.0", "plan test plugin " + name, std::move(schema),
                                  mr::sdk::AnyFactory(std::move(factory))};
    plugin.library_name = "plan-tests";
    plugins_.push_back(std::move(plugin));
  }
  std::vector<mr::core::RegisteredPlugin> plugins_;
};

/// Keeps only `keep` keys of a plugin table.
void reduce(mr::sdk::Table& table, const std::vector<std::string>& keep) {
  for (auto it = table.begin(); it != table.end();)
    it = std::find(keep.begin(), keep.end(), it->first) == keep.end() ? table.erase(it)
                                                                      : std::next(it);
}

/// Resolves configs/<name> (plugin tables reduced to what PlanCatalog declares).
ResolvedConfig resolve_shipped(const std::string& name,
                               const std::vector<std::string>& overrides = {}) {
  const fs::path file = fs::path(MR_SOURCE_DIR) / "configs" / name;
  REQUIRE(fs::exists(file));
  mr::core::ConfigDocument doc = mr::core::parse_config_file(file);
  for (auto& [key, value] : doc.root) {
    if (key == "models") {
      for (auto& [model, table] : value.as_table()) reduce(table.as_table(), {"type", "path"});
    } else if (key == "meta_judge") {
      reduce(value.as_table(), {"type", "response_selection"});
    } else if (key == "judge_rubric" || key == "pair_selection" || key == "optimizer") {
      reduce(value.as_table(), {"type"});
    }
  }
  mr::core::apply_overrides(doc, overrides);
  return mr::core::resolve_config(doc, PlanCatalog());
}

ResolvedConfig resolve_text(const std::string& text) {
  return mr::core::resolve_config(
      mr::core::parse_config_text("[models.policy]\ntype = \"torch\"\npath = \"/m\"\n" + text,
                                  "plan.toml"),
      PlanCatalog());
}

std::string config_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const mr::sdk::ConfigError& e) {
    return e.what();
  }
  FAIL("expected a ConfigError");
  return "";
}

}  // namespace

TEST_CASE("plan: the paper's budget for configs/meta_rewarding.toml", "[plan]") {
  const RunPlan plan = plan_run(resolve_shipped("meta_rewarding.toml"));
  REQUIRE(plan.iterations.size() == 4);
  CHECK(plan.meta_judge == "pairwise_elo");
  CHECK(plan.response_selection == "max_variance");

  SECTION("iterations 1-2 train the judge: 35,000 actor, 385,000 judge, 550,000 meta-judge") {
    for (int t : {1, 2}) {
      const IterationPlan& it = plan.iterations[static_cast<std::size_t>(t - 1)];
      CHECK(it.iteration == t);
      CHECK(it.prompts == 5000);
      CHECK(it.prompts_planned);
      CHECK(it.actor_samples == 7);
      CHECK(it.judge_samples == 11);
      CHECK(it.train_judge);
      CHECK(it.actor_generations == 35000);
      CHECK(it.judge_generations == 385000);
      CHECK(it.meta_judged_responses == 5000);
      CHECK(it.meta_judge_generations == 550000);
      CHECK(it.max_actor_pairs == 5000);
      CHECK(it.max_judge_pairs == 5000);
    }
  }
  SECTION("iterations 3-4 train the actor only: no meta-judge generations, no judge pairs") {
    for (int t : {3, 4}) {
      const IterationPlan& it = plan.iterations[static_cast<std::size_t>(t - 1)];
      CHECK_FALSE(it.train_judge);
      CHECK(it.actor_generations == 35000);
      CHECK(it.judge_generations == 385000);
      CHECK(it.meta_judge_generations == 0);
      CHECK(it.max_judge_pairs == 0);
      CHECK(it.max_actor_pairs == 5000);
    }
  }
  SECTION("totals") {
    CHECK(plan.total_prompts() == 20000);
    CHECK(plan.total_actor_generations() == 140000);
    CHECK(plan.total_judge_generations() == 1540000);
    CHECK(plan.total_meta_judge_generations() == 1100000);
    CHECK(plan.total_max_actor_pairs() == 20000);
    CHECK(plan.total_max_judge_pairs() == 10000);
  }
}

TEST_CASE("plan: the Self-Rewarding baseline has no meta-judge", "[plan]") {
  const RunPlan plan = plan_run(resolve_shipped("self_rewarding.toml"));
  REQUIRE(plan.iterations.size() == 4);
  CHECK(plan.meta_judge == "none");
  CHECK(plan.response_selection.empty());
  for (const auto& it : plan.iterations) {
    CHECK(it.actor_samples == 4);
    CHECK(it.judge_samples == 3);
    CHECK(it.actor_generations == 20000);
    CHECK(it.judge_generations == 60000);
    CHECK(it.meta_judge_generations == 0);
    CHECK(it.max_judge_pairs == 0);
  }
  SECTION("even when train_judge is forced on, meta_judge 'none' generates nothing") {
    const RunPlan forced =
        plan_run(resolve_shipped("self_rewarding.toml", {"run.train_judge=true"}));
    CHECK(forced.iterations[0].train_judge);
    CHECK(forced.iterations[0].meta_judge_generations == 0);
    CHECK(forced.total_meta_judge_generations() == 0);
  }
}

TEST_CASE("plan: the arithmetic follows the config", "[plan]") {
  SECTION("response_selection = all meta-judges every response") {
    const RunPlan plan =
        plan_run(resolve_shipped("meta_rewarding.toml", {"meta_judge.response_selection=all"}));
    CHECK(plan.iterations[0].meta_judged_responses == 35000);
    CHECK(plan.iterations[0].meta_judge_generations == 35000 * 110);
    CHECK(plan.iterations[0].max_judge_pairs == 35000);
    CHECK(plan.iterations[2].meta_judge_generations == 0);
  }
  SECTION("random selection meta-judges one response per prompt") {
    const RunPlan plan =
        plan_run(resolve_shipped("meta_rewarding.toml", {"meta_judge.response_selection=random"}));
    CHECK(plan.iterations[0].meta_judge_generations == 550000);
  }
  SECTION("per-iteration K, N and train_judge") {
    const RunPlan plan = plan_run(resolve_shipped(
        "meta_rewarding.toml",
        {"generation.actor.samples=[7, 4, 4, 2]", "generation.judge.samples=[11, 3, 2, 1]",
         "run.train_judge=[true, true, true, true]"}));
    CHECK(plan.iterations[1].actor_generations == 20000);
    CHECK(plan.iterations[1].judge_generations == 60000);
    CHECK(plan.iterations[1].meta_judge_generations == 5000 * 3 * 2);
    CHECK(plan.iterations[2].meta_judge_generations == 5000 * 2 * 1);
    // One judgment per response: no pair to meta-judge.
    CHECK(plan.iterations[3].judge_generations == 10000);
    CHECK(plan.iterations[3].meta_judge_generations == 0);
  }
  SECTION("defaults: 4 iterations of 5000 prompts, K = 7, N = 11, judge trained every time") {
    const RunPlan plan = plan_run(resolve_text(""));
    REQUIRE(plan.iterations.size() == 4);
    CHECK(plan.iterations[3].meta_judge_generations == 550000);
    CHECK(plan.config_file == "plan.toml");
  }
  SECTION("actual slice sizes replace per_iteration and are not marked planned") {
    const RunPlan plan = plan_run(resolve_shipped("meta_rewarding.toml"),
                                  std::vector<std::int64_t>{5000, 4000, 3000, 10});
    CHECK_FALSE(plan.iterations[0].prompts_planned);
    CHECK(plan.iterations[1].prompts == 4000);
    CHECK(plan.iterations[1].actor_generations == 28000);
    CHECK(plan.iterations[1].judge_generations == 308000);
    CHECK(plan.iterations[1].meta_judge_generations == 440000);
    CHECK(plan.iterations[3].actor_generations == 70);
    CHECK(plan.total_prompts() == 12010);
  }
  SECTION("actual counts for the wrong number of iterations are an error") {
    CHECK_THAT(config_error([] {
                 plan_run(resolve_shipped("meta_rewarding.toml"), std::vector<std::int64_t>{1});
               }),
               Catch::Contains("1 prompt counts given for 4 iterations"));
  }
  SECTION("a meta_judge plugin the plan does not know gives unknown counts, not guesses") {
    const RunPlan plan =
        plan_run(resolve_text("[meta_judge]\ntype = \"third_party\"\n[run]\n"
                              "iterations = 2\ntrain_judge = [true, false]\n"));
    CHECK_FALSE(plan.iterations[0].meta_judge_generations.has_value());
    CHECK_FALSE(plan.iterations[0].max_judge_pairs.has_value());
    CHECK(plan.iterations[1].meta_judge_generations == 0);  // The judge is not trained.
    CHECK_FALSE(plan.total_meta_judge_generations().has_value());
    CHECK(plan.total_actor_generations() == 70000);
  }
  SECTION("a count beyond 64 bits is an error, not a wrapped number") {
    const auto r = resolve_text(
        "[prompts]\nper_iteration = 9000000000000000000\n[generation.actor]\nsamples = 7\n");
    CHECK_THAT(config_error([&] { plan_run(r); }), Catch::Contains("does not fit in 64 bits"));
  }
}

TEST_CASE("plan: text and JSON renderings", "[plan]") {
  RunPlan plan = plan_run(resolve_shipped("meta_rewarding.toml"));
  plan.prompts_note = "prompt file 'x.jsonl' not found";

  SECTION("the table shows each iteration's counts, the totals and what is planned") {
    const std::string text = mr::core::format_plan_table(plan);
    std::istringstream lines(text);
    std::string line;
    std::vector<std::string> rows;
    while (std::getline(lines, line)) rows.push_back(line);
    auto row_starting = [&](const std::string& head) {
      for (const auto& r : rows)
        if (r.rfind(head, 0) == 0) return r;
      return std::string();
    };
    const std::string first = row_starting("1 ");
    CHECK_THAT(first, Catch::Contains("5000*"));
    CHECK_THAT(first, Catch::Contains(" 35000 "));
    CHECK_THAT(first, Catch::Contains(" 385000 "));
    CHECK_THAT(first, Catch::Contains(" 550000 "));
    CHECK_THAT(first, Catch::Contains(" yes "));
    const std::string third = row_starting("3 ");
    CHECK_THAT(third, Catch::Contains(" no "));
    CHECK_THAT(third, !Catch::Contains("550000"));
    const std::string total = row_starting("total");
    CHECK_THAT(total, Catch::Contains(" 140000 "));
    CHECK_THAT(total, Catch::Contains(" 1540000 "));
    CHECK_THAT(total, Catch::Contains(" 1100000 "));
    CHECK_THAT(text, Catch::Contains("* planned: prompts.per_iteration (prompt file 'x.jsonl' "
                                     "not found)"));
    CHECK_THAT(text, Catch::Contains("response_selection = max_variance"));
  }
  SECTION("JSON carries the same numbers, unknown counts as null") {
    const auto doc = nlohmann::json::parse(mr::core::format_plan_json(plan));
    REQUIRE(doc["iterations"].size() == 4);
    CHECK(doc["iterations"][0]["actor_generations"] == 35000);
    CHECK(doc["iterations"][0]["judge_generations"] == 385000);
    CHECK(doc["iterations"][0]["meta_judge_generations"] == 550000);
    CHECK(doc["iterations"][2]["meta_judge_generations"] == 0);
    CHECK(doc["iterations"][0]["prompts_planned"] == true);
    CHECK(doc["totals"]["meta_judge_generations"] == 1100000);
    CHECK(doc["meta_judge"] == "pairwise_elo");

    const RunPlan unknown = plan_run(resolve_text("[meta_judge]\ntype = \"third_party\"\n"));
    const auto u = nlohmann::json::parse(mr::core::format_plan_json(unknown));
    CHECK(u["iterations"][0]["meta_judge_generations"].is_null());
    CHECK(u["totals"]["meta_judge_generations"].is_null());
    CHECK_THAT(mr::core::format_plan_table(unknown), Catch::Contains("?"));
  }
}
