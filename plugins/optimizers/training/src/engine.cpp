// The step engine of mr_training (see training_internal.hpp): one loop serves preference and SFT
// training. A Task lists its items (one or two tokenized sequences each) and turns the summed
// log-probs of a micro-batch into that micro-batch's share of the step loss. Everything about
// steps (shuffle, accumulation, clipping, schedule, metrics, resumable state, final save) lives
// here.
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

/// fp16's dynamic loss scale (GradScaler's rule: halve on overflow, double after 2000 good
/// steps); 1 and unused otherwise. Saved with the state so a resumed run scales identically.
struct LossScale {
  static constexpr std::int64_t kGrowthInterval = 2000;
  double scale = 1.0;
  std::int64_t good_steps = 0;
};

/// Running metric sums of the current epoch (for the summary).
struct EpochSums {
  std::int64_t steps = 0;
  std::map<std::string, double> sums;
};

std::string read_string(torch::serialize::InputArchive& ar,
                        const std::string& key,
                        const fs::path& path) {
  c10::IValue v;
  if (!ar.try_read(key, v) || !v.isString())
    throw DataError("'" + path.string() + "' is not a metareward trainer state (no '" + key +
                    "' entry)");
  return v.toStringRef();
}

std::int64_t read_int(torch::serialize::InputArchive& ar,
                      const std::string& key,
                      const fs::path& path) {
  c10::IValue v;
  if (!ar.try_read(key, v) || !v.isInt())
    throw DataError("'" + path.string() + "' is not a metareward trainer state (no '" + key +
                    "' entry)");
  return v.toInt();
}

void load_archive(torch::serialize::InputArchive& ar,
                  const fs::path& path,
                  c10::optional<torch::Device> device) {
  try {
    ar.load_from(path.string(), device);
  } catch (const std::exception& e) {
    throw DataError("cannot read trainer state '" + path.string() + "': " + first_line(e));
  }
}

TrainerStateInfo read_header(torch::serialize::InputArchive& ar, const fs::path& path) {
  if (read_string(ar, "format", path) != kStateFormat)
    throw DataError("'" + path.string() + "' is not a metareward trainer state");
  TrainerStateInfo info;
  info.format_version = read_int(ar, "format_version", path);
  if (info.format_version != kTrainerStateVersion)
    throw DataError("trainer state '" + path.string() + "' has format version " +
                    std::to_string(info.format_version) + ", this build reads version " +
                    std::to_string(kTrainerStateVersion) + "; delete '" +
                    path.parent_path().string() + "' to start the training over");
  info.run = read_string(ar, "run", path);
  info.fingerprint = read_string(ar, "fingerprint", path);
  info.step = read_int(ar, "step", path);
  info.total_steps = read_int(ar, "total_steps", path);
  return info;
}

void save_state(const fs::path& state_dir,
                const Task& task,
                const std::string& fingerprint,
                std::int64_t step,
                std::int64_t total_steps,
                const std::vector<torch::Tensor>& params,
                torch::optim::Optimizer& optimizer,
                const EpochSums& epoch,
                const LossScale& loss_scale) {
  std::error_code ec;
  fs::create_directories(state_dir, ec);
  if (ec)
    throw DataError("cannot create trainer state directory '" + state_dir.string() +
                    "': " + ec.message());
  torch::serialize::OutputArchive ar;
  ar.write("format", c10::IValue(std::string(kStateFormat)));
  ar.write("format_version", c10::IValue(kTrainerStateVersion));
  ar.write("run", c10::IValue(task.run));
  ar.write("fingerprint", c10::IValue(fingerprint));
  ar.write("step", c10::IValue(step));
  ar.write("total_steps", c10::IValue(total_steps));

  torch::serialize::OutputArchive param_ar(ar.compilation_unit());
  param_ar.write("count", c10::IValue(static_cast<std::int64_t>(params.size())));
  for (std::size_t i = 0; i < params.size(); ++i)
    param_ar.write(std::to_string(i), params[i].detach(), /*is_buffer=*/true);
  ar.write("parameters", param_ar);

  torch::serialize::OutputArchive opt_ar(ar.compilation_unit());
  optimizer.save(opt_ar);
  ar.write("optimizer", opt_ar);

  c10::List<std::string> names;
  std::vector<double> sums;
  for (const auto& [name, sum] : epoch.sums) {
    names.push_back(name);
    sums.push_back(sum);
  }
  ar.write("epoch_steps", c10::IValue(epoch.steps));
  ar.write("loss_scale", c10::IValue(loss_scale.scale));
  ar.write("loss_scale_good_steps", c10::IValue(loss_scale.good_steps));
  ar.write("epoch_metric_names", c10::IValue(names));
  ar.write("epoch_metric_sums", torch::tensor(sums, torch::kFloat64), /*is_buffer=*/true);

  if (task.save_extra) {
    torch::serialize::OutputArchive extra_ar(ar.compilation_unit());
    for (const auto& [key, t] : task.save_extra()) extra_ar.write(key, t, /*is_buffer=*/true);
    ar.write("data", extra_ar);
  }

  // Temp file + rename: a crash mid-write leaves the previous state intact.
  const fs::path path = state_dir / kTrainerStateFile;
  const fs::path tmp = state_dir / (std::string(kTrainerStateFile) + ".tmp");
  try {
    ar.save_to(tmp.string());
  } catch (const std::exception& e) {
    throw DataError("cannot write trainer state '" + tmp.string() + "': " + first_line(e));
  }
  fs::rename(tmp, path, ec);
  if (ec)
    throw DataError("cannot rename '" + tmp.string() + "' to '" + path.string() +
                    "': " + ec.message());
}

/// Restores a state written by save_state() for this same run; returns the completed steps.
/// Validates everything before touching the model so a refused state leaves it unchanged.
std::int64_t load_state(const fs::path& state_dir,
                        Task& task,
                        const std::string& fingerprint,
                        std::int64_t total_steps,
                        const std::vector<torch::Tensor>& params,
                        torch::optim::Optimizer& optimizer,
                        EpochSums& epoch,
                        LossScale& loss_scale) {
  const fs::path path = state_dir / kTrainerStateFile;
  torch::serialize::InputArchive ar;
  load_archive(ar, path, params.front().device());
  const TrainerStateInfo info = read_header(ar, path);
  const std::string start_over = "; delete '" + state_dir.string() + "' to start it over";
  if (info.run != task.run || info.fingerprint != fingerprint)
    throw DataError("trainer state '" + path.string() + "' belongs to another training run (" +
                    info.run + ", fingerprint " + info.fingerprint + "; this run: " + task.run +
                    ", fingerprint " + fingerprint + ": the data or options differ)" + start_over);
  if (info.total_steps != total_steps || info.step < 0 || info.step > total_steps)
    throw DataError("trainer state '" + path.string() + "' is at step " +
                    std::to_string(info.step) + " of " + std::to_string(info.total_steps) +
                    ", this run has " + std::to_string(total_steps) + " steps" + start_over);

  torch::serialize::InputArchive param_ar;
  if (!ar.try_read("parameters", param_ar))
    throw DataError("trainer state '" + path.string() + "' has no parameters" + start_over);
  const std::int64_t count = read_int(param_ar, "count", path);
  if (count != static_cast<std::int64_t>(params.size()))
    throw DataError("trainer state '" + path.string() + "' holds " + std::to_string(count) +
                    " parameter tensors, the model has " + std::to_string(params.size()) +
                    start_over);
  std::vector<torch::Tensor> saved(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (!param_ar.try_read(std::to_string(i), saved[i], /*is_buffer=*/true))
      throw DataError("trainer state '" + path.string() + "' lacks parameter " + std::to_string(i) +
                      start_over);
    if (saved[i].sizes() != params[i].sizes())
      throw DataError("trainer state '" + path.string() + "': parameter " + std::to_string(i) +
                      " has shape " + shape_text(saved[i].sizes()) + ", the model's has shape " +
                      shape_text(params[i].sizes()) + start_over);
  }
  std::map<std::string, torch::Tensor> extra;
  if (!task.extra_keys.empty()) {
    torch::serialize::InputArchive extra_ar;
    if (!ar.try_read("data", extra_ar))
      throw DataError("trainer state '" + path.string() + "' lacks its data entry" + start_over);
    for (const auto& key : task.extra_keys) {
      torch::Tensor t;
      if (!extra_ar.try_read(key, t, /*is_buffer=*/true) ||
          t.numel() != static_cast<std::int64_t>(task.items.size()))
        throw DataError("trainer state '" + path.string() + "' lacks or has a malformed '" + key +
                        "'" + start_over);
      extra[key] = t.cpu();
    }
  }
  c10::IValue names;
  torch::Tensor sums;
  if (!ar.try_read("epoch_metric_names", names) || !names.isList() ||
      !ar.try_read("epoch_metric_sums", sums, /*is_buffer=*/true) ||
      sums.numel() != static_cast<std::int64_t>(names.toListRef().size()))
    throw DataError("trainer state '" + path.string() + "' lacks its epoch metrics" + start_over);

  torch::serialize::InputArchive opt_ar;
  if (!ar.try_read("optimizer", opt_ar))
    throw DataError("trainer state '" + path.string() + "' lacks the optimizer state" + start_over);
  try {
    optimizer.load(opt_ar);
  } catch (const std::exception& e) {
    throw DataError("trainer state '" + path.string() + "': bad optimizer state: " + first_line(e) +
                    start_over);
  }
  {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(saved[i]);
  }
  epoch.steps = read_int(ar, "epoch_steps", path);
  c10::IValue scale;
  if (ar.try_read("loss_scale", scale) && scale.isDouble()) loss_scale.scale = scale.toDouble();
  c10::IValue good;
  if (ar.try_read("loss_scale_good_steps", good) && good.isInt())
    loss_scale.good_steps = good.toInt();
  epoch.sums.clear();
  const auto sums_cpu = sums.to(torch::kCPU, torch::kFloat64).contiguous();
  const auto& list = names.toListRef();
  for (std::size_t i = 0; i < list.size(); ++i)
    epoch.sums[list[i].toStringRef()] = sums_cpu.data_ptr<double>()[i];
  if (task.load_extra) task.load_extra(extra);
  return info.step;
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
  std::vector<torch::Tensor> params = model.parameters();
  MR_CHECK_AS(PluginError, !params.empty(), "the trainable model has no parameters");
  const torch::Device device = params.front().device();
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

  log(host, LogLevel::Info,
      "training on " + std::to_string(n) + " " + task.noun + ": " + std::to_string(total) +
          " steps (" + std::to_string(options.epochs) + " epoch(s) x " + std::to_string(per_epoch) +
          "), batch " + std::to_string(batch) + " in micro-batches of " + std::to_string(micro) +
          ", peak lr " + num(options.learning_rate) + " (" + lr_schedule_name(options.lr_schedule) +
          ", " + std::to_string(warmup_steps(options, total)) + " warm-up steps)" +
          (mixed ? std::string(", fp32 master weights") + (fp16 ? " and dynamic loss scaling" : "")
                 : std::string()));

  std::unique_ptr<Progress> progress;
  if (host != nullptr) {
    progress = host->progress("train", static_cast<std::uint64_t>(total));
    if (start > 0) progress->advance(static_cast<std::uint64_t>(start));
  }
  const std::int64_t log_every = std::max<std::int64_t>(1, total / 20);

  EvalModeOnExit eval_mode_on_exit(model);
  model.set_training(options.dropout > 0.0);
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

    // Per-step dropout masks, so a resumed run draws the same masks as an uninterrupted one.
    if (options.dropout > 0.0)
      torch::manual_seed(
          derive_seed(options.seed, 0x9e3779b9ULL + static_cast<std::uint64_t>(step)));
    clear_grads();
    double step_loss = 0.0;
    std::int64_t step_tokens = 0;
    std::map<std::string, double> sums;
    for (std::size_t m0 = 0; m0 < step_items.size(); m0 += static_cast<std::size_t>(micro)) {
      const std::vector<std::size_t> mb(step_items.begin() + static_cast<std::ptrdiff_t>(m0),
                                        step_items.begin() + static_cast<std::ptrdiff_t>(std::min(
                                                                 step_items.size(), m0 + micro)));
      std::vector<const TokenizedExample*> seqs;
      const std::size_t k = task.items[mb.front()].size();
      for (std::size_t s = 0; s < k; ++s)
        for (std::size_t i : mb) seqs.push_back(task.items[i][s]);
      const SequenceBatch sb = collate(seqs, device);
      const torch::Tensor logits = model.forward(sb.input_ids, sb.attention_mask);
      const torch::Tensor logps = sequence_logps(logits, sb);
      MicroResult r = task.micro_loss(mb, logps, sb.response_tokens, info);
      if (loss_scale.scale != 1.0)
        (r.loss * loss_scale.scale).backward();
      else
        r.loss.backward();
      step_loss += r.loss.item<double>();
      step_tokens += sb.real_tokens;
      for (const auto& [key, v] : r.sums) sums[key] += v;
    }

    if (mixed) {
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
    const bool stop = done < total && job.stop_requested && job.stop_requested();
    if (resumable && (epoch_end || stop ||
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

  if (!job.output_dir.empty()) {
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

// ---------------------------------------------------------------------------------------------
// State

TrainerStateInfo read_trainer_state_info(const fs::path& state_dir) {
  const fs::path path = state_dir / kTrainerStateFile;
  if (!fs::exists(path)) throw DataError("no trainer state at '" + path.string() + "'");
  torch::serialize::InputArchive ar;
  load_archive(ar, path, torch::Device(torch::kCPU));
  return read_header(ar, path);
}

}  // namespace mr::training
