// Command-line options of the testbed's commands (`testbed data`, `testbed bootstrap`) on
// Boost.Program_options. Each option is read as text and, when the variables map is notified,
// checked by a parser that names the flag, the value and what was expected, then stored into a
// field of the command's options struct. Internal to mr_testbed_core.
#pragma once

#include <algorithm>
#include <boost/program_options.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "metareward/testbed/commands.hpp"
#include "metareward/testbed/dataset.hpp"

namespace mr::plugins::testbed::cli {

namespace po = boost::program_options;

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

/// A comma-separated list of distinct task family names, e.g. "add,multiply,count".
inline std::vector<TaskFamily> parse_families(const std::string& flag, const std::string& text) {
  std::vector<TaskFamily> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    const std::string name = text.substr(start, comma - start);
    const auto family = family_from_name(name);
    if (!family)
      throw UsageError(flag + ": unknown task family '" + name +
                       "' (expected a comma-separated list of sort, reverse, add, multiply, "
                       "count)");
    for (TaskFamily f : out)
      if (f == *family) throw UsageError(flag + " names '" + name + "' twice");
    out.push_back(*family);
    start = comma + 1;
  }
  return out;
}

/// A directory argument: any non-empty text.
inline std::string parse_dir(const std::string& flag, const std::string& text) {
  if (text.empty()) throw UsageError(flag + " needs a non-empty directory");
  return text;
}

/// Shortest readable form of `v` ("0.6", "0.001", "1e-05").
inline std::string fmt(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

/// An options_description whose options store into the fields of one options struct. The
/// references given to the adders must outlive the parse (po::notify assigns them).
class OptionTable {
 public:
  /// Lines of up to 110 columns, so that every help text fits on one line.
  explicit OptionTable(const std::string& caption) : desc_(caption, 110, 60) {}

  /// `--NAME VALUE_NAME`: `field = parse("--NAME", text)`, where `parse` throws UsageError.
  template <class Field, class Parse>
  OptionTable& value(const char* name,
                     const char* value_name,
                     const std::string& help,
                     Field& field,
                     Parse parse) {
    const std::string flag = std::string("--") + name;
    desc_.add_options()(name,
                        po::value<std::string>()
                            ->value_name(value_name)
                            ->notifier([&field, flag, parse](const std::string& text) {
                              field = static_cast<Field>(parse(flag, text));
                            }),
                        help.c_str());
    return *this;
  }

  /// `--NAME VALUE_NAME`, repeatable: each value is checked by `check("--NAME", text)` (throws
  /// UsageError) and appended to `field`, in order.
  template <class Check>
  OptionTable& values(const char* name,
                      const char* value_name,
                      const std::string& help,
                      std::vector<std::string>& field,
                      Check check) {
    const std::string flag = std::string("--") + name;
    desc_.add_options()(
        name,
        po::value<std::vector<std::string>>()
            ->value_name(value_name)
            ->composing()
            ->notifier([&field, flag, check](const std::vector<std::string>& texts) {
              for (const auto& t : texts) check(flag, t);
              field.insert(field.end(), texts.begin(), texts.end());
            }),
        help.c_str());
    return *this;
  }

  /// `--NAME`, a switch without a value: sets `field` to true.
  OptionTable& flag(const char* name, const std::string& help, bool& field) {
    auto* semantic = po::bool_switch()->notifier([&field](bool on) {
      if (on) field = true;
    });
    desc_.add_options()(name, semantic, help.c_str());
    return *this;
  }

  /// `--NAME VALUE_NAME` read before the others, by the caller (no field).
  OptionTable& text(const char* name, const char* value_name, const std::string& help) {
    desc_.add_options()(name, po::value<std::string>()->value_name(value_name), help.c_str());
    return *this;
  }

  const po::options_description& description() const { return desc_; }

 private:
  po::options_description desc_;
};

/// The "Options [default]:" block of a usage text.
inline std::string option_lines(const OptionTable& table) {
  std::ostringstream out;
  out << table.description();
  return out.str();
}

/// Parses `args` against `table` plus --help / -h. Returns false for --help (nothing is
/// applied then). Otherwise runs `before_notify` on the parsed values (bootstrap applies its
/// preset there), then stores every value into its field. Throws UsageError, naming the flag,
/// for an unknown option, a missing value, an option given twice that is not repeatable, a
/// positional argument, or a value its parser rejects.
inline bool parse_options(const std::vector<std::string>& args,
                          const OptionTable& table,
                          const std::function<void(const po::variables_map&)>& before_notify = {}) {
  po::options_description all;
  all.add(table.description());
  all.add_options()("help,h", "Show this help.")("unexpected-argument",
                                                 po::value<std::vector<std::string>>(), "");
  po::positional_options_description positional;
  positional.add("unexpected-argument", -1);
  // Exact option names only (no abbreviations): a command line that works today keeps its
  // meaning when an option is added.
  const int style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(all).positional(positional).style(style).run(),
              vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  if (vm.count("help")) return false;
  if (vm.count("unexpected-argument"))
    throw UsageError("unexpected argument '" +
                     vm["unexpected-argument"].as<std::vector<std::string>>().front() + "'");
  if (before_notify) before_notify(vm);
  try {
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  return true;
}

/// The dataset options of `testbed data` (and `testbed bootstrap`), stored into `d`. `with_seed`
/// adds --seed (bootstrap has its own, shared by every step). `counts` overrides the help of
/// --sft-examples, --train-prompts and --eval-prompts (their defaults), in that order.
inline void add_dataset_options(OptionTable& t,
                                DatasetOptions& d,
                                bool with_seed,
                                const std::vector<std::string>& counts = {}) {
  const DatasetOptions def;
  auto count_help = [&](std::size_t i, const std::string& what, std::int64_t v) {
    return what + " " + (i < counts.size() ? counts[i] : "[" + std::to_string(v) + "]");
  };
  if (with_seed)
    t.value("seed", "S", "base seed [" + std::to_string(def.seed) + "]", d.seed, parse_uint);
  t.value("sft-examples", "N", count_help(0, "rows of sft.jsonl", def.sft_examples), d.sft_examples,
          parse_count)
      .value("train-prompts", "N", count_help(1, "rows of train_prompts.jsonl", def.train_prompts),
             d.train_prompts, parse_count)
      .value("eval-prompts", "N", count_help(2, "rows of eval_prompts.jsonl", def.eval_prompts),
             d.eval_prompts, parse_count)
      .value("families", "LIST",
             "task families of the prompts and SFT rows, comma-separated "
             "[sort,reverse,add,multiply,count]",
             d.families, parse_families)
      .value("p-correct", "X",
             "teacher answers correctly with probability X [" + fmt(def.teacher.p_correct) + "]",
             d.teacher.p_correct, parse_probability)
      .value("p-verbose", "X",
             "teacher wraps its answer in filler with probability X [" +
                 fmt(def.teacher.p_verbose) + "]",
             d.teacher.p_verbose, parse_probability)
      .value("judge-share", "X",
             "share of SFT rows that are judge examples [" + fmt(def.judge_share) + "]",
             d.judge_share, parse_probability)
      .value("meta-share", "X",
             "share of SFT rows that are meta-judge examples [" + fmt(def.meta_share) + "]",
             d.meta_share, parse_probability)
      .value("p-off-task", "X",
             "share of judged responses answering another task [" + fmt(def.p_off_task) + "]",
             d.p_off_task, parse_probability)
      .value("judge-noise", "X",
             "judge targets move by +-1 with probability X [" + fmt(def.judge_noise.p_score_noise) +
                 "]",
             d.judge_noise.p_score_noise, parse_probability)
      .value("length-bias", "X",
             "verbose answers get +1 from the judge with probability X [" +
                 fmt(def.judge_noise.p_length_bias) + "]",
             d.judge_noise.p_length_bias, parse_probability)
      .value("meta-flip", "X",
             "meta-judge labels name the worse judgment with probability X [" +
                 fmt(def.meta_noise.p_flip) + "]",
             d.meta_noise.p_flip, parse_probability);
}

/// Usage error unless the judge and meta-judge shares leave room for instruction rows.
inline void check_shares(const DatasetOptions& o) {
  if (o.judge_share + o.meta_share > 1.0 + 1e-12)
    throw UsageError("--judge-share + --meta-share must be at most 1, got " +
                     fmt(o.judge_share + o.meta_share));
}

}  // namespace mr::plugins::testbed::cli
