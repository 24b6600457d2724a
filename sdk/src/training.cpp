// The shared training loop of optimizer plugins (see training.hpp).
//
// One engine (run_training) serves preference and SFT training: a Task lists its items (one or
// two tokenized sequences each) and turns the summed log-probs of a micro-batch into that
// micro-batch's share of the step loss. Everything about steps (shuffle, accumulation, clipping,
// schedule, metrics, resumable state, final save) lives in the engine.
#include "metareward/sdk/training.hpp"

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

namespace mr::sdk::training {

namespace fs = std::filesystem;

namespace {

constexpr const char* kStateFormat = "metareward-trainer-state";
constexpr double kPi = 3.14159265358979323846;

/// Shortest round-trip text of a double, for ids and messages.
std::string num(double x) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, res.ptr);
}

/// Short text of a metric for log lines.
std::string short_num(double x) {
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof buf, static_cast<float>(x));
  return std::string(buf, res.ptr);
}

/// FNV-1a 64, for the run fingerprint (stable across platforms and builds).
class Fnv {
 public:
  void bytes(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) {
      h_ ^= p[i];
      h_ *= 1099511628211ULL;
    }
  }
  void i64(std::int64_t v) { bytes(&v, sizeof v); }
  void f64(double v) {
    std::uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    bytes(&bits, sizeof bits);
  }
  void str(const std::string& s) {
    i64(static_cast<std::int64_t>(s.size()));
    bytes(s.data(), s.size());
  }
  void ids(const std::vector<std::int64_t>& v) {
    i64(static_cast<std::int64_t>(v.size()));
    bytes(v.data(), v.size() * sizeof(std::int64_t));
  }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h_));
    return buf;
  }

 private:
  std::uint64_t h_ = 1469598103934665603ULL;
};

std::string shape_text(at::IntArrayRef sizes) {
  std::string s = "[";
  for (std::size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}

/// First line of a libtorch error (its messages carry C++ backtraces).
std::string first_line(const std::exception& e) {
  std::string s = e.what();
  return s.substr(0, s.find('\n'));
}

std::int64_t scored_tokens(const TokenizedExample& ex) {
  const auto r = static_cast<std::int64_t>(ex.response_ids.size());
  return ex.prompt_ids.empty() ? std::max<std::int64_t>(r - 1, 0) : r;
}

std::int64_t total_length(const TokenizedExample& ex) {
  return static_cast<std::int64_t>(ex.prompt_ids.size() + ex.response_ids.size());
}

torch::Device model_device(TrainableModel& model) {
  auto params = model.parameters();
  MR_CHECK_AS(PluginError, !params.empty(), "the trainable model has no parameters");
  return params.front().device();
}

/// Deterministic Fisher–Yates shuffle of 0..n-1 for one epoch.
std::vector<std::size_t> epoch_order(std::size_t n, std::uint64_t seed, std::int64_t epoch) {
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::mt19937_64 rng(derive_seed(seed, static_cast<std::uint64_t>(epoch)));
  for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  return order;
}

// ---------------------------------------------------------------------------------------------
// The engine

struct StepInfo {
  std::int64_t items = 0;            ///< Items (pairs, examples) in the optimizer step.
  std::int64_t response_tokens = 0;  ///< Scored response tokens of all their sequences.
};

struct MicroResult {
  torch::Tensor loss;                  ///< This micro-batch's share of the step loss.
  std::map<std::string, double> sums;  ///< Per-item metrics summed over the micro-batch.
};

struct Task {
  std::string run;   ///< Recorded in the state: the loss id or "sft".
  std::string noun;  ///< "pairs" / "examples", for log lines.
  std::vector<std::vector<const TokenizedExample*>> items;
  std::function<void()> before_training;  ///< Runs unless the run resumes.
  /// `logps`/`tokens` are [k*m] in sequence-major order: sequence s of item i at s*m + i.
  std::function<MicroResult(const std::vector<std::size_t>& items,
                            const torch::Tensor& logps,
                            const std::vector<std::int64_t>& tokens,
                            const StepInfo& step)>
      micro_loss;
  std::function<std::map<std::string, torch::Tensor>()> save_extra;
  std::function<void(const std::map<std::string, torch::Tensor>&)> load_extra;
  std::vector<std::string> extra_keys;
};

std::string run_fingerprint(const Task& task, const TrainingOptions& o) {
  Fnv f;
  f.str(task.run);
  f.i64(static_cast<std::int64_t>(task.items.size()));
  for (const auto& item : task.items)
    for (const auto* seq : item) {
      f.ids(seq->prompt_ids);
      f.ids(seq->response_ids);
    }
  // micro_batch_size, length_balanced, save_every_steps and threads do not change the result.
  f.f64(o.learning_rate);
  f.str(lr_schedule_name(o.lr_schedule));
  f.f64(o.warmup_ratio);
  f.i64(o.warmup_steps);
  f.i64(o.epochs);
  f.i64(o.batch_size);
  f.f64(o.weight_decay);
  f.f64(o.adam_beta1);
  f.f64(o.adam_beta2);
  f.f64(o.adam_eps);
  f.f64(o.max_grad_norm);
  f.i64(o.max_length);
  f.f64(o.dropout);
  f.i64(static_cast<std::int64_t>(o.seed));
  return f.hex();
}

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
                const EpochSums& epoch) {
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
                        EpochSums& epoch) {
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

  const auto n = static_cast<std::int64_t>(task.items.size());
  const std::int64_t per_epoch = steps_per_epoch(n, options);
  const std::int64_t total = per_epoch * options.epochs;
  const auto batch = static_cast<std::int64_t>(options.batch_size);
  const auto micro = std::min<std::int64_t>(options.micro_batch_size, batch);
  const std::string fingerprint = run_fingerprint(task, options);

  torch::optim::AdamW optimizer(params,
                                torch::optim::AdamWOptions(options.learning_rate)
                                    .betas(std::make_tuple(options.adam_beta1, options.adam_beta2))
                                    .eps(options.adam_eps)
                                    .weight_decay(options.weight_decay));

  EpochSums epoch_sums;
  std::int64_t start = 0;
  const bool resumable = !job.state_dir.empty();
  if (resumable && fs::exists(job.state_dir / kTrainerStateFile)) {
    start = load_state(job.state_dir, task, fingerprint, total, params, optimizer, epoch_sums);
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
          ", " + std::to_string(warmup_steps(options, total)) + " warm-up steps)");

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
    optimizer.zero_grad();
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
      r.loss.backward();
      step_loss += r.loss.item<double>();
      step_tokens += sb.real_tokens;
      for (const auto& [key, v] : r.sums) sums[key] += v;
    }

    const double grad_norm = global_grad_norm(params);
    const double lr = learning_rate_at(options, step, total);
    const bool finite = std::isfinite(grad_norm) && std::isfinite(step_loss);
    if (finite) {
      if (options.max_grad_norm > 0.0 && grad_norm > options.max_grad_norm) {
        torch::NoGradGuard no_grad;
        const double scale = options.max_grad_norm / (grad_norm + 1e-6);
        for (auto& p : params)
          if (p.grad().defined()) p.grad().mul_(scale);
      }
      for (auto& group : optimizer.param_groups())
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      optimizer.step();
    } else {
      log(host, LogLevel::Warn,
          "step " + std::to_string(step + 1) + ": non-finite loss or gradient (loss " +
              num(step_loss) + ", grad norm " + num(grad_norm) +
              "); update skipped. Lower learning_rate if this repeats");
    }
    optimizer.zero_grad();
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
      save_state(job.state_dir, task, fingerprint, done, total, params, optimizer, epoch_sums);
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

}  // namespace

// ---------------------------------------------------------------------------------------------
// Options

const char* lr_schedule_name(LrSchedule schedule) {
  switch (schedule) {
    case LrSchedule::Cosine:
      return "cosine";
    case LrSchedule::Linear:
      return "linear";
    case LrSchedule::Constant:
      return "constant";
  }
  return "?";
}

LrSchedule parse_lr_schedule(const std::string& name) {
  for (auto s : {LrSchedule::Cosine, LrSchedule::Linear, LrSchedule::Constant})
    if (name == lr_schedule_name(s)) return s;
  throw ConfigError("unknown lr_schedule '" + name +
                    "' (expected one of: cosine, linear, constant)");
}

Schema training_schema(const TrainingOptions& d) {
  return {
      ParamSpec::float_("learning_rate", d.learning_rate, "Peak AdamW learning rate.")
          .range(0.0, std::nullopt, true)
          .per_iteration_allowed(),
      ParamSpec::string_("lr_schedule", lr_schedule_name(d.lr_schedule),
                         "Decay after the linear warm-up: cosine (to 0), linear (to 0) or "
                         "constant.")
          .one_of({"cosine", "linear", "constant"}),
      ParamSpec::float_("warmup_ratio", d.warmup_ratio,
                        "Fraction of the optimizer steps spent warming the learning rate up "
                        "linearly (rounded up).")
          .range(0.0, 1.0),
      ParamSpec::int_("epochs", d.epochs, "Passes over the training data.")
          .range(1.0, std::nullopt)
          .per_iteration_allowed(),
      ParamSpec::int_("batch_size", d.batch_size,
                      "Examples per optimizer step (global batch, via gradient accumulation).")
          .range(1.0, std::nullopt),
      ParamSpec::int_("micro_batch_size", d.micro_batch_size,
                      "Examples per forward/backward pass (memory knob; capped at batch_size, "
                      "does not change the result).")
          .range(1.0, std::nullopt),
      ParamSpec::float_("weight_decay", d.weight_decay, "AdamW decoupled weight decay.")
          .range(0.0, std::nullopt),
      ParamSpec::float_("adam_beta1", d.adam_beta1, "AdamW first-moment decay.")
          .range(0.0, 1.0, false, true),
      ParamSpec::float_("adam_beta2", d.adam_beta2, "AdamW second-moment decay.")
          .range(0.0, 1.0, false, true),
      ParamSpec::float_("adam_eps", d.adam_eps, "AdamW denominator epsilon.")
          .range(0.0, std::nullopt, true),
      ParamSpec::float_("max_grad_norm", d.max_grad_norm,
                        "Clip the global gradient L2 norm to this; 0 = no clipping.")
          .range(0.0, std::nullopt),
      ParamSpec::int_("max_length", d.max_length,
                      "Prompt + response tokens per sequence; longer responses are cut from the "
                      "right (counted), examples whose prompt leaves no room are dropped.")
          .range(2.0, std::nullopt),
      ParamSpec::float_("dropout", d.dropout,
                        "> 0 trains with the model's dropout on (the rate is the model's own); "
                        "0 trains in eval mode.")
          .range(0.0, 1.0, false, true),
      ParamSpec::int_("save_every_steps", d.save_every_steps,
                      "Write the resumable training state every N steps; 0 = at the end of each "
                      "epoch only.")
          .range(0.0, std::nullopt),
      ParamSpec::bool_("length_balanced", d.length_balanced,
                       "Group examples of similar length into the micro-batches of each step "
                       "(less padding, same result)."),
  };
}

TrainingOptions options_from_config(const Config& c, int iteration) {
  TrainingOptions o;
  if (c.has("learning_rate")) o.learning_rate = c.get_float("learning_rate", iteration);
  if (c.has("lr_schedule")) {
    try {
      o.lr_schedule = parse_lr_schedule(c.get_string("lr_schedule", iteration));
    } catch (const ConfigError& e) {
      c.fail("lr_schedule", e.what());
    }
  }
  if (c.has("warmup_ratio")) o.warmup_ratio = c.get_float("warmup_ratio", iteration);
  if (c.has("epochs")) o.epochs = static_cast<int>(c.get_int("epochs", iteration));
  if (c.has("batch_size")) o.batch_size = static_cast<int>(c.get_int("batch_size", iteration));
  if (c.has("micro_batch_size"))
    o.micro_batch_size = static_cast<int>(c.get_int("micro_batch_size", iteration));
  if (c.has("weight_decay")) o.weight_decay = c.get_float("weight_decay", iteration);
  if (c.has("adam_beta1")) o.adam_beta1 = c.get_float("adam_beta1", iteration);
  if (c.has("adam_beta2")) o.adam_beta2 = c.get_float("adam_beta2", iteration);
  if (c.has("adam_eps")) o.adam_eps = c.get_float("adam_eps", iteration);
  if (c.has("max_grad_norm")) o.max_grad_norm = c.get_float("max_grad_norm", iteration);
  if (c.has("max_length")) o.max_length = c.get_int("max_length", iteration);
  if (c.has("dropout")) o.dropout = c.get_float("dropout", iteration);
  if (c.has("save_every_steps")) o.save_every_steps = c.get_int("save_every_steps", iteration);
  if (c.has("length_balanced")) o.length_balanced = c.get_bool("length_balanced", iteration);
  return o;
}

void validate(const TrainingOptions& o) {
  auto check = [](bool ok, const std::string& what) {
    if (!ok) throw ConfigError("invalid training option: " + what);
  };
  check(o.learning_rate > 0 && std::isfinite(o.learning_rate),
        "learning_rate must be > 0, got " + num(o.learning_rate));
  check(o.warmup_ratio >= 0 && o.warmup_ratio <= 1,
        "warmup_ratio must be in [0, 1], got " + num(o.warmup_ratio));
  check(o.epochs >= 1, "epochs must be >= 1, got " + std::to_string(o.epochs));
  check(o.batch_size >= 1, "batch_size must be >= 1, got " + std::to_string(o.batch_size));
  check(o.micro_batch_size >= 1,
        "micro_batch_size must be >= 1, got " + std::to_string(o.micro_batch_size));
  check(o.weight_decay >= 0, "weight_decay must be >= 0, got " + num(o.weight_decay));
  check(o.adam_beta1 >= 0 && o.adam_beta1 < 1,
        "adam_beta1 must be in [0, 1), got " + num(o.adam_beta1));
  check(o.adam_beta2 >= 0 && o.adam_beta2 < 1,
        "adam_beta2 must be in [0, 1), got " + num(o.adam_beta2));
  check(o.adam_eps > 0, "adam_eps must be > 0, got " + num(o.adam_eps));
  check(o.max_grad_norm >= 0, "max_grad_norm must be >= 0, got " + num(o.max_grad_norm));
  check(o.max_length >= 2, "max_length must be >= 2, got " + std::to_string(o.max_length));
  check(o.dropout >= 0 && o.dropout < 1, "dropout must be in [0, 1), got " + num(o.dropout));
  check(o.save_every_steps >= 0,
        "save_every_steps must be >= 0, got " + std::to_string(o.save_every_steps));
}

// ---------------------------------------------------------------------------------------------
// Schedule

std::int64_t steps_per_epoch(std::int64_t examples, const TrainingOptions& options) {
  const auto b = static_cast<std::int64_t>(std::max(options.batch_size, 1));
  return (examples + b - 1) / b;
}

std::int64_t warmup_steps(const TrainingOptions& options, std::int64_t total_steps) {
  if (options.warmup_steps >= 0) return std::min(options.warmup_steps, total_steps);
  // The epsilon keeps 0.1 * 30 at 3 instead of rounding 3.0000000000000004 up to 4.
  const double w = std::ceil(options.warmup_ratio * static_cast<double>(total_steps) - 1e-9);
  return std::clamp<std::int64_t>(static_cast<std::int64_t>(w), 0, total_steps);
}

double learning_rate_at(const TrainingOptions& options,
                        std::int64_t step,
                        std::int64_t total_steps) {
  const double peak = options.learning_rate;
  const std::int64_t w = warmup_steps(options, total_steps);
  if (step < w) return peak * static_cast<double>(step + 1) / static_cast<double>(w);
  const double span = static_cast<double>(std::max<std::int64_t>(total_steps - w, 1));
  const double p = std::clamp(static_cast<double>(step - w) / span, 0.0, 1.0);
  switch (options.lr_schedule) {
    case LrSchedule::Cosine:
      return peak * 0.5 * (1.0 + std::cos(kPi * p));
    case LrSchedule::Linear:
      return peak * (1.0 - p);
    case LrSchedule::Constant:
      return peak;
  }
  return peak;
}

// ---------------------------------------------------------------------------------------------
// Sequences

Fit fit_to_length(TokenizedExample& example, std::int64_t max_length) {
  const auto p = static_cast<std::int64_t>(example.prompt_ids.size());
  const auto r = static_cast<std::int64_t>(example.response_ids.size());
  if (r == 0 || p >= max_length) return Fit::Dropped;
  if (p + r <= max_length) return Fit::Kept;
  example.response_ids.resize(static_cast<std::size_t>(max_length - p));
  return Fit::Truncated;
}

SequenceBatch collate(const std::vector<const TokenizedExample*>& sequences,
                      const torch::Device& device) {
  const auto b = static_cast<std::int64_t>(sequences.size());
  std::int64_t t_max = 1;
  for (const auto* s : sequences) t_max = std::max(t_max, total_length(*s));
  auto ids = torch::zeros({b, t_max}, torch::kInt64);
  auto mask = torch::zeros({b, t_max}, torch::kInt64);
  auto* id_ptr = ids.data_ptr<std::int64_t>();
  auto* mask_ptr = mask.data_ptr<std::int64_t>();
  std::vector<std::int64_t> rows, targets, seq_index;
  SequenceBatch out;
  out.response_tokens.resize(sequences.size());
  for (std::int64_t i = 0; i < b; ++i) {
    const auto& ex = *sequences[static_cast<std::size_t>(i)];
    const auto p = static_cast<std::int64_t>(ex.prompt_ids.size());
    const std::int64_t len = total_length(ex);
    std::int64_t* row = id_ptr + i * t_max;
    std::copy(ex.prompt_ids.begin(), ex.prompt_ids.end(), row);
    std::copy(ex.response_ids.begin(), ex.response_ids.end(), row + p);
    std::fill(mask_ptr + i * t_max, mask_ptr + i * t_max + len, 1);
    // Position t predicts token t+1: score the positions whose next token is a response token.
    for (std::int64_t t = std::max<std::int64_t>(p, 1) - 1; t + 1 < len; ++t) {
      rows.push_back(i * t_max + t);
      targets.push_back(row[t + 1]);
      seq_index.push_back(i);
    }
    out.response_tokens[static_cast<std::size_t>(i)] = scored_tokens(ex);
    out.real_tokens += len;
  }
  auto to_tensor = [&device](const std::vector<std::int64_t>& v) {
    return torch::tensor(v, torch::kInt64).to(device);
  };
  out.input_ids = ids.to(device);
  out.attention_mask = mask.to(device);
  out.target_rows = rows.empty() ? torch::zeros({0}, torch::kInt64).to(device) : to_tensor(rows);
  out.target_ids = targets.empty() ? out.target_rows.clone() : to_tensor(targets);
  out.target_sequence = seq_index.empty() ? out.target_rows.clone() : to_tensor(seq_index);
  return out;
}

torch::Tensor sequence_logps(const torch::Tensor& logits, const SequenceBatch& batch) {
  MR_CHECK_AS(BackendError,
              logits.dim() == 3 && logits.size(0) == batch.input_ids.size(0) &&
                  logits.size(1) == batch.input_ids.size(1),
              "model forward returned logits of shape ", shape_text(logits.sizes()), ", expected [",
              batch.input_ids.size(0), ", ", batch.input_ids.size(1), ", vocab]");
  const std::int64_t b = logits.size(0);
  const std::int64_t v = logits.size(2);
  // Gather the scored rows first: prompt positions (often most of a judge sequence) never reach
  // the softmax, which saves memory and leaves their gradient exactly zero.
  const torch::Tensor rows = logits.reshape({-1, v}).index_select(0, batch.target_rows);
  const torch::Tensor token_logp =
      rows.gather(1, batch.target_ids.unsqueeze(1)).squeeze(1) - rows.logsumexp(1);
  return torch::zeros({b}, token_logp.options()).index_add(0, batch.target_sequence, token_logp);
}

// ---------------------------------------------------------------------------------------------
// Losses

PreferenceLoss dpo_loss(double beta) {
  MR_CHECK_AS(ConfigError, beta > 0 && std::isfinite(beta), "DPO beta must be > 0, got ",
              num(beta));
  PreferenceLoss loss;
  loss.id = "dpo beta=" + num(beta);
  loss.compute = [beta](const PairLogps& l) {
    const torch::Tensor chosen = beta * (l.policy_chosen - l.reference_chosen);
    const torch::Tensor rejected = beta * (l.policy_rejected - l.reference_rejected);
    PairLossResult r;
    r.losses = -torch::log_sigmoid(chosen - rejected);
    const torch::Tensor c = chosen.detach(), rj = rejected.detach();
    r.metrics["rewards/chosen"] = c;
    r.metrics["rewards/rejected"] = rj;
    r.metrics["margin"] = c - rj;
    r.metrics["accuracy"] = (c > rj).to(c.scalar_type());
    return r;
  };
  return loss;
}

PreferenceLoss rpo_loss(double beta, double alpha) {
  MR_CHECK_AS(ConfigError, alpha >= 0 && std::isfinite(alpha), "RPO alpha must be >= 0, got ",
              num(alpha));
  PreferenceLoss dpo = dpo_loss(beta);
  PreferenceLoss loss;
  loss.id = "rpo beta=" + num(beta) + " alpha=" + num(alpha);
  loss.compute = [dpo = std::move(dpo.compute), alpha](const PairLogps& l) {
    PairLossResult r = dpo(l);
    const torch::Tensor nll = -l.policy_chosen / l.chosen_tokens.clamp_min(1);
    r.losses = r.losses + alpha * nll;
    r.metrics["nll"] = nll.detach();
    return r;
  };
  return loss;
}

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
    p.chosen = model.tokenize(pairs[i].prompt, pairs[i].chosen);
    p.rejected = model.tokenize(pairs[i].prompt, pairs[i].rejected);
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
                                                  int micro_batch_size) {
  std::vector<std::pair<double, double>> out;
  out.reserve(pairs.size());
  if (pairs.empty()) return out;
  const torch::Device device = model_device(model);
  torch::NoGradGuard no_grad;
  model.set_training(false);
  const std::size_t mb = static_cast<std::size_t>(std::max(micro_batch_size, 1));
  for (std::size_t i0 = 0; i0 < pairs.size(); i0 += mb) {
    const std::size_t i1 = std::min(pairs.size(), i0 + mb);
    std::vector<const TokenizedExample*> seqs;
    for (std::size_t i = i0; i < i1; ++i) seqs.push_back(&pairs[i].chosen);
    for (std::size_t i = i0; i < i1; ++i) seqs.push_back(&pairs[i].rejected);
    const SequenceBatch sb = collate(seqs, device);
    const torch::Tensor lp = sequence_logps(model.forward(sb.input_ids, sb.attention_mask), sb)
                                 .to(torch::kCPU, torch::kFloat64)
                                 .contiguous();
    const double* d = lp.data_ptr<double>();
    const std::size_t m = i1 - i0;
    for (std::size_t j = 0; j < m; ++j) out.emplace_back(d[j], d[m + j]);
  }
  return out;
}

void compute_reference_logps(TrainableModel& model,
                             PreparedPairs& prepared,
                             const TrainingOptions& options) {
  const auto lps = pair_logps(model, prepared.pairs, options.micro_batch_size);
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
        compute_reference_logps(model, prepared, options);
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
    TokenizedExample t = model.tokenize(ex.prompt, ex.response);
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

// ---------------------------------------------------------------------------------------------
// State

TrainerStateInfo read_trainer_state_info(const fs::path& state_dir) {
  const fs::path path = state_dir / kTrainerStateFile;
  if (!fs::exists(path)) throw DataError("no trainer state at '" + path.string() + "'");
  torch::serialize::InputArchive ar;
  load_archive(ar, path, torch::Device(torch::kCPU));
  return read_header(ar, path);
}

}  // namespace mr::sdk::training
