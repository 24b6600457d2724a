// Flag parsing shared by the testbed's commands (`testbed data`, `testbed bootstrap`): a table of
// `--name VALUE` / `--name=VALUE` flags applied to an options struct, with usage errors that
// name the flag, the value and what was expected. Internal to mr_testbed_core.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "metareward/testbed/commands.hpp"
#include "metareward/testbed/dataset.hpp"

namespace mr::plugins::testbed::cli {

/// One flag of a command. `set` receives the flag as written ("--seed") and its value.
template <class Options>
struct Flag {
  std::string name;        ///< Without the leading "--".
  std::string value_name;  ///< e.g. "N"; empty for a switch (takes no value).
  std::string help;        ///< One line, default included.
  std::function<void(Options&, const std::string& flag, const std::string& value)> set;
  bool repeatable = false;  ///< May be given more than once (each value is applied).
};

inline std::uint64_t parse_uint(const std::string& flag, const std::string& text) {
  std::uint64_t v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || ptr != end)
    throw UsageError(flag + " expects a non-negative integer, got '" + text + "'");
  return v;
}

/// A row count: a non-negative integer of at most 10 million.
inline std::int64_t parse_count(const std::string& flag, const std::string& text) {
  const std::uint64_t v = parse_uint(flag, text);
  if (v > 10'000'000) throw UsageError(flag + " must be at most 10000000, got " + text);
  return static_cast<std::int64_t>(v);
}

/// An integer in [lo, hi].
inline std::int64_t parse_int_in(const std::string& flag,
                                 const std::string& text,
                                 std::int64_t lo,
                                 std::int64_t hi) {
  const std::uint64_t v = parse_uint(flag, text);
  if (v > static_cast<std::uint64_t>(hi) || static_cast<std::int64_t>(v) < lo)
    throw UsageError(flag + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                     "], got " + text);
  return static_cast<std::int64_t>(v);
}

inline double parse_double(const std::string& flag, const std::string& text) {
  double v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || ptr != end || !std::isfinite(v))
    throw UsageError(flag + " expects a number, got '" + text + "'");
  return v;
}

inline double parse_probability(const std::string& flag, const std::string& text) {
  double v = 0;
  try {
    v = parse_double(flag, text);
  } catch (const UsageError&) {
    throw UsageError(flag + " expects a number in [0, 1], got '" + text + "'");
  }
  if (v < 0.0 || v > 1.0) throw UsageError(flag + " must be in [0, 1], got " + text);
  return v;
}

/// Shortest readable form of `v` ("0.6", "0.001", "1e-05").
inline std::string fmt(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

/// Applies `args` to `options`. Returns false when --help / -h was given (nothing else is
/// checked then). Throws UsageError for an unknown flag, a missing value, a repeated flag that
/// is not repeatable, a positional argument, or whatever a setter rejects.
template <class Options>
bool apply_flags(const std::vector<std::string>& args,
                 const std::vector<Flag<Options>>& table,
                 Options& options) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") return false;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + a + "'");
    std::string name = a.substr(2), value;
    bool has_value = false;
    if (const auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const Flag<Options>* flag = nullptr;
    for (const auto& f : table)
      if (f.name == name) flag = &f;
    if (flag == nullptr) throw UsageError("unknown option '--" + name + "'");
    if (flag->value_name.empty()) {
      if (has_value) throw UsageError("--" + name + " takes no value");
    } else if (!has_value) {
      if (i + 1 >= args.size()) throw UsageError("--" + name + " needs a value");
      value = args[++i];
    }
    if (!seen.insert(name).second && !flag->repeatable)
      throw UsageError("--" + name + " is given more than once");
    flag->set(options, "--" + name, value);
  }
  return true;
}

/// The "Options [default]:" lines of a usage text.
template <class Options>
std::string flag_lines(const std::vector<Flag<Options>>& table) {
  std::string out;
  for (const auto& f : table) {
    const std::string left = "--" + f.name + (f.value_name.empty() ? "" : " " + f.value_name);
    out += "  " + left + std::string(left.size() < 22 ? 22 - left.size() : 1, ' ') + f.help + "\n";
  }
  return out;
}

/// The dataset flags of `testbed data` (and `testbed bootstrap`), applied to the DatasetOptions
/// that `get` returns. `with_seed` adds --seed (bootstrap has its own, shared by every step).
template <class Options>
std::vector<Flag<Options>> dataset_flags(std::function<DatasetOptions&(Options&)> get,
                                         bool with_seed) {
  const DatasetOptions d;
  auto count = [get](std::int64_t DatasetOptions::*field) {
    return [get, field](Options& o, const std::string& f, const std::string& v) {
      get(o).*field = parse_count(f, v);
    };
  };
  auto prob = [get](double& (*field)(DatasetOptions&)) {
    return [get, field](Options& o, const std::string& f, const std::string& v) {
      field(get(o)) = parse_probability(f, v);
    };
  };
  std::vector<Flag<Options>> table;
  if (with_seed)
    table.push_back({"seed", "S", "base seed [" + std::to_string(d.seed) + "]",
                     [get](Options& o, const std::string& f, const std::string& v) {
                       get(o).seed = parse_uint(f, v);
                     }});
  table.push_back({"sft-examples", "N",
                   "rows of sft.jsonl [" + std::to_string(d.sft_examples) + "]",
                   count(&DatasetOptions::sft_examples)});
  table.push_back({"train-prompts", "N",
                   "rows of train_prompts.jsonl [" + std::to_string(d.train_prompts) + "]",
                   count(&DatasetOptions::train_prompts)});
  table.push_back({"eval-prompts", "N",
                   "rows of eval_prompts.jsonl [" + std::to_string(d.eval_prompts) + "]",
                   count(&DatasetOptions::eval_prompts)});
  table.push_back(
      {"p-correct", "X",
       "teacher answers correctly with probability X [" + fmt(d.teacher.p_correct) + "]",
       prob([](DatasetOptions& o) -> double& { return o.teacher.p_correct; })});
  table.push_back(
      {"p-verbose", "X",
       "teacher wraps its answer in filler with probability X [" + fmt(d.teacher.p_verbose) + "]",
       prob([](DatasetOptions& o) -> double& { return o.teacher.p_verbose; })});
  table.push_back({"judge-share", "X",
                   "share of SFT rows that are judge examples [" + fmt(d.judge_share) + "]",
                   prob([](DatasetOptions& o) -> double& { return o.judge_share; })});
  table.push_back({"meta-share", "X",
                   "share of SFT rows that are meta-judge examples [" + fmt(d.meta_share) + "]",
                   prob([](DatasetOptions& o) -> double& { return o.meta_share; })});
  table.push_back({"p-off-task", "X",
                   "share of judged responses answering another task [" + fmt(d.p_off_task) + "]",
                   prob([](DatasetOptions& o) -> double& { return o.p_off_task; })});
  table.push_back(
      {"judge-noise", "X",
       "judge targets move by +-1 with probability X [" + fmt(d.judge_noise.p_score_noise) + "]",
       prob([](DatasetOptions& o) -> double& { return o.judge_noise.p_score_noise; })});
  table.push_back({"length-bias", "X",
                   "verbose answers get +1 from the judge with probability X [" +
                       fmt(d.judge_noise.p_length_bias) + "]",
                   prob([](DatasetOptions& o) -> double& { return o.judge_noise.p_length_bias; })});
  table.push_back({"meta-flip", "X",
                   "meta-judge labels name the worse judgment with probability X [" +
                       fmt(d.meta_noise.p_flip) + "]",
                   prob([](DatasetOptions& o) -> double& { return o.meta_noise.p_flip; })});
  return table;
}

/// Usage error unless the judge and meta-judge shares leave room for instruction rows.
inline void check_shares(const DatasetOptions& o) {
  if (o.judge_share + o.meta_share > 1.0 + 1e-12)
    throw UsageError("--judge-share + --meta-share must be at most 1, got " +
                     fmt(o.judge_share + o.meta_share));
}

}  // namespace mr::plugins::testbed::cli
