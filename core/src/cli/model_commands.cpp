// Commands that drive a model through the SDK interfaces only, whatever backend and optimizer
// plugins provide them: `generate`, `score`, `train-dpo`, `sft`. Core stays libtorch-free: it
// hands the backend's opaque TrainableModel to the optimizer plugin. train-dpo and sft also run
// data-parallel under torchrun / `metareward launch` (rank 0 writes); generate and score refuse.
#include <algorithm>
#include <iostream>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "metareward/core/config_loader.hpp"
#include "metareward/core/distributed/process_group.hpp"
#include "metareward/core/jsonl.hpp"
#include "metareward/core/logging.hpp"
#include "metareward/core/run/artifact_rows.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/sdk/plugin.hpp"
#include "model_session.hpp"

namespace mr::core::cli {

namespace po = boost::program_options;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

void log_input(const std::string& what, const std::string& source, const JsonlStats& stats) {
  if (stats.dropped_total() > 0)
    spdlog::warn("{} {}: {}", what, source, stats.summary());
  else
    spdlog::info("{} {}: {}", what, source, stats.summary());
}

/// Says that `source` held no usable row (nothing is done or written); the command then exits
/// exit_status::kNoUsableRows.
int no_usable_rows(const std::string& command,
                   const std::string& what,
                   const std::string& source,
                   const JsonlStats& stats) {
  std::cerr << "error: " << command << ": no usable " << what << " in '" << source << "' ("
            << stats.summary() << ")\n";
  return sdk::exit_status::kNoUsableRows;
}

/// kOk, or kDroppedRows (with a closing warning) when input rows were dropped or items failed.
int finished_status(const std::string& command, const JsonlStats& stats, std::int64_t failed) {
  if (stats.dropped_total() == 0 && failed == 0) return sdk::exit_status::kOk;
  spdlog::warn(
      "{}: finished, but {} input row(s) were dropped and {} item(s) failed (exit status {})",
      command, stats.dropped_total(), failed, sdk::exit_status::kDroppedRows);
  return sdk::exit_status::kDroppedRows;
}

/// --adapter-out DIR of the training commands, default OUT.adapter.
void add_adapter_out_option(po::options_description& options) {
  options.add_options()("adapter-out", po::value<std::string>()->value_name("DIR"),
                        "Where an optimizer that trains a LoRA adapter writes it (PEFT layout; "
                        "default: OUT.adapter); --out still gets the merged model.");
}

fs::path adapter_out(const po::variables_map& vm, const fs::path& out) {
  return vm.count("adapter-out") ? fs::path(vm["adapter-out"].as<std::string>())
                                 : fs::path(out.string() + ".adapter");
}

/// Trains with the session's optimizer and reports metrics; shared by train-dpo and sft.
int train(const std::string& command,
          ModelSession& s,
          const std::vector<sdk::PreferencePair>& pairs,
          const std::string& source,
          const JsonlStats& stats,
          const fs::path& out,
          const fs::path& adapter_dir,
          const std::string& metrics_path) {
  sdk::TrainableModel* model = s.backend->trainable();
  if (model == nullptr)
    throw sdk::BackendError("model backend '" + s.resolved.plugin_of.at("models.policy") +
                            "' cannot train (it has no trainable view)");
  if (pairs.empty()) return no_usable_rows(command, "training rows", source, stats);
  // Under torchrun / `metareward launch`: every rank reads the same rows and trains its share of
  // each step's micro-batches; the trainer writes the model, adapter and state from rank 0 only.
  const WorldEnv world = read_world_env();
  std::unique_ptr<ProcessGroup> group;
  if (world.world_size > 1)
    group = connect_process_group(world, distributed_options(s.resolved.section("distributed")));
  std::vector<std::string> metric_lines;
  sdk::TrainingJob job;
  if (group) job.collective = group->collective();
  job.info = {1, 1, sdk::derive_seed(s.seed, 0x7261696e)};
  job.output_dir = out;
  job.adapter_dir = adapter_dir;  // Written only when the optimizer trains an adapter.
  job.state_dir = fs::path(out.string() + ".state");
  job.on_step = [&](const sdk::StepMetrics& m) {
    json row = {{"step", m.step}};
    for (const auto& [k, v] : m.values) row[k] = v;
    metric_lines.push_back(row.dump());
    const auto value = [&](const char* k) {
      auto it = m.values.find(k);
      return it == m.values.end() ? 0.0 : it->second;
    };
    // The optimizer logs its own progress; this line is for debugging the host side.
    spdlog::debug("step {}: loss {:.4f} lr {:.3g} grad_norm {:.3f}", m.step, value("loss"),
                  value("lr"), value("grad_norm"));
  };
  const sdk::TrainingSummary summary = s.optimizer->train(*model, pairs, job);
  if (world.rank != 0) return 0;
  if (!metrics_path.empty()) write_lines_atomic(metrics_path, metric_lines);
  json result = {{"output_dir", out.string()}, {"steps", summary.steps}};
  for (const auto& [k, v] : summary.metrics) result[k] = v;
  std::cout << result.dump() << "\n";
  return finished_status(command, stats, 0);
}

}  // namespace

int generate_command(const GlobalOptions& globals, const std::vector<std::string>& args) {
  po::options_description options("Options");
  add_model_options(options);
  options.add_options()(
      "input", po::value<std::string>()->default_value("-"),
      "JSONL prompts ({\"prompt\"}, {\"messages\"} or {\"instruction\"}); - = stdin.")(
      "output", po::value<std::string>()->default_value("-"), "JSONL completions; - = stdout.")(
      "n", po::value<int>()->default_value(1), "Samples per prompt (sharing one prefill).")(
      "temperature", po::value<double>()->default_value(0.8), "Sampling temperature (0 = greedy).")(
      "top-p", po::value<double>()->default_value(0.95), "Nucleus sampling threshold.")(
      "top-k", po::value<int>()->default_value(0), "Top-k (0 = off).")(
      "max-new-tokens", po::value<int>()->default_value(256), "Tokens to generate at most.")(
      "stop", po::value<std::vector<std::string>>()->composing(), "Stop string (repeatable).")(
      "batch-size", po::value<int>()->default_value(16), "Prompts per generate() call.");
  po::variables_map vm;
  if (!parse_command_args("generate", "--model DIR [options]", options, {}, args, vm)) return 0;
  if (vm["n"].as<int>() < 1) throw UsageError("generate: --n must be >= 1");
  if (vm["batch-size"].as<int>() < 1) throw UsageError("generate: --batch-size must be >= 1");

  require_single_process(read_world_env(), "generate",
                         "start it once (a `metareward run` shards its generation over ranks)");
  ModelSession s;
  open_session(s, "generate", globals, vm, "");
  const std::string input = vm["input"].as<std::string>();
  JsonlStats stats;
  std::vector<PromptRow> rows = read_prompt_rows(*open_input(input), input, stats);
  log_input("prompts", input, stats);
  if (rows.empty()) return no_usable_rows("generate", "prompt rows", input, stats);

  sdk::SamplingParams sampling;
  sampling.temperature = vm["temperature"].as<double>();
  sampling.top_p = vm["top-p"].as<double>();
  sampling.top_k = vm["top-k"].as<int>();
  sampling.max_new_tokens = vm["max-new-tokens"].as<int>();
  if (vm.count("stop")) sampling.stop = vm["stop"].as<std::vector<std::string>>();

  std::vector<std::string> lines;
  auto progress = make_progress("generate", rows.size());
  const std::size_t batch = static_cast<std::size_t>(vm["batch-size"].as<int>());
  std::int64_t failed = 0;
  for (std::size_t start = 0; start < rows.size(); start += batch) {
    std::vector<sdk::GenerationRequest> requests;
    for (std::size_t i = start; i < std::min(rows.size(), start + batch); ++i)
      // Seed per row: results do not depend on --batch-size.
      requests.push_back(
          {rows[i].id, rows[i].messages, sampling, vm["n"].as<int>(), sdk::derive_seed(s.seed, i)});
    std::vector<sdk::GenerationResult> results = s.backend->generate(requests);
    if (results.size() != requests.size())
      throw sdk::BackendError("backend returned " + std::to_string(results.size()) +
                              " results for " + std::to_string(requests.size()) + " requests");
    std::uint64_t tokens = 0;
    for (std::size_t j = 0; j < results.size(); ++j) {
      json row = {{"id", requests[j].id},
                  {"messages", json::parse(conversation_json(requests[j].messages))}};
      if (!results[j].error.empty()) {
        ++failed;
        row["error"] = results[j].error;
        spdlog::warn("generate: request '{}' failed: {}", requests[j].id, results[j].error);
      }
      json completions = json::array();
      for (const auto& c : results[j].completions) {
        completions.push_back({{"text", c.text},
                               {"tokens", c.tokens},
                               {"finish_reason", rows::finish_name(c.finish_reason)}});
        tokens += static_cast<std::uint64_t>(c.tokens);
      }
      row["completions"] = completions;
      lines.push_back(row.dump());
    }
    progress->advance(requests.size(), tokens);
  }
  progress.reset();
  write_lines_atomic(vm["output"].as<std::string>(), lines);
  if (failed > 0) spdlog::warn("generate: {} of {} requests failed", failed, rows.size());
  return finished_status("generate", stats, failed);
}

int score_command(const GlobalOptions& globals, const std::vector<std::string>& args) {
  po::options_description options("Options");
  add_model_options(options);
  options.add_options()("input", po::value<std::string>()->default_value("-"),
                        "JSONL {\"prompt\" | \"messages\", \"completion\"}; - = stdin.")(
      "output", po::value<std::string>()->default_value("-"), "JSONL log-probs; - = stdout.")(
      "batch-size", po::value<int>()->default_value(8), "Rows per score() call.");
  po::variables_map vm;
  if (!parse_command_args("score", "--model DIR [options]", options, {}, args, vm)) return 0;
  if (vm["batch-size"].as<int>() < 1) throw UsageError("score: --batch-size must be >= 1");
  require_single_process(read_world_env(), "score", "start it once");
  ModelSession s;
  open_session(s, "score", globals, vm, "");
  const std::string input = vm["input"].as<std::string>();
  JsonlStats stats;
  std::vector<PairRow> rows = read_score_rows(*open_input(input), input, stats);
  log_input("score rows", input, stats);
  if (rows.empty()) return no_usable_rows("score", "rows", input, stats);

  std::vector<std::string> lines;
  auto progress = make_progress("score", rows.size());
  const std::size_t batch = static_cast<std::size_t>(vm["batch-size"].as<int>());
  std::int64_t failed = 0;
  for (std::size_t start = 0; start < rows.size(); start += batch) {
    std::vector<sdk::ScoreRequest> requests;
    for (std::size_t i = start; i < std::min(rows.size(), start + batch); ++i)
      requests.push_back({rows[i].id, rows[i].prompt, rows[i].chosen});
    std::vector<sdk::ScoreResult> results = s.backend->score(requests);
    if (results.size() != requests.size())
      throw sdk::BackendError("backend returned " + std::to_string(results.size()) +
                              " scores for " + std::to_string(requests.size()) + " requests");
    for (std::size_t j = 0; j < results.size(); ++j) {
      json row = {{"id", requests[j].id}};
      if (!results[j].error.empty()) {
        ++failed;
        row["error"] = results[j].error;
      } else {
        row["logprob_sum"] = results[j].logprob_sum;
        row["num_tokens"] = results[j].token_logprobs.size();
        row["token_logprobs"] = results[j].token_logprobs;
        row["token_ids"] = results[j].token_ids;
      }
      lines.push_back(row.dump());
    }
    progress->advance(requests.size());
  }
  progress.reset();
  write_lines_atomic(vm["output"].as<std::string>(), lines);
  return finished_status("score", stats, failed);
}

int train_dpo_command(const GlobalOptions& globals, const std::vector<std::string>& args) {
  po::options_description options("Options");
  add_model_options(options);
  options.add_options()("pairs", po::value<std::string>()->value_name("FILE"),
                        "JSONL pairs {\"prompt\" | \"messages\", \"chosen\", \"rejected\"}.")(
      "out", po::value<std::string>()->value_name("DIR"), "Where the trained model is written.")(
      "optimizer", po::value<std::string>()->default_value("dpo"),
      "Optimizer plugin (dpo, rpo, ...); its options via --set optimizer.KEY=VALUE.")(
      "metrics", po::value<std::string>()->default_value(""), "Write per-step metrics JSONL here.");
  add_adapter_out_option(options);
  po::variables_map vm;
  if (!parse_command_args("train-dpo", "--model DIR --pairs FILE --out DIR [options]", options, {},
                          args, vm))
    return 0;
  const std::string pairs_path = required(vm, "train-dpo", "pairs");
  const fs::path out = required(vm, "train-dpo", "out");
  ModelSession s;
  open_session(s, "train-dpo", globals, vm, vm["optimizer"].as<std::string>());
  JsonlStats stats;
  std::vector<PairRow> rows = read_pair_rows(*open_input(pairs_path), pairs_path, stats);
  log_input("pairs", pairs_path, stats);
  return train("train-dpo", s, to_preference_pairs(std::move(rows)), pairs_path, stats, out,
               adapter_out(vm, out), vm["metrics"].as<std::string>());
}

int sft_command(const GlobalOptions& globals, const std::vector<std::string>& args) {
  po::options_description options("Options");
  add_model_options(options);
  options.add_options()("data", po::value<std::string>()->value_name("FILE"),
                        "JSONL conversations {\"messages\": [...]}; loss on assistant turns only.")(
      "out", po::value<std::string>()->value_name("DIR"), "Where the trained model is written.")(
      "metrics", po::value<std::string>()->default_value(""), "Write per-step metrics JSONL here.");
  add_adapter_out_option(options);
  po::variables_map vm;
  if (!parse_command_args("sft", "--model DIR --data FILE --out DIR [options]", options, {}, args,
                          vm))
    return 0;
  const std::string data = required(vm, "sft", "data");
  const fs::path out = required(vm, "sft", "out");
  ModelSession s;
  open_session(s, "sft", globals, vm, "sft");
  JsonlStats stats;
  std::vector<PairRow> rows = read_sft_rows(*open_input(data), data, stats);
  log_input("sft examples", data, stats);
  // The sft optimizer trains on `chosen` only; `rejected` stays empty.
  return train("sft", s, to_preference_pairs(std::move(rows)), data, stats, out,
               adapter_out(vm, out), vm["metrics"].as<std::string>());
}

}  // namespace mr::core::cli
