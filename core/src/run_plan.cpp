// The generation budget of a run, from the resolved config: the arithmetic behind `metareward
// plan` (method.md "Generation budget per iteration").
#include "metareward/core/run_plan.hpp"

#include <algorithm>
#include <sstream>

#include <nlohmann/json.hpp>

#include "metareward/core/run/seed_stage.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::core {

namespace {

/// a x b, or a ConfigError naming `what` when the product does not fit in 64 bits.
std::int64_t checked_mul(std::int64_t a, std::int64_t b, const char* what, int iteration) {
  std::int64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out))
    throw sdk::ConfigError("plan: iteration " + std::to_string(iteration) + ": the number of " +
                           what + " does not fit in 64 bits");
  return out;
}

std::int64_t checked_add(std::int64_t a, std::int64_t b) {
  std::int64_t out = 0;
  if (__builtin_add_overflow(a, b, &out))
    throw sdk::ConfigError("plan: a total does not fit in 64 bits");
  return out;
}

template <class Get>
std::int64_t sum(const std::vector<IterationPlan>& its, Get get) {
  std::int64_t total = 0;
  for (const auto& it : its) total = checked_add(total, get(it));
  return total;
}

template <class Get>
std::optional<std::int64_t> sum_known(const std::vector<IterationPlan>& its, Get get) {
  std::int64_t total = 0;
  for (const auto& it : its) {
    const std::optional<std::int64_t> v = get(it);
    if (!v) return std::nullopt;
    total = checked_add(total, *v);
  }
  return total;
}

std::string text_of(const std::optional<std::int64_t>& v) {
  return v ? std::to_string(*v) : "?";
}

nlohmann::json json_of(const std::optional<std::int64_t>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

}  // namespace

std::int64_t RunPlan::total_prompts() const {
  return sum(iterations, [](const IterationPlan& i) { return i.prompts; });
}
std::int64_t RunPlan::total_actor_generations() const {
  return sum(iterations, [](const IterationPlan& i) { return i.actor_generations; });
}
std::int64_t RunPlan::total_judge_generations() const {
  return sum(iterations, [](const IterationPlan& i) { return i.judge_generations; });
}
std::optional<std::int64_t> RunPlan::total_meta_judge_generations() const {
  return sum_known(iterations, [](const IterationPlan& i) { return i.meta_judge_generations; });
}
std::int64_t RunPlan::total_max_actor_pairs() const {
  return sum(iterations, [](const IterationPlan& i) { return i.max_actor_pairs; });
}
std::optional<std::int64_t> RunPlan::total_max_judge_pairs() const {
  return sum_known(iterations, [](const IterationPlan& i) { return i.max_judge_pairs; });
}

namespace {

SeedStagePlan plan_seed_stage(const ResolvedConfig& config, std::optional<std::int64_t> examples) {
  SeedStagePlan seed;
  seed.optimizer = config.plugin_of.at(kSeedStageTable);
  seed.data = seed_stage_data_file(config).string();
  seed.examples = examples;
  const sdk::Config& table = config.section(kSeedStageTable);
  if (table.has("epochs")) seed.epochs = table.get_int("epochs");
  if (table.has("batch_size")) seed.batch_size = table.get_int("batch_size");
  if (seed.examples && seed.epochs && seed.batch_size && *seed.batch_size > 0)
    seed.steps =
        checked_mul(*seed.epochs, (*seed.examples + *seed.batch_size - 1) / *seed.batch_size,
                    "seed stage steps", 0);
  return seed;
}

}  // namespace

RunPlan plan_run(const ResolvedConfig& config,
                 const std::optional<std::vector<std::int64_t>>& actual_prompts,
                 std::optional<std::int64_t> seed_examples) {
  const int n_iterations = config.iterations;
  if (actual_prompts && actual_prompts->size() != static_cast<std::size_t>(n_iterations))
    throw sdk::ConfigError("plan: " + std::to_string(actual_prompts->size()) +
                           " prompt counts given for " + std::to_string(n_iterations) +
                           " iterations");
  const sdk::Config& run = config.section("run");
  const sdk::Config& prompts = config.section("prompts");
  const sdk::Config& actor = config.section("generation.actor");
  const sdk::Config& judge = config.section("generation.judge");

  RunPlan plan;
  plan.config_file = config.file.string();
  if (config.plugin_of.count(kSeedStageTable))
    plan.seed_stage = plan_seed_stage(config, seed_examples);
  const auto meta = config.plugin_of.find("meta_judge");
  plan.meta_judge = meta == config.plugin_of.end() ? "" : meta->second;
  const bool pairwise = plan.meta_judge == "pairwise_elo";
  if (pairwise) {
    // pairwise_elo's own default when its schema (an older build) has no such key.
    const sdk::Config& mj = config.section("meta_judge");
    plan.response_selection =
        mj.has("response_selection") ? mj.get_string("response_selection") : "max_variance";
  }

  for (int t = 1; t <= n_iterations; ++t) {
    IterationPlan it;
    it.iteration = t;
    it.prompts_planned = !actual_prompts;
    it.prompts = actual_prompts ? (*actual_prompts)[static_cast<std::size_t>(t - 1)]
                                : prompts.get_int("per_iteration");
    it.actor_samples = actor.get_int("samples", t);
    it.judge_samples = judge.get_int("samples", t);
    it.train_judge = run.get_bool("train_judge", t);
    it.actor_generations = checked_mul(it.prompts, it.actor_samples, "actor generations", t);
    it.judge_generations =
        checked_mul(it.actor_generations, it.judge_samples, "judge generations", t);
    it.max_actor_pairs = it.prompts;

    if (!it.train_judge || plan.meta_judge == "none") {
      it.meta_judged_responses = 0;
      it.meta_judge_generations = 0;
      it.max_judge_pairs = 0;
    } else if (pairwise) {
      // max_variance and random meta-judge one response per prompt, "all" every response.
      const std::int64_t responses =
          plan.response_selection == "all" ? it.actor_generations : it.prompts;
      // Every unordered pair of the N judgments, once in each order: N(N-1) calls.
      const std::int64_t ordered_pairs =
          checked_mul(it.judge_samples, it.judge_samples - 1, "judgment pairs", t);
      it.meta_judged_responses = responses;
      it.meta_judge_generations =
          checked_mul(responses, ordered_pairs, "meta-judge generations", t);
      it.max_judge_pairs = responses;
    }
    plan.iterations.push_back(it);
  }
  return plan;
}

std::string format_plan_table(const RunPlan& plan) {
  struct Column {
    std::string head;
    bool left = false;
  };
  const std::vector<Column> columns = {{"iter", true},
                                       {"prompts"},
                                       {"K"},
                                       {"N"},
                                       {"actor gens"},
                                       {"judge gens"},
                                       {"train judge", true},
                                       {"meta-judge gens"},
                                       {"max actor pairs"},
                                       {"max judge pairs"}};
  std::vector<std::vector<std::string>> rows;
  bool any_planned = false;
  for (const auto& it : plan.iterations) {
    any_planned = any_planned || it.prompts_planned;
    rows.push_back({std::to_string(it.iteration),
                    std::to_string(it.prompts) + (it.prompts_planned ? "*" : ""),
                    std::to_string(it.actor_samples), std::to_string(it.judge_samples),
                    std::to_string(it.actor_generations), std::to_string(it.judge_generations),
                    it.train_judge ? "yes" : "no", text_of(it.meta_judge_generations),
                    std::to_string(it.max_actor_pairs), text_of(it.max_judge_pairs)});
  }
  rows.push_back({"total", std::to_string(plan.total_prompts()) + (any_planned ? "*" : ""), "", "",
                  std::to_string(plan.total_actor_generations()),
                  std::to_string(plan.total_judge_generations()), "",
                  text_of(plan.total_meta_judge_generations()),
                  std::to_string(plan.total_max_actor_pairs()),
                  text_of(plan.total_max_judge_pairs())});

  std::vector<std::size_t> width(columns.size());
  for (std::size_t c = 0; c < columns.size(); ++c) {
    width[c] = columns[c].head.size();
    for (const auto& r : rows) width[c] = std::max(width[c], r[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const std::string pad(width[c] - cells[c].size(), ' ');
      out += (c ? "  " : "") + (columns[c].left ? cells[c] + pad : pad + cells[c]);
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };

  std::ostringstream out;
  const std::size_t n = plan.iterations.size();
  out << "Plan for " << plan.config_file << ": " << n << (n == 1 ? " iteration" : " iterations")
      << "; meta_judge " << (plan.meta_judge.empty() ? "(none configured)" : plan.meta_judge);
  if (!plan.response_selection.empty())
    out << " (response_selection = " << plan.response_selection << ")";
  out << "\n\n";
  if (const auto& seed = plan.seed_stage) {
    out << "Seed stage (iteration 0): " << seed->optimizer << " on " << text_of(seed->examples)
        << " examples from " << seed->data;
    if (seed->epochs && seed->batch_size)
      out << ", " << *seed->epochs << (*seed->epochs == 1 ? " epoch" : " epochs") << " of batch "
          << *seed->batch_size << ": " << text_of(seed->steps) << " optimizer steps at most";
    out << "\n";
    if (!plan.seed_note.empty()) out << "  (" << plan.seed_note << ")\n";
    out << "\n";
  }
  std::vector<std::string> heads;
  for (const auto& c : columns) heads.push_back(c.head);
  out << line(heads);
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (r + 1 == rows.size()) {
      std::size_t total_width = 0;
      for (std::size_t c = 0; c < width.size(); ++c) total_width += width[c] + (c ? 2 : 0);
      out << std::string(total_width, '-') << "\n";
    }
    out << line(rows[r]);
  }
  out << "\n";
  if (any_planned)
    out << "* planned: prompts.per_iteration"
        << (plan.prompts_note.empty() ? "" : " (" + plan.prompts_note + ")") << "\n";
  else if (!plan.prompts_note.empty())
    out << "prompts: " << plan.prompts_note << "\n";
  out << "K = actor samples per prompt, N = judgments per response.\n"
      << "actor gens = prompts x K; judge gens = prompts x K x N";
  if (plan.meta_judge == "pairwise_elo")
    out << ";\nmeta-judge gens = meta-judged responses x N(N-1) (every judgment pair, both "
           "orders),\n  only in iterations with run.train_judge";
  out << ".\nAll counts are upper bounds: duplicate responses, unparseable judgments and\n"
         "zero-variance responses lower them.\n";
  if (!plan.total_meta_judge_generations())
    out << "?: the meta_judge plugin '" << plan.meta_judge
        << "' does not declare its budget; counts unknown.\n";
  return out.str();
}

std::string format_plan_json(const RunPlan& plan) {
  nlohmann::json doc;
  doc["config"] = plan.config_file;
  doc["meta_judge"] = plan.meta_judge;
  if (!plan.response_selection.empty()) doc["response_selection"] = plan.response_selection;
  doc["prompts_note"] = plan.prompts_note;
  nlohmann::json its = nlohmann::json::array();
  for (const auto& it : plan.iterations) {
    its.push_back({{"iteration", it.iteration},
                   {"prompts", it.prompts},
                   {"prompts_planned", it.prompts_planned},
                   {"actor_samples", it.actor_samples},
                   {"judge_samples", it.judge_samples},
                   {"train_judge", it.train_judge},
                   {"actor_generations", it.actor_generations},
                   {"judge_generations", it.judge_generations},
                   {"meta_judged_responses", json_of(it.meta_judged_responses)},
                   {"meta_judge_generations", json_of(it.meta_judge_generations)},
                   {"max_actor_pairs", it.max_actor_pairs},
                   {"max_judge_pairs", json_of(it.max_judge_pairs)}});
  }
  doc["iterations"] = std::move(its);
  if (const auto& seed = plan.seed_stage)
    doc["seed_stage"] = {{"optimizer", seed->optimizer},
                         {"data", seed->data},
                         {"examples", json_of(seed->examples)},
                         {"epochs", json_of(seed->epochs)},
                         {"batch_size", json_of(seed->batch_size)},
                         {"steps", json_of(seed->steps)},
                         {"note", plan.seed_note}};
  else
    doc["seed_stage"] = nullptr;
  doc["totals"] = {{"prompts", plan.total_prompts()},
                   {"actor_generations", plan.total_actor_generations()},
                   {"judge_generations", plan.total_judge_generations()},
                   {"meta_judge_generations", json_of(plan.total_meta_judge_generations())},
                   {"max_actor_pairs", plan.total_max_actor_pairs()},
                   {"max_judge_pairs", json_of(plan.total_max_judge_pairs())}};
  return doc.dump(2) + "\n";
}

}  // namespace mr::core
