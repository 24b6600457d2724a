// The two training tasks over the engine: preference pairs (DPO/RPO with cached reference
// log-probs) and supervised fine-tuning.
#include "training_internal.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <system_error>

#include "metareward/sdk/error.hpp"
namespace mr::training {

using namespace detail;

// ---------------------------------------------------------------------------------------------
// Preference training

PreparedPairs prepare_pairs(const TrainableModel& model,
                            const std::vector<PreferencePair>& pairs,
                            const TrainingOptions& options) {
  PreparedPairs out;
  out.pairs.reserve(pairs.size());
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    PreparedPair p;
    p.source_index = i;
    const bool chosen_ends = pairs[i].chosen_complete || options.close_truncated;
    const bool rejected_ends = pairs[i].rejected_complete || options.close_truncated;
    out.unfinished += (pairs[i].chosen_complete ? 0 : 1) + (pairs[i].rejected_complete ? 0 : 1);
    p.chosen = model.tokenize(pairs[i].prompt, pairs[i].chosen, chosen_ends);
    p.rejected = model.tokenize(pairs[i].prompt, pairs[i].rejected, rejected_ends);
    if (p.chosen.response_ids.empty() || p.rejected.response_ids.empty()) {
      ++out.dropped["empty_response"];
      continue;
    }
    const Fit c = fit_to_length(p.chosen, options.max_length);
    const Fit r = fit_to_length(p.rejected, options.max_length);
    if (c == Fit::Dropped || r == Fit::Dropped) {
      ++out.dropped["prompt_too_long"];
      continue;
    }
    if (c == Fit::Truncated || r == Fit::Truncated) ++out.truncated;
    out.pairs.push_back(std::move(p));
  }
  return out;
}

std::vector<std::pair<double, double>> pair_logps(TrainableModel& model,
                                                  const std::vector<PreparedPair>& pairs,
                                                  int micro_batch_size,
                                                  bool share_prompt) {
  std::vector<std::pair<double, double>> out;
  out.reserve(pairs.size());
  if (pairs.empty()) return out;
  const torch::Device device = model_device(model);
  torch::NoGradGuard no_grad;
  model.set_training(false);
  const std::size_t mb = static_cast<std::size_t>(std::max(micro_batch_size, 1));
  for (std::size_t i0 = 0; i0 < pairs.size(); i0 += mb) {
    const std::size_t i1 = std::min(pairs.size(), i0 + mb);
    std::vector<std::vector<const TokenizedExample*>> groups;
    for (std::size_t i = i0; i < i1; ++i) groups.push_back({&pairs[i].chosen, &pairs[i].rejected});
    const SequenceBatch sb =
        collate_groups(groups, device, share_prompt && model.supports_shared_prefix());
    const torch::Tensor lp =
        sequence_logps(model, sb).to(torch::kCPU, torch::kFloat64).contiguous();
    const double* d = lp.data_ptr<double>();
    const std::size_t m = i1 - i0;
    for (std::size_t j = 0; j < m; ++j) out.emplace_back(d[j], d[m + j]);
  }
  return out;
}

namespace {

/// pair_logps() with the batches dealt to the ranks round-robin (the same batches as in one
/// process, so the same values), gathered on every rank.
std::vector<std::pair<double, double>> sharded_pair_logps(TrainableModel& model,
                                                          const std::vector<PreparedPair>& pairs,
                                                          int micro_batch_size,
                                                          bool share_prompt,
                                                          Collective& ranks) {
  const std::size_t mb = static_cast<std::size_t>(std::max(micro_batch_size, 1));
  const auto world = static_cast<std::size_t>(ranks.world_size());
  const auto rank = static_cast<std::size_t>(ranks.rank());
  std::string mine;  // (first pair index, chosen, rejected) triples of this rank's batches.
  for (std::size_t b = rank; b * mb < pairs.size(); b += world) {
    const std::size_t i0 = b * mb, i1 = std::min(pairs.size(), i0 + mb);
    const std::vector<PreparedPair> batch(pairs.begin() + static_cast<std::ptrdiff_t>(i0),
                                          pairs.begin() + static_cast<std::ptrdiff_t>(i1));
    const auto lps = pair_logps(model, batch, micro_batch_size, share_prompt);
    for (std::size_t j = 0; j < lps.size(); ++j) {
      const std::uint64_t index = i0 + j;
      mine.append(reinterpret_cast<const char*>(&index), sizeof index);
      mine.append(reinterpret_cast<const char*>(&lps[j].first), sizeof(double));
      mine.append(reinterpret_cast<const char*>(&lps[j].second), sizeof(double));
    }
  }
  std::vector<std::pair<double, double>> out(pairs.size());
  std::vector<bool> seen(pairs.size(), false);
  constexpr std::size_t kRecord = sizeof(std::uint64_t) + 2 * sizeof(double);
  for (const std::string& bytes : ranks.all_gather_bytes(mine)) {
    MR_CHECK_AS(DistributedError, bytes.size() % kRecord == 0,
                "malformed reference log-probs from another rank");
    for (std::size_t off = 0; off < bytes.size(); off += kRecord) {
      std::uint64_t index;
      std::memcpy(&index, bytes.data() + off, sizeof index);
      MR_CHECK_AS(DistributedError, index < pairs.size(), "reference log-prob for pair ", index,
                  " of ", pairs.size());
      std::memcpy(&out[index].first, bytes.data() + off + sizeof index, sizeof(double));
      std::memcpy(&out[index].second, bytes.data() + off + sizeof index + sizeof(double),
                  sizeof(double));
      seen[index] = true;
    }
  }
  for (std::size_t i = 0; i < pairs.size(); ++i)
    MR_CHECK_AS(DistributedError, seen[i], "no rank computed the reference log-probs of pair ", i);
  return out;
}

}  // namespace

void compute_reference_logps(TrainableModel& model,
                             PreparedPairs& prepared,
                             const TrainingOptions& options,
                             Collective* ranks) {
  // With an adapter attached, the reference is the base: the adapter is switched off instead of
  // keeping a second copy of the model.
  if (options.lora) model.set_lora_enabled(false);
  std::vector<std::pair<double, double>> lps;
  try {
    lps = ranks != nullptr && ranks->world_size() > 1
              ? sharded_pair_logps(model, prepared.pairs, options.micro_batch_size,
                                   options.share_prompt, *ranks)
              : pair_logps(model, prepared.pairs, options.micro_batch_size, options.share_prompt);
  } catch (...) {
    if (options.lora) model.set_lora_enabled(true);
    throw;
  }
  if (options.lora) model.set_lora_enabled(true);
  for (std::size_t i = 0; i < lps.size(); ++i) {
    prepared.pairs[i].reference_chosen = lps[i].first;
    prepared.pairs[i].reference_rejected = lps[i].second;
  }
  prepared.reference_ready = true;
}

TrainingSummary train_prepared_pairs(TrainableModel& model,
                                     PreparedPairs prepared,
                                     const PreferenceLoss& loss,
                                     const TrainingOptions& options,
                                     const TrainingJob& job,
                                     HostContext* host) {
  MR_CHECK_AS(PluginError, static_cast<bool>(loss.compute), "preference loss '", loss.id,
              "' has no compute function");
  const std::size_t given = prepared.pairs.size() + [&] {
    std::size_t d = 0;
    for (const auto& [reason, count] : prepared.dropped) d += static_cast<std::size_t>(count);
    return d;
  }();
  report_fit(host, "pairs", given, prepared.truncated, prepared.dropped, options.max_length);
  if (prepared.unfinished > 0)
    log(host, LogLevel::Info,
        std::to_string(prepared.unfinished) + " pair responses were cut at max_new_tokens; " +
            (options.close_truncated ? "trained with an end-of-turn token (close_truncated)"
                                     : "trained without an end-of-turn token"));
  if (prepared.pairs.empty())
    throw DataError(given == 0
                        ? std::string("no preference pairs to train on")
                        : "no preference pairs left to train on: all " + std::to_string(given) +
                              " were dropped (" + describe_drops(prepared.dropped) + ")");

  Task task;
  task.run = loss.id;
  task.noun = "pairs";
  for (const auto& p : prepared.pairs) task.items.push_back({&p.chosen, &p.rejected});
  if (loss.needs_reference) {
    task.before_training = [&] {
      if (!prepared.reference_ready) {
        log(host, LogLevel::Info,
            "computing reference log-probs of " + std::to_string(prepared.pairs.size()) + " pairs");
        compute_reference_logps(model, prepared, options, job.collective);
      }
    };
    // The reference log-probs travel with the state: a resumed run never needs the initial model.
    task.extra_keys = {"reference_chosen", "reference_rejected"};
    task.save_extra = [&] {
      std::vector<double> c, r;
      for (const auto& p : prepared.pairs) {
        c.push_back(p.reference_chosen);
        r.push_back(p.reference_rejected);
      }
      return std::map<std::string, torch::Tensor>{
          {"reference_chosen", torch::tensor(c, torch::kFloat64)},
          {"reference_rejected", torch::tensor(r, torch::kFloat64)}};
    };
    task.load_extra = [&](const std::map<std::string, torch::Tensor>& extra) {
      const auto c = extra.at("reference_chosen").to(torch::kFloat64).contiguous();
      const auto r = extra.at("reference_rejected").to(torch::kFloat64).contiguous();
      for (std::size_t i = 0; i < prepared.pairs.size(); ++i) {
        prepared.pairs[i].reference_chosen = c.data_ptr<double>()[i];
        prepared.pairs[i].reference_rejected = r.data_ptr<double>()[i];
      }
      prepared.reference_ready = true;
    };
  }
  task.micro_loss = [&](const std::vector<std::size_t>& items, const torch::Tensor& logps,
                        const std::vector<std::int64_t>& tokens, const StepInfo& step) {
    const auto m = static_cast<std::int64_t>(items.size());
    std::vector<double> ref_c, ref_r, tok_c, tok_r;
    for (std::size_t j = 0; j < items.size(); ++j) {
      const auto& p = prepared.pairs[items[j]];
      ref_c.push_back(p.reference_chosen);
      ref_r.push_back(p.reference_rejected);
      tok_c.push_back(static_cast<double>(tokens[j]));
      tok_r.push_back(static_cast<double>(tokens[items.size() + j]));
    }
    auto constant = [&logps](const std::vector<double>& v) {
      return torch::tensor(v, torch::kFloat64).to(logps.device(), logps.scalar_type());
    };
    PairLogps l;
    l.policy_chosen = logps.slice(0, 0, m);
    l.policy_rejected = logps.slice(0, m, 2 * m);
    l.reference_chosen = constant(ref_c);
    l.reference_rejected = constant(ref_r);
    l.chosen_tokens = constant(tok_c);
    l.rejected_tokens = constant(tok_r);
    PairLossResult r = loss.compute(l);
    MR_CHECK_AS(PluginError, r.losses.defined() && r.losses.numel() == m, "preference loss '",
                loss.id, "' returned ", r.losses.defined() ? r.losses.numel() : 0, " losses for ",
                m, " pairs");
    MicroResult out;
    out.loss = r.losses.sum() / static_cast<double>(step.items);
    out.sums["logps/chosen"] = l.policy_chosen.detach().sum().item<double>();
    out.sums["logps/rejected"] = l.policy_rejected.detach().sum().item<double>();
    for (const auto& [key, t] : r.metrics) out.sums[key] = t.detach().sum().item<double>();
    return out;
  };
  TrainingSummary summary = run_training(model, task, options, job, host);
  summary.metrics["pairs"] = static_cast<double>(prepared.pairs.size());
  summary.metrics["pairs_truncated"] = static_cast<double>(prepared.truncated);
  summary.metrics["pairs_dropped"] = static_cast<double>(given - prepared.pairs.size());
  return summary;
}

TrainingSummary train_preference(TrainableModel& model,
                                 const std::vector<PreferencePair>& pairs,
                                 const PreferenceLoss& loss,
                                 const TrainingOptions& options,
                                 const TrainingJob& job,
                                 HostContext* host) {
  validate(options);
  return train_prepared_pairs(model, prepare_pairs(model, pairs, options), loss, options, job,
                              host);
}

// ---------------------------------------------------------------------------------------------
// SFT

TrainingOptions sft_defaults() {
  TrainingOptions o;
  o.learning_rate = 1e-5;
  o.epochs = 3;
  o.batch_size = 16;
  return o;
}

Schema sft_schema() {
  return training_schema(sft_defaults());
}

TrainingSummary train_sft(TrainableModel& model,
                          const std::vector<SftExample>& examples,
                          const TrainingOptions& options,
                          const TrainingJob& job,
                          HostContext* host) {
  validate(options);
  std::vector<TokenizedExample> tokenized;
  tokenized.reserve(examples.size());
  std::int64_t truncated = 0;
  DropCounts dropped;
  for (const auto& ex : examples) {
    TokenizedExample t = model.tokenize(ex.prompt, ex.response, /*response_complete=*/true);
    if (t.response_ids.empty()) {
      ++dropped["empty_response"];
      continue;
    }
    const Fit fit = fit_to_length(t, options.max_length);
    if (fit == Fit::Dropped) {
      ++dropped["prompt_too_long"];
      continue;
    }
    if (fit == Fit::Truncated) ++truncated;
    tokenized.push_back(std::move(t));
  }
  report_fit(host, "examples", examples.size(), truncated, dropped, options.max_length);
  if (tokenized.empty())
    throw DataError(examples.empty() ? std::string("no SFT examples to train on")
                                     : "no SFT examples left to train on: all " +
                                           std::to_string(examples.size()) + " were dropped (" +
                                           describe_drops(dropped) + ")");
  Task task;
  task.run = "sft";
  task.noun = "examples";
  for (const auto& t : tokenized) task.items.push_back({&t});
  task.micro_loss = [](const std::vector<std::size_t>&, const torch::Tensor& logps,
                       const std::vector<std::int64_t>&, const StepInfo& step) {
    // Token mean over the whole step, so accumulation over micro-batches is exact.
    MicroResult out;
    out.loss = -logps.sum() / static_cast<double>(std::max<std::int64_t>(step.response_tokens, 1));
    return out;
  };
  TrainingSummary summary = run_training(model, task, options, job, host);
  summary.metrics["examples"] = static_cast<double>(tokenized.size());
  summary.metrics["examples_truncated"] = static_cast<double>(truncated);
  summary.metrics["examples_dropped"] = static_cast<double>(examples.size() - tokenized.size());
  return summary;
}

}  // namespace mr::training
