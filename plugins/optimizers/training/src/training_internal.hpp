// Internal to mr_training: helpers and the step engine shared by its translation units.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>

#include "metareward/sdk/error.hpp"
#include "metareward/training/training.hpp"

namespace mr::training::detail {

namespace fs = std::filesystem;

inline constexpr const char* kStateFormat = "metareward-trainer-state";
inline constexpr double kPi = 3.14159265358979323846;

/// Shortest round-trip text of a double, for ids and messages.
inline std::string num(double x) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, res.ptr);
}

/// Short text of a metric for log lines.
inline std::string short_num(double x) {
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

inline std::string shape_text(at::IntArrayRef sizes) {
  std::string s = "[";
  for (std::size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}

/// First line of a libtorch error (its messages carry C++ backtraces).
inline std::string first_line(const std::exception& e) {
  std::string s = e.what();
  return s.substr(0, s.find('\n'));
}

inline std::int64_t scored_tokens(const TokenizedExample& ex) {
  const auto r = static_cast<std::int64_t>(ex.response_ids.size());
  return ex.prompt_ids.empty() ? std::max<std::int64_t>(r - 1, 0) : r;
}

inline std::int64_t total_length(const TokenizedExample& ex) {
  return static_cast<std::int64_t>(ex.prompt_ids.size() + ex.response_ids.size());
}

inline torch::Device model_device(TrainableModel& model) {
  auto params = model.parameters();
  MR_CHECK_AS(PluginError, !params.empty(), "the trainable model has no parameters");
  return params.front().device();
}

/// Deterministic Fisher–Yates shuffle of 0..n-1 for one epoch.
inline std::vector<std::size_t> epoch_order(std::size_t n, std::uint64_t seed, std::int64_t epoch) {
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::mt19937_64 rng(derive_seed(seed, static_cast<std::uint64_t>(epoch)));
  for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  return order;
}

// ---------------------------------------------------------------------------------------------
// The engine (engine.cpp): one step loop for preference and SFT training.

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

/// Sums the gradients of `params` over the ranks of a data-parallel run in ~bucket_bytes
/// buckets (fp32), each started from autograd hooks as soon as backward has produced all of its
/// gradients (gradient_reducer.cpp). Per step: arm() before the backward of this rank's last
/// micro-batch, finish() after it (or without any backward when the rank had no micro-batch).
class GradientReducer {
 public:
  struct Result {
    std::vector<torch::Tensor> gradients;  ///< Summed over the ranks, fp32, shaped as the params.
    std::vector<bool> got_gradient;        ///< Whether this rank computed one for the param.
    bool hooks_fired_twice = false;        ///< A param's hook fired twice in one backward.
  };
  GradientReducer(std::vector<torch::Tensor> params,
                  Collective& ranks,
                  std::int64_t bucket_bytes = 25LL << 20);
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;
  ~GradientReducer();
  void arm();
  /// Starts the buckets not started yet, waits for all; valid until the next finish().
  Result finish();

 private:
  struct Bucket {
    std::vector<std::size_t> params;
    torch::Tensor buffer;
    std::vector<torch::Tensor> slices;
    std::size_t filled = 0;
    std::unique_ptr<CollectiveWork> work;
  };
  void on_gradient(std::size_t i, const torch::Tensor& grad);
  void launch_ready();

  std::vector<torch::Tensor> params_;
  Collective& ranks_;
  std::vector<Bucket> buckets_;
  std::vector<std::pair<std::size_t, std::size_t>> slot_of_;  ///< (bucket, slice) per param.
  std::vector<unsigned> hooks_;
  std::vector<bool> filled_, got_grad_;
  std::size_t next_launch_ = 0;
  bool armed_ = false;
  bool twice_ = false;
};

/// One micro-batch's share of a step, for the totals summed in micro-batch order.
struct MicroOutcome {
  std::size_t index = 0;  ///< Micro-batch within the step.
  double loss = 0.0;
  std::int64_t tokens = 0;
  std::map<std::string, double> sums;
};

/// What the ranks agree on after a step's backward (engine.cpp).
struct StepTotals {
  std::vector<MicroOutcome> outcomes;  ///< Every rank's, in micro-batch order.
  std::vector<bool> got_gradient;      ///< Per parameter: some rank computed a gradient.
  bool stop = false;                   ///< Some rank was asked to stop.
};

/// Exchanges the step's micro-batch outcomes, gradient flags and stop requests of all ranks.
StepTotals agree_on_step(Collective& ranks,
                         const std::vector<MicroOutcome>& mine,
                         const GradientReducer::Result& summed,
                         bool stop_here);

/// Throws DistributedError when the weights' checksum differs between ranks after `step`.
void check_replicas(Collective& ranks, const std::vector<torch::Tensor>& params, std::int64_t step);

/// Writes the resumable state of `task` after `step` of `total_steps` steps (trainer_state.cpp),
/// atomically.
void save_state(const fs::path& state_dir,
                const Task& task,
                const std::string& fingerprint,
                std::int64_t step,
                std::int64_t total_steps,
                const std::vector<torch::Tensor>& params,
                torch::optim::Optimizer& optimizer,
                const EpochSums& epoch,
                const LossScale& loss_scale);

/// Restores a state written by save_state() for this same run; returns the completed steps.
/// Validates everything before touching the model so a refused state leaves it unchanged.
std::int64_t load_state(const fs::path& state_dir,
                        Task& task,
                        const std::string& fingerprint,
                        std::int64_t total_steps,
                        const std::vector<torch::Tensor>& params,
                        torch::optim::Optimizer& optimizer,
                        EpochSums& epoch,
                        LossScale& loss_scale);

/// Adds the options that change a run's result to a fingerprint (options.cpp, from the table).
void fingerprint_options(Fnv& f, const TrainingOptions& options);

void log(HostContext* host, LogLevel level, const std::string& message);

TrainingSummary run_training(TrainableModel& model,
                             Task& task,
                             const TrainingOptions& options,
                             const TrainingJob& job,
                             HostContext* host);

std::string describe_drops(const DropCounts& dropped);

/// Counts and warns about truncated/dropped examples, so no input disappears silently.
void report_fit(HostContext* host,
                const std::string& noun,
                std::size_t total,
                std::int64_t truncated,
                const DropCounts& dropped,
                std::int64_t max_length);

}  // namespace mr::training::detail
