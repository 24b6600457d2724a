// The step engine of mr_training (see training_internal.hpp): one loop serves preference and SFT
// training. A Task lists its items (one or two tokenized sequences each) and turns the summed
// log-probs of a micro-batch into that micro-batch's share of the step loss. Everything about
// steps (shuffle, accumulation, clipping, schedule, metrics, LoRA and checkpointing set-up, final
// save) lives here; the resumable state's file format is trainer_state.cpp.
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

namespace detail {

std::string run_fingerprint(const Task& task, const TrainingOptions& o) {
  Fnv f;
  f.str(task.run);
  f.i64(static_cast<std::int64_t>(task.items.size()));
  for (const auto& item : task.items)
    for (const auto* seq : item) {
      f.ids(seq->prompt_ids);
      f.ids(seq->response_ids);
    }
  fingerprint_options(f, o);
  return f.hex();
}

double global_grad_norm(const std::vector<torch::Tensor>& params) {
  // Per-tensor norms on the device in the gradient's dtype, one host sync at the end (no
  // full-size double copies of large gradients).
  std::vector<torch::Tensor> norms;
  for (const auto& p : params)
    if (p.grad().defined()) norms.push_back(p.grad().detach().norm().to(torch::kFloat64));
  if (norms.empty()) return 0.0;
  return torch::stack(norms).norm().item<double>();
}

/// Undoes the training-only model set-up when training leaves early (an error, an interrupt):
/// the adapter is detached unmerged and checkpointing switched off, so the model is the one the
/// caller passed in. Training that completes clears the flags once it has merged the adapter.
class ModelSetupOnExit {
 public:
  explicit ModelSetupOnExit(TrainableModel& model) : model_(model) {}
  ModelSetupOnExit(const ModelSetupOnExit&) = delete;
  ModelSetupOnExit& operator=(const ModelSetupOnExit&) = delete;
  ~ModelSetupOnExit() {
    try {
      if (checkpointing) model_.set_gradient_checkpointing(false);
      if (lora) model_.remove_lora();
    } catch (...) {  // never throw from a destructor
    }
  }
  bool lora = false;
  bool checkpointing = false;

 private:
  TrainableModel& model_;
};

/// Puts the model back in eval mode however training ends (return or exception).
class EvalModeOnExit {
 public:
  explicit EvalModeOnExit(TrainableModel& model) : model_(model) {}
  EvalModeOnExit(const EvalModeOnExit&) = delete;
  EvalModeOnExit& operator=(const EvalModeOnExit&) = delete;
  ~EvalModeOnExit() {
    try {
      model_.set_training(false);
    } catch (...) {  // never throw from a destructor
    }
  }

 private:
  TrainableModel& model_;
};

namespace {

/// Bytes of the per-step agreement message (the ranks are one build on one kind of machine).
class ByteWriter {
 public:
  template <class T>
  void put(const T& v) {
    const auto* p = reinterpret_cast<const char*>(&v);
    out.append(p, sizeof v);
  }
  void put_string(const std::string& s) {
    put<std::uint64_t>(s.size());
    out += s;
  }
  std::string out;
};

class ByteReader {
 public:
  explicit ByteReader(const std::string& s) : s_(s) {}
  template <class T>
  T get() {
    MR_CHECK_AS(DistributedError, pos_ + sizeof(T) <= s_.size(),
                "truncated step message from another rank");
    T v;
    std::memcpy(&v, s_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  std::string get_string() {
    const auto n = get<std::uint64_t>();
    MR_CHECK_AS(DistributedError, pos_ + n <= s_.size(),
                "truncated step message from another rank");
    std::string v = s_.substr(pos_, n);
    pos_ += n;
    return v;
  }

 private:
  const std::string& s_;
  std::size_t pos_ = 0;
};

}  // namespace

StepTotals agree_on_step(Collective& ranks,
                         const std::vector<MicroOutcome>& mine,
                         const GradientReducer::Result& summed,
                         bool stop_here) {
  ByteWriter w;
  w.put<std::uint8_t>(stop_here ? 1 : 0);
  w.put<std::uint8_t>(summed.hooks_fired_twice ? 1 : 0);
  w.put<std::uint64_t>(summed.got_gradient.size());
  for (bool g : summed.got_gradient) w.put<std::uint8_t>(g ? 1 : 0);
  w.put<std::uint64_t>(mine.size());
  for (const auto& o : mine) {
    w.put<std::uint64_t>(o.index);
    w.put<double>(o.loss);
    w.put<std::int64_t>(o.tokens);
    w.put<std::uint64_t>(o.sums.size());
    for (const auto& [key, v] : o.sums) {
      w.put_string(key);
      w.put<double>(v);
    }
  }
  StepTotals totals;
  totals.got_gradient.assign(summed.got_gradient.size(), false);
  bool twice = false;
  for (const std::string& bytes : ranks.all_gather_bytes(w.out)) {
    ByteReader r(bytes);
    totals.stop = (r.get<std::uint8_t>() != 0) || totals.stop;
    twice = (r.get<std::uint8_t>() != 0) || twice;
    const auto n = r.get<std::uint64_t>();
    MR_CHECK_AS(DistributedError, n == totals.got_gradient.size(),
                "the ranks train different numbers of parameters (", n, " vs ",
                totals.got_gradient.size(), ")");
    for (std::size_t i = 0; i < n; ++i)
      if (r.get<std::uint8_t>() != 0) totals.got_gradient[i] = true;
    const auto count = r.get<std::uint64_t>();
    for (std::uint64_t c = 0; c < count; ++c) {
      MicroOutcome o;
      o.index = r.get<std::uint64_t>();
      o.loss = r.get<double>();
      o.tokens = r.get<std::int64_t>();
      const auto keys = r.get<std::uint64_t>();
      for (std::uint64_t k = 0; k < keys; ++k) {
        std::string key = r.get_string();
        o.sums[key] = r.get<double>();
      }
      totals.outcomes.push_back(std::move(o));
    }
  }
  MR_CHECK_AS(PluginError, !twice,
              "a parameter's gradient hook fired twice in one backward pass (the model reuses a "
              "parameter across separate backward passes), so data-parallel training cannot sum "
              "its gradients; train with one rank");
  std::sort(totals.outcomes.begin(), totals.outcomes.end(),
            [](const MicroOutcome& a, const MicroOutcome& b) { return a.index < b.index; });
  return totals;
}

void check_replicas(Collective& ranks,
                    const std::vector<torch::Tensor>& params,
                    std::int64_t step) {
  Fnv f;
  for (const auto& p : params) {
    const torch::Tensor c = p.detach().to(torch::kCPU).contiguous();
    f.bytes(c.data_ptr(), static_cast<std::size_t>(c.numel()) * c.element_size());
  }
  const std::vector<std::string> all = ranks.all_gather_bytes(f.hex());
  for (std::size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0])
      throw DistributedError("after step " + std::to_string(step) +
                             " the trained weights differ between ranks (checksum " + all[0] +
                             " on rank 0, " + all[r] + " on rank " + std::to_string(r) +
                             "): the replicas diverged");
}

void log(HostContext* host, LogLevel level, const std::string& message) {
  if (host != nullptr) host->logger().log(level, message);
}

TrainingSummary run_training(TrainableModel& model,
                             Task& task,
                             const TrainingOptions& options,
                             const TrainingJob& job,
                             HostContext* host) {
  validate(options);
  if (options.threads > 0) torch::set_num_threads(options.threads);
  // Data-parallel: the micro-batches of every step are dealt to the ranks round-robin, the
  // gradients summed (GradientReducer), and every rank takes the same optimizer step. Only rank
  // 0 writes files and logs.
  Collective* const ranks =
      job.collective != nullptr && job.collective->world_size() > 1 ? job.collective : nullptr;
  const int rank = ranks != nullptr ? ranks->rank() : 0;
  const int world = ranks != nullptr ? ranks->world_size() : 1;
  const bool writer = rank == 0;
  if (!writer) host = nullptr;
  ModelSetupOnExit setup(model);
  if (options.lora) {
    // From here on parameters() are the adapter's: only they train, get moments and are saved
    // in the resumable state; the frozen base needs neither gradients nor optimizer state.
    if (!model.supports_lora())
      throw ConfigError("lora = true, but this model backend does not support LoRA adapters");
    LoraSettings lora;
    lora.r = options.lora_r;
    lora.alpha = options.lora_alpha;
    lora.dropout = options.lora_dropout;
    lora.target_modules = options.lora_target_modules;
    lora.seed = derive_seed(options.seed, 0x6c6f7261ULL);
    model.add_lora(lora);
    setup.lora = true;
  }
  if (options.gradient_checkpointing) {
    setup.checkpointing = model.set_gradient_checkpointing(true);
    if (!setup.checkpointing)
      log(host, LogLevel::Warn,
          "gradient_checkpointing = true, but this model backend does not support it; training "
          "without it");
  }
  std::vector<torch::Tensor> params = model.parameters();
  MR_CHECK_AS(PluginError, !params.empty(), "the trainable model has no parameters");
  const torch::Device device = params.front().device();
  const bool share_prompt = options.share_prompt && model.supports_shared_prefix();
  // Mixed precision: with half-precision parameters AdamW updates fp32 master copies (and keeps
  // fp32 moments); the model's parameters only ever receive the rounded result.
  bool half = false, fp16 = false;
  for (const auto& p : params) {
    half = half || p.scalar_type() == torch::kBFloat16 || p.scalar_type() == torch::kHalf;
    fp16 = fp16 || p.scalar_type() == torch::kHalf;
  }
  const bool mixed = half && options.master_weights;
  if (half && !options.master_weights)
    log(host, LogLevel::Warn,
        "master_weights = false with half-precision parameters: AdamW updates them in place, and "
        "updates much smaller than a weight round away (the model may barely change)");
  std::vector<torch::Tensor> masters;
  if (mixed)
    for (const auto& p : params) masters.push_back(p.detach().to(torch::kFloat32).clone());
  std::vector<torch::Tensor>& updated = mixed ? masters : params;
  LossScale loss_scale;
  if (mixed && fp16) loss_scale.scale = 65536.0;
  std::int64_t skipped_steps = 0;
  auto clear_grads = [&] {
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
    for (auto& p : masters) p.mutable_grad() = torch::Tensor();
  };

  const auto n = static_cast<std::int64_t>(task.items.size());
  const std::int64_t per_epoch = steps_per_epoch(n, options);
  const std::int64_t total = per_epoch * options.epochs;
  const auto batch = static_cast<std::int64_t>(options.batch_size);
  const auto micro = std::min<std::int64_t>(options.micro_batch_size, batch);
  const std::string fingerprint = run_fingerprint(task, options);

  torch::optim::AdamW optimizer(updated,
                                torch::optim::AdamWOptions(options.learning_rate)
                                    .betas(std::make_tuple(options.adam_beta1, options.adam_beta2))
                                    .eps(options.adam_eps)
                                    .weight_decay(options.weight_decay));

  EpochSums epoch_sums;
  std::int64_t start = 0;
  const bool resumable = !job.state_dir.empty();
  if (resumable && fs::exists(job.state_dir / kTrainerStateFile)) {
    start = load_state(job.state_dir, task, fingerprint, total, updated, optimizer, epoch_sums,
                       loss_scale);
    if (mixed) {
      torch::NoGradGuard no_grad;
      for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(masters[i]);
    }
    log(host, LogLevel::Info,
        "resuming from step " + std::to_string(start) + "/" + std::to_string(total) + " (" +
            (job.state_dir / kTrainerStateFile).string() + ")");
  } else if (task.before_training) {
    task.before_training();
  }
  std::unique_ptr<GradientReducer> reducer;
  if (ranks != nullptr) reducer = std::make_unique<GradientReducer>(params, *ranks);

  log(host, LogLevel::Info,
      "training on " + std::to_string(n) + " " + task.noun + ": " + std::to_string(total) +
          " steps (" + std::to_string(options.epochs) + " epoch(s) x " + std::to_string(per_epoch) +
          "), batch " + std::to_string(batch) + " in micro-batches of " + std::to_string(micro) +
          ", peak lr " + num(options.learning_rate) + " (" + lr_schedule_name(options.lr_schedule) +
          ", " + std::to_string(warmup_steps(options, total)) + " warm-up steps)" +
          (mixed ? std::string(", fp32 master weights") + (fp16 ? " and dynamic loss scaling" : "")
                 : std::string()) +
          (options.lora ? ", LoRA r=" + std::to_string(options.lora_r) +
                              " alpha=" + num(options.lora_alpha) + " on " +
                              std::to_string(params.size() / 2) + " layers"
                        : std::string()) +
          (setup.checkpointing ? ", gradient checkpointing" : ""));

  std::unique_ptr<Progress> progress;
  if (host != nullptr) {
    progress = host->progress("train", static_cast<std::uint64_t>(total));
    if (start > 0) progress->advance(static_cast<std::uint64_t>(start));
  }
  const std::int64_t log_every = std::max<std::int64_t>(1, total / 20);

  EvalModeOnExit eval_mode_on_exit(model);
  // Training mode (dropout on) for the model's dropout or the adapter's.
  const bool stochastic = options.dropout > 0.0 || (options.lora && options.lora_dropout > 0.0);
  model.set_training(stochastic);
  std::int64_t order_epoch = -1;
  std::vector<std::size_t> order;
  for (std::int64_t step = start; step < total; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::int64_t epoch = step / per_epoch;
    const std::int64_t in_epoch = step % per_epoch;
    if (epoch != order_epoch) {
      order = epoch_order(task.items.size(), options.seed, epoch);
      order_epoch = epoch;
    }
    if (in_epoch == 0) epoch_sums = {};

    const std::int64_t first = in_epoch * batch;
    const std::int64_t last = std::min(first + batch, n);
    std::vector<std::size_t> step_items(order.begin() + first, order.begin() + last);
    auto item_length = [&task](std::size_t i) {
      std::int64_t len = 0;
      for (const auto* seq : task.items[i]) len += total_length(*seq);
      return len;
    };
    if (options.length_balanced)
      std::stable_sort(step_items.begin(), step_items.end(), [&](std::size_t a, std::size_t b) {
        return item_length(a) > item_length(b);
      });
    StepInfo info;
    info.items = last - first;
    for (std::size_t i : step_items)
      for (const auto* seq : task.items[i]) info.response_tokens += scored_tokens(*seq);

    // Dropout masks per (step, micro-batch), so a resumed run, and a micro-batch on any rank,
    // draws the same masks as an uninterrupted one-process run.
    const std::uint64_t step_seed =
        derive_seed(options.seed, 0x9e3779b9ULL + static_cast<std::uint64_t>(step));
    clear_grads();
    double step_loss = 0.0;
    std::int64_t step_tokens = 0;
    std::map<std::string, double> sums;
    // This rank's micro-batches (all of them in one process), and each one's loss and sums for
    // the in-order totals across ranks.
    const std::size_t micro_count =
        (step_items.size() + static_cast<std::size_t>(micro) - 1) / static_cast<std::size_t>(micro);
    std::size_t last_mine = micro_count;
    for (std::size_t k = 0; k < micro_count; ++k)
      if (static_cast<int>(k % static_cast<std::size_t>(world)) == rank) last_mine = k;
    std::vector<MicroOutcome> outcomes;
    for (std::size_t mi = 0; mi < micro_count; ++mi) {
      if (static_cast<int>(mi % static_cast<std::size_t>(world)) != rank) continue;
      const std::size_t m0 = mi * static_cast<std::size_t>(micro);
      const std::vector<std::size_t> mb(step_items.begin() + static_cast<std::ptrdiff_t>(m0),
                                        step_items.begin() + static_cast<std::ptrdiff_t>(std::min(
                                                                 step_items.size(), m0 + micro)));
      if (stochastic) torch::manual_seed(derive_seed(step_seed, mi));
      if (reducer && mi == last_mine) reducer->arm();
      std::vector<std::vector<const TokenizedExample*>> groups;
      for (std::size_t i : mb) groups.push_back(task.items[i]);
      const SequenceBatch sb = collate_groups(groups, device, share_prompt);
      const torch::Tensor logps = sequence_logps(model, sb);
      MicroResult r = task.micro_loss(mb, logps, sb.response_tokens, info);
      if (loss_scale.scale != 1.0)
        (r.loss * loss_scale.scale).backward();
      else
        r.loss.backward();
      outcomes.push_back({mi, r.loss.item<double>(), sb.real_tokens, std::move(r.sums)});
    }
    bool stop_agreed = false;
    if (reducer) {
      GradientReducer::Result summed = reducer->finish();
      const StepTotals totals = agree_on_step(
          *ranks, outcomes, summed, job.stop_requested && step + 1 < total && job.stop_requested());
      outcomes = totals.outcomes;
      stop_agreed = totals.stop;
      torch::NoGradGuard no_grad;
      for (std::size_t i = 0; i < params.size(); ++i) {
        if (!totals.got_gradient[i]) continue;  // As in one process: no gradient, no update.
        torch::Tensor g = summed.gradients[i];
        if (mixed) {
          masters[i].mutable_grad() = loss_scale.scale != 1.0 ? g.div(loss_scale.scale) : g.clone();
        } else {
          params[i].mutable_grad() = g.to(params[i].scalar_type(), /*non_blocking=*/false,
                                          /*copy=*/true);
        }
      }
    }
    for (const auto& o : outcomes) {  // In micro-batch order, as one process sums them.
      step_loss += o.loss;
      step_tokens += o.tokens;
      for (const auto& [key, v] : o.sums) sums[key] += v;
    }

    if (mixed && !reducer) {
      // fp32 gradients of the masters, unscaled.
      torch::NoGradGuard no_grad;
      for (std::size_t i = 0; i < params.size(); ++i)
        if (params[i].grad().defined()) {
          masters[i].mutable_grad() = params[i].grad().detach().to(torch::kFloat32);
          if (loss_scale.scale != 1.0) masters[i].mutable_grad().div_(loss_scale.scale);
        }
    }
    const double grad_norm = global_grad_norm(updated);
    const double lr = learning_rate_at(options, step, total);
    const bool finite = std::isfinite(grad_norm) && std::isfinite(step_loss);
    if (finite) {
      if (options.max_grad_norm > 0.0 && grad_norm > options.max_grad_norm) {
        torch::NoGradGuard no_grad;
        const double scale = options.max_grad_norm / (grad_norm + 1e-6);
        for (auto& p : updated)
          if (p.grad().defined()) p.grad().mul_(scale);
      }
      for (auto& group : optimizer.param_groups())
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      optimizer.step();
      if (mixed) {
        torch::NoGradGuard no_grad;
        for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(masters[i]);
      }
      if (loss_scale.scale != 1.0 && ++loss_scale.good_steps >= LossScale::kGrowthInterval) {
        loss_scale.scale *= 2.0;
        loss_scale.good_steps = 0;
      }
    } else if (loss_scale.scale != 1.0) {
      // fp16 overflow: expected now and then while the scale finds its level.
      ++skipped_steps;
      loss_scale.scale = std::max(1.0, loss_scale.scale / 2.0);
      loss_scale.good_steps = 0;
      log(host, LogLevel::Info,
          "step " + std::to_string(step + 1) +
              ": fp16 gradient overflow; update skipped, loss "
              "scale -> " +
              num(loss_scale.scale));
    } else {
      ++skipped_steps;
      log(host, LogLevel::Warn,
          "step " + std::to_string(step + 1) + ": non-finite loss or gradient (loss " +
              num(step_loss) + ", grad norm " + num(grad_norm) +
              "); update skipped. Lower learning_rate if this repeats");
    }
    clear_grads();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    StepMetrics metrics;
    metrics.step = step + 1;
    metrics.values["loss"] = step_loss;
    for (const auto& [key, v] : sums) metrics.values[key] = v / static_cast<double>(info.items);
    metrics.values["grad_norm"] = grad_norm;
    metrics.values["lr"] = lr;
    metrics.values["tokens_per_s"] = seconds > 0 ? static_cast<double>(step_tokens) / seconds : 0;
    metrics.values["epoch"] = static_cast<double>(step + 1) / static_cast<double>(per_epoch);
    if (!finite) metrics.values["skipped"] = 1.0;
    ++epoch_sums.steps;
    for (const auto& [key, v] : metrics.values)
      if (key != "epoch" && key != "tokens_per_s") epoch_sums.sums[key] += v;

    const std::int64_t done = step + 1;
    const bool epoch_end = done % per_epoch == 0;
    // Report before saving: a crash in between repeats this step on resume (the host keeps the
    // last row per step) instead of losing its metrics.
    if (job.on_step) job.on_step(metrics);
    const bool stop =
        reducer ? stop_agreed : done < total && job.stop_requested && job.stop_requested();
    if (ranks != nullptr && (done == total || (job.check_replicas_every_steps > 0 &&
                                               done % job.check_replicas_every_steps == 0)))
      check_replicas(*ranks, params, done);
    if (writer && resumable &&
        (epoch_end || stop ||
         (options.save_every_steps > 0 && done % options.save_every_steps == 0)))
      save_state(job.state_dir, task, fingerprint, done, total, updated, optimizer, epoch_sums,
                 loss_scale);
    if (stop)
      throw Interrupted("training stopped at step " + std::to_string(done) + "/" +
                        std::to_string(total) +
                        (resumable ? " (state saved in '" + job.state_dir.string() + "')" : ""));
    if (progress) progress->advance(1, static_cast<std::uint64_t>(step_tokens));
    if (host != nullptr && (done % log_every == 0 || done == total) &&
        host->logger().enabled(LogLevel::Info)) {
      std::ostringstream line;
      line << "step " << done << "/" << total;
      for (const char* key : {"loss", "margin", "accuracy", "grad_norm", "lr"})
        if (auto it = metrics.values.find(key); it != metrics.values.end())
          line << " " << key << "=" << short_num(it->second);
      host->logger().info(line.str());
    }
  }
  model.set_training(false);
  if (setup.checkpointing) {
    model.set_gradient_checkpointing(false);
    setup.checkpointing = false;
  }
  if (options.lora) {
    if (writer && !job.adapter_dir.empty()) {
      model.save_lora(job.adapter_dir);
      log(host, LogLevel::Info, "saved the LoRA adapter to '" + job.adapter_dir.string() + "'");
    }
    model.merge_lora();  // The caller gets the trained model, as without LoRA.
    setup.lora = false;
  }
  if (writer && !job.output_dir.empty()) {
    model.save(job.output_dir);
    log(host, LogLevel::Info, "saved the trained model to '" + job.output_dir.string() + "'");
  }
  if (skipped_steps > 0)
    log(host, LogLevel::Warn,
        std::to_string(skipped_steps) + " of " + std::to_string(total - start) +
            " steps skipped for a non-finite loss or gradient");
  TrainingSummary summary;
  summary.steps = total;
  for (const auto& [key, sum] : epoch_sums.sums)
    summary.metrics[key] = epoch_sums.steps > 0 ? sum / static_cast<double>(epoch_sums.steps) : 0;
  return summary;
}

std::string describe_drops(const DropCounts& dropped) {
  std::string s;
  for (const auto& [reason, count] : dropped)
    s += (s.empty() ? "" : ", ") + std::to_string(count) + " " + reason;
  return s;
}

/// Counts and warns about truncated/dropped examples, so no input disappears silently.
void report_fit(HostContext* host,
                const std::string& noun,
                std::size_t total,
                std::int64_t truncated,
                const DropCounts& dropped,
                std::int64_t max_length) {
  if (truncated > 0)
    log(host, LogLevel::Warn,
        std::to_string(truncated) + " of " + std::to_string(total) + " " + noun +
            " have a response cut to max_length " + std::to_string(max_length) + " tokens");
  if (!dropped.empty())
    log(host, LogLevel::Warn,
        "dropped " + describe_drops(dropped) + " " + noun + " (max_length " +
            std::to_string(max_length) + ")");
}

}  // namespace detail

}  // namespace mr::training
