// The generation stages (actor, judge, meta-judge) and pair selection of one iteration
// (stages.hpp).
#include "stages.hpp"

#include <chrono>

#include "generation_engine.hpp"
#include "metareward/core/artifact_io.hpp"
#include "metareward/core/run/artifact_rows.hpp"

namespace mr::core {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

/// Config of one generation role for one iteration.
struct RoleSampling {
  sdk::SamplingParams sampling;
  int samples = 1;
  std::int64_t batch_size = 1;
};

RoleSampling role_sampling(const ResolvedConfig& config, const std::string& role, int t) {
  const sdk::Config& c = config.section("generation." + role);
  RoleSampling r;
  r.sampling.temperature = c.get_float("temperature", t);
  r.sampling.top_p = c.get_float("top_p", t);
  r.sampling.top_k = static_cast<int>(c.get_int("top_k", t));
  r.sampling.max_new_tokens = static_cast<int>(c.get_int("max_new_tokens", t));
  r.samples = c.has("samples") ? static_cast<int>(c.get_int("samples", t)) : 1;
  r.batch_size = c.get_int("batch_size", t);
  return r;
}

double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

void StageContext::enter(const std::string& stage) const {
  session.set_stage(stage + ", iteration " + std::to_string(t));
}

std::map<std::string, const PoolPrompt*> run_prompts_stage(const StageContext& ctx,
                                                           const std::vector<PoolPrompt>& prompts) {
  const auto start = Clock::now();
  std::map<std::string, const PoolPrompt*> prompt_by_id;
  for (const auto& p : prompts) prompt_by_id[p.id] = &p;
  const fs::path file = ctx.dir.file(ctx.t, RunDirectory::kPrompts);
  if (!fs::exists(file)) {
    std::string text;
    for (const auto& p : prompts)
      text += rows::prompt_row(p.id, p.messages,
                               p.file.filename().string() + ":" + std::to_string(p.line)) +
              "\n";
    write_file_atomic(file, text);
  }
  ctx.timings["stages"]["prompts"] = since(start);
  return prompt_by_id;
}

std::vector<sdk::PromptGroup> run_actor_stage(
    const StageContext& ctx,
    const std::vector<PoolPrompt>& prompts,
    const std::map<std::string, const PoolPrompt*>& prompt_by_id) {
  ctx.enter("actor");
  const RoleSampling actor = role_sampling(ctx.session.config(), "actor", ctx.t);
  std::vector<sdk::GenerationRequest> requests;
  const std::uint64_t s = ctx.session.info(ctx.t, StageCode::Actor).seed;
  for (std::size_t i = 0; i < prompts.size(); ++i)
    requests.push_back({prompts[i].id, prompts[i].messages, actor.sampling, actor.samples,
                        sdk::derive_seed(s, i)});
  GenerationJob job;
  job.label = ctx.tag + " actor";
  job.file = ctx.dir.file(ctx.t, RunDirectory::kResponses);
  job.model = &ctx.session.actor();
  job.requests = &requests;
  job.batch_size = actor.batch_size;
  job.rows_of = [](std::size_t, const sdk::GenerationResult& r, std::vector<std::string>& lines) {
    rows::response_rows(r, lines);
  };
  job.stop_requested = ctx.stop_requested;
  const GenerationStats g = run_generation(job);
  ctx.timings["stages"]["actor"] = g.seconds;
  if (g.seconds > 0) ctx.timings["throughput"]["actor_tokens_per_s"] = g.tokens / g.seconds;
  return rows::read_responses(job.file, prompt_by_id);
}

json run_judge_stage(const StageContext& ctx, std::vector<sdk::PromptGroup>& groups) {
  ctx.enter("judge");
  const RoleSampling judge = role_sampling(ctx.session.config(), "judge", ctx.t);
  sdk::JudgeRubric& rubric = ctx.session.rubric();
  std::vector<sdk::GenerationRequest> requests;
  const std::uint64_t s = ctx.session.info(ctx.t, StageCode::Judge).seed;
  std::map<std::string, std::string> prompt_of_response;
  for (const auto& g : groups)
    for (const auto& r : g.responses) {
      const CallContext::ItemScope item("response '" + r.id + "'");
      requests.push_back({r.id, rubric.build_prompt(g.prompt, r.text), judge.sampling,
                          judge.samples, sdk::derive_seed(s, requests.size())});
      prompt_of_response[r.id] = g.prompt_id;
    }
  GenerationJob job;
  job.label = ctx.tag + " judge";
  job.file = ctx.dir.file(ctx.t, RunDirectory::kJudgments);
  job.model = &ctx.session.judge();
  job.requests = &requests;
  job.batch_size = judge.batch_size;
  job.rows_of = [&](std::size_t, const sdk::GenerationResult& r, std::vector<std::string>& lines) {
    rows::judgment_rows(
        prompt_of_response.at(r.request_id), r,
        [&](std::size_t k, const std::string& text) {
          const CallContext::ItemScope item("judgment '" + rows::judgment_id(r.request_id, k) +
                                            "'");
          return rubric.parse(text);
        },
        lines);
  };
  job.stop_requested = ctx.stop_requested;
  const GenerationStats g = run_generation(job);
  ctx.timings["stages"]["judge"] = g.seconds;
  if (g.seconds > 0) ctx.timings["throughput"]["judge_tokens_per_s"] = g.tokens / g.seconds;
  return rows::read_judgments(job.file, groups);
}

sdk::PairSelectionResult run_actor_pair_stage(const StageContext& ctx,
                                              const std::vector<sdk::PromptGroup>& groups) {
  ctx.enter("actor pairs");
  const auto start = Clock::now();
  sdk::PairSelectionResult selection =
      ctx.session.pair_policy().select(groups, ctx.session.info(ctx.t, StageCode::ActorPairs));
  for (auto& p : selection.pairs) p.role = sdk::PairRole::Actor;
  rows::write_pairs(ctx.dir.file(ctx.t, RunDirectory::kActorPairs), selection.pairs);
  ctx.timings["stages"]["actor_pairs"] = since(start);
  return selection;
}

MetaJudgeOutcome run_meta_judge_stage(const StageContext& ctx,
                                      const std::vector<sdk::PromptGroup>& groups,
                                      std::int64_t actor_pairs) {
  ctx.enter("meta-judge");
  const auto start = Clock::now();
  sdk::MetaJudgeStrategy& meta = ctx.session.meta();
  const sdk::IterationInfo plan_info = ctx.session.info(ctx.t, StageCode::MetaPlan);
  std::vector<sdk::BattleRequest> plan = meta.plan(groups, ctx.session.rubric(), plan_info);
  const RoleSampling mj = role_sampling(ctx.session.config(), "meta_judge", ctx.t);
  std::vector<sdk::GenerationRequest> requests;
  const std::uint64_t s = ctx.session.info(ctx.t, StageCode::MetaGeneration).seed;
  for (std::size_t i = 0; i < plan.size(); ++i)
    requests.push_back({plan[i].id, plan[i].messages, mj.sampling, 1, sdk::derive_seed(s, i)});
  GenerationJob job;
  job.label = ctx.tag + " meta-judge";
  job.file = ctx.dir.file(ctx.t, RunDirectory::kMetaJudgments);
  job.model = &ctx.session.meta_judge();
  job.requests = &requests;
  job.batch_size = mj.batch_size;
  job.rows_of = [&](std::size_t index, const sdk::GenerationResult& r,
                    std::vector<std::string>& lines) {
    lines.push_back(rows::battle_row(plan[index], r).dump());
  };
  job.stop_requested = ctx.stop_requested;
  const GenerationStats g = run_generation(job);
  if (g.seconds > 0) ctx.timings["throughput"]["meta_judge_tokens_per_s"] = g.tokens / g.seconds;

  std::vector<json> battle_rows;
  std::vector<sdk::Battle> battles = rows::read_battles(job.file, plan, battle_rows);
  sdk::MetaJudgeResult decided =
      meta.decide(groups, ctx.session.rubric(), std::move(battles), plan_info, actor_pairs);
  rows::write_battles(job.file, decided.battles, battle_rows);
  MetaJudgeOutcome out;
  for (auto& p : decided.judge_pairs) p.role = sdk::PairRole::Judge;
  rows::write_pairs(ctx.dir.file(ctx.t, RunDirectory::kJudgePairs), decided.judge_pairs);
  out.judge_pairs = decided.judge_pairs;
  ctx.timings["stages"]["meta_judge"] = since(start);
  json diagnostics = json::object();
  for (const auto& [k, v] : decided.diagnostics) diagnostics[k] = v;
  json drops = json::object();
  for (const auto& [k, v] : decided.drops) drops[k] = v;
  std::int64_t failed = 0;
  for (const auto& b : decided.battles) failed += b.verdict_text.empty() ? 1 : 0;
  out.metrics = {{"battles", decided.battles.size()},
                 {"empty_verdicts", failed},
                 {"diagnostics", diagnostics},
                 {"drops", drops}};
  out.judge_pair_metrics = rows::pair_metrics(out.judge_pairs, false);
  return out;
}

}  // namespace mr::core
