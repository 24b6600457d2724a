// The trainer's options (one table: schema, config reading, validation, fingerprint) and the
// learning-rate schedule.
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
#include <type_traits>
#include <variant>

#include "metareward/sdk/error.hpp"
namespace mr::training {

using namespace detail;

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

namespace {

/// One trainer option: its config key, where it lives in TrainingOptions, its help and bounds.
/// The schema, options_from_config(), validate() and the run fingerprint all read this table,
/// so a new option is one row here plus its TrainingOptions member.
struct OptionRow {
  using Member = std::variant<double TrainingOptions::*,
                              int TrainingOptions::*,
                              std::int64_t TrainingOptions::*,
                              bool TrainingOptions::*,
                              LrSchedule TrainingOptions::*,
                              std::vector<std::string> TrainingOptions::*>;
  const char* key;
  Member member;
  const char* help;
  std::optional<double> lo = std::nullopt, hi = std::nullopt;
  bool lo_exclusive = false, hi_exclusive = false;
  bool per_iteration = false;
  /// False for memory/speed knobs that do not change the trained weights (not fingerprinted).
  bool changes_result = true;
};

const std::vector<OptionRow>& option_table() {
  using O = TrainingOptions;
  static const std::vector<OptionRow> rows = {
      {"learning_rate", &O::learning_rate, "Peak AdamW learning rate.", 0.0, std::nullopt, true,
       false, true},
      {"lr_schedule", &O::lr_schedule,
       "Decay after the linear warm-up: cosine or linear (to min_learning_rate), or constant."},
      {"min_learning_rate", &O::min_learning_rate,
       "Where the cosine/linear decay ends (e.g. 1e-7 for Self-Rewarding's 1e-6 -> 1e-7); must "
       "not exceed learning_rate.",
       0.0},
      {"warmup_ratio", &O::warmup_ratio,
       "Fraction of the optimizer steps spent warming the learning rate up linearly (rounded "
       "up).",
       0.0, 1.0},
      {"epochs", &O::epochs, "Passes over the training data.", 1.0, std::nullopt, false, false,
       true},
      {"batch_size", &O::batch_size,
       "Examples per optimizer step (global batch, via gradient accumulation).", 1.0},
      {"micro_batch_size", &O::micro_batch_size,
       "Examples per forward/backward pass (memory knob; capped at batch_size, does not change "
       "the result).",
       1.0, std::nullopt, false, false, false, false},
      {"weight_decay", &O::weight_decay, "AdamW decoupled weight decay.", 0.0},
      {"adam_beta1", &O::adam_beta1, "AdamW first-moment decay.", 0.0, 1.0, false, true},
      {"adam_beta2", &O::adam_beta2, "AdamW second-moment decay.", 0.0, 1.0, false, true},
      {"adam_eps", &O::adam_eps, "AdamW denominator epsilon.", 0.0, std::nullopt, true},
      {"max_grad_norm", &O::max_grad_norm,
       "Clip the global gradient L2 norm to this; 0 = no clipping.", 0.0},
      {"max_length", &O::max_length,
       "Prompt + response tokens per sequence; longer responses are cut from the right "
       "(counted), examples whose prompt leaves no room are dropped.",
       2.0},
      {"dropout", &O::dropout,
       "> 0 trains with the model's dropout on (the rate is the model's own); 0 trains in eval "
       "mode.",
       0.0, 1.0, false, true},
      {"save_every_steps", &O::save_every_steps,
       "Write the resumable training state every N steps; 0 = at the end of each epoch only.", 0.0,
       std::nullopt, false, false, false, false},
      {"master_weights", &O::master_weights,
       "With bf16/fp16 parameters, keep fp32 master weights and AdamW moments (the update is "
       "computed in fp32, then rounded into the model); fp16 also gets dynamic loss scaling. "
       "Without them small updates round away in bf16. No effect on fp32 models."},
      {"close_truncated", &O::close_truncated,
       "Append the end-of-turn token also after a response cut at max_new_tokens (trains it as if "
       "it had ended); off, such a response is trained without one."},
      {"lora", &O::lora,
       "Train a LoRA adapter (PEFT format) instead of every weight: the base stays frozen, the "
       "reference log-probs come from the base with the adapter off, and the adapter is written "
       "next to the merged model."},
      {"lora_r", &O::lora_r, "LoRA rank r.", 1.0},
      {"lora_alpha", &O::lora_alpha, "LoRA alpha; the update is scaled by lora_alpha / lora_r.",
       0.0, std::nullopt, true},
      {"lora_dropout", &O::lora_dropout, "Dropout on the LoRA input while training.", 0.0, 1.0,
       false, true},
      {"lora_target_modules", &O::lora_target_modules,
       "Linear layers that get an adapter, by name as PEFT matches them (the last component of "
       "the module name)."},
      {"gradient_checkpointing", &O::gradient_checkpointing,
       "Recompute each decoder layer's activations during backward instead of keeping them "
       "(less memory, about one more forward pass; same gradients).",
       std::nullopt, std::nullopt, false, false, false, false},
      {"length_balanced", &O::length_balanced,
       "Group examples of similar length into the micro-batches of each step (less padding, "
       "same result).",
       std::nullopt, std::nullopt, false, false, false, false},
      {"share_prompt", &O::share_prompt,
       "Compute each preference pair's prompt once for both responses (one packed row per pair "
       "in which the rejected response does not see the chosen one): fewer tokens through the "
       "model, same log-probs up to float rounding. Used when the model backend supports it.",
       std::nullopt, std::nullopt, false, false, false, false},
  };
  return rows;
}

/// "must be in [0, 1)" / "must be > 0" / "" (no bounds).
std::string bounds_text(const OptionRow& row) {
  if (row.lo && row.hi)
    return std::string("must be in ") + (row.lo_exclusive ? "(" : "[") + num(*row.lo) + ", " +
           num(*row.hi) + (row.hi_exclusive ? ")" : "]");
  if (row.lo) return std::string("must be ") + (row.lo_exclusive ? "> " : ">= ") + num(*row.lo);
  if (row.hi) return std::string("must be ") + (row.hi_exclusive ? "< " : "<= ") + num(*row.hi);
  return {};
}

bool within(const OptionRow& row, double v) {
  if (!std::isfinite(v)) return false;
  if (row.lo && (row.lo_exclusive ? v <= *row.lo : v < *row.lo)) return false;
  if (row.hi && (row.hi_exclusive ? v >= *row.hi : v > *row.hi)) return false;
  return true;
}

}  // namespace

Schema training_schema(const TrainingOptions& d) {
  Schema schema;
  for (const OptionRow& row : option_table()) {
    ParamSpec spec = std::visit(
        [&](auto member) -> ParamSpec {
          using T = std::decay_t<decltype(d.*member)>;
          if constexpr (std::is_same_v<T, double>)
            return ParamSpec::float_(row.key, d.*member, row.help);
          else if constexpr (std::is_same_v<T, bool>)
            return ParamSpec::bool_(row.key, d.*member, row.help);
          else if constexpr (std::is_same_v<T, LrSchedule>)
            return ParamSpec::string_(row.key, lr_schedule_name(d.*member), row.help)
                .one_of({"cosine", "linear", "constant"});
          else if constexpr (std::is_same_v<T, std::vector<std::string>>)
            return ParamSpec::string_list(row.key, d.*member, row.help);
          else
            return ParamSpec::int_(row.key, static_cast<std::int64_t>(d.*member), row.help);
        },
        row.member);
    if (row.lo || row.hi) spec.range(row.lo, row.hi, row.lo_exclusive, row.hi_exclusive);
    if (row.per_iteration) spec.per_iteration_allowed();
    schema.push_back(std::move(spec));
  }
  return schema;
}

TrainingOptions options_from_config(const Config& c, int iteration) {
  TrainingOptions o;
  for (const OptionRow& row : option_table()) {
    if (!c.has(row.key)) continue;
    std::visit(
        [&](auto member) {
          using T = std::decay_t<decltype(o.*member)>;
          if constexpr (std::is_same_v<T, double>)
            o.*member = c.get_float(row.key, iteration);
          else if constexpr (std::is_same_v<T, bool>)
            o.*member = c.get_bool(row.key, iteration);
          else if constexpr (std::is_same_v<T, LrSchedule>) {
            try {
              o.*member = parse_lr_schedule(c.get_string(row.key, iteration));
            } catch (const ConfigError& e) {
              c.fail(row.key, e.what());
            }
          } else if constexpr (std::is_same_v<T, std::vector<std::string>>)
            o.*member = c.get_string_list(row.key);
          else
            o.*member = static_cast<T>(c.get_int(row.key, iteration));
        },
        row.member);
  }
  return o;
}

void validate(const TrainingOptions& o) {
  for (const OptionRow& row : option_table()) {
    std::visit(
        [&](auto member) {
          using T = std::decay_t<decltype(o.*member)>;
          if constexpr (std::is_same_v<T, double> || std::is_same_v<T, int> ||
                        std::is_same_v<T, std::int64_t>) {
            const auto v = static_cast<double>(o.*member);
            if (!within(row, v))
              throw ConfigError(std::string("invalid training option: ") + row.key + " " +
                                bounds_text(row) + ", got " + num(v));
          }
        },
        row.member);
  }
  if (o.min_learning_rate > o.learning_rate)
    throw ConfigError("invalid training option: min_learning_rate (" + num(o.min_learning_rate) +
                      ") exceeds learning_rate (" + num(o.learning_rate) + ")");
  if (o.lora && o.lora_target_modules.empty())
    throw ConfigError("invalid training option: lora_target_modules is empty");
}

namespace detail {

void fingerprint_options(Fnv& f, const TrainingOptions& o) {
  for (const OptionRow& row : option_table()) {
    if (!row.changes_result) continue;
    // The adapter's settings only matter with lora on (a full fine-tune keeps its state).
    if (!o.lora && std::string_view(row.key).rfind("lora_", 0) == 0) continue;
    std::visit(
        [&](auto member) {
          using T = std::decay_t<decltype(o.*member)>;
          if constexpr (std::is_same_v<T, double>)
            f.f64(o.*member);
          else if constexpr (std::is_same_v<T, LrSchedule>)
            f.str(lr_schedule_name(o.*member));
          else if constexpr (std::is_same_v<T, std::vector<std::string>>)
            for (const auto& v : o.*member) f.str(v);
          else
            f.i64(static_cast<std::int64_t>(o.*member));
        },
        row.member);
  }
  // Not config keys, but they change the result.
  f.i64(o.warmup_steps);
  f.i64(static_cast<std::int64_t>(o.seed));
}

}  // namespace detail

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
  const double floor = std::min(options.min_learning_rate, peak);
  switch (options.lr_schedule) {
    case LrSchedule::Cosine:
      return floor + (peak - floor) * 0.5 * (1.0 + std::cos(kPi * p));
    case LrSchedule::Linear:
      return floor + (peak - floor) * (1.0 - p);
    case LrSchedule::Constant:
      return peak;
  }
  return peak;
}

}  // namespace mr::training
