// The `testbed-data` command: flag parsing with clear usage errors, then build + write.
#include "metareward/testbed/commands.hpp"

#include <charconv>
#include <cmath>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include "metareward/sdk/error.hpp"
#include "metareward/testbed/dataset.hpp"

namespace mr::plugins::testbed {

namespace {

/// A usage error: the message is printed with the usage and the command exits 2.
struct UsageError {
  std::string message;
};

std::uint64_t parse_uint(const std::string& flag, const std::string& text) {
  std::uint64_t v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || ptr != end)
    throw UsageError{flag + " expects a non-negative integer, got '" + text + "'"};
  return v;
}

std::int64_t parse_count(const std::string& flag, const std::string& text) {
  const std::uint64_t v = parse_uint(flag, text);
  if (v > 10'000'000) throw UsageError{flag + " must be at most 10000000, got " + text};
  return static_cast<std::int64_t>(v);
}

double parse_probability(const std::string& flag, const std::string& text) {
  double v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || ptr != end || !std::isfinite(v))
    throw UsageError{flag + " expects a number in [0, 1], got '" + text + "'"};
  if (v < 0.0 || v > 1.0) throw UsageError{flag + " must be in [0, 1], got " + text};
  return v;
}

std::string fmt(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

using Setter = std::function<void(DatasetOptions&, const std::string& flag, const std::string&)>;

struct Flag {
  std::string name;  // without the leading "--"
  std::string value_name;
  std::string help;
  Setter set;
};

const std::vector<Flag>& flags() {
  static const std::vector<Flag> table = [] {
    const DatasetOptions d;
    auto count = [](std::int64_t DatasetOptions::*field) {
      return [field](DatasetOptions& o, const std::string& f, const std::string& v) {
        o.*field = parse_count(f, v);
      };
    };
    auto prob = [](auto get) {
      return [get](DatasetOptions& o, const std::string& f, const std::string& v) {
        get(o) = parse_probability(f, v);
      };
    };
    return std::vector<Flag>{
        {"out", "DIR", "output directory, created if missing (required)", nullptr},
        {"seed", "S", "base seed [" + std::to_string(d.seed) + "]",
         [](DatasetOptions& o, const std::string& f, const std::string& v) {
           o.seed = parse_uint(f, v);
         }},
        {"sft-examples", "N", "rows of sft.jsonl [" + std::to_string(d.sft_examples) + "]",
         count(&DatasetOptions::sft_examples)},
        {"train-prompts", "N",
         "rows of train_prompts.jsonl [" + std::to_string(d.train_prompts) + "]",
         count(&DatasetOptions::train_prompts)},
        {"eval-prompts", "N", "rows of eval_prompts.jsonl [" + std::to_string(d.eval_prompts) + "]",
         count(&DatasetOptions::eval_prompts)},
        {"p-correct", "X",
         "teacher answers correctly with probability X [" + fmt(d.teacher.p_correct) + "]",
         prob([](DatasetOptions& o) -> double& { return o.teacher.p_correct; })},
        {"p-verbose", "X",
         "teacher wraps its answer in filler with probability X [" + fmt(d.teacher.p_verbose) + "]",
         prob([](DatasetOptions& o) -> double& { return o.teacher.p_verbose; })},
        {"judge-share", "X",
         "share of SFT rows that are judge examples [" + fmt(d.judge_share) + "]",
         prob([](DatasetOptions& o) -> double& { return o.judge_share; })},
        {"meta-share", "X",
         "share of SFT rows that are meta-judge examples [" + fmt(d.meta_share) + "]",
         prob([](DatasetOptions& o) -> double& { return o.meta_share; })},
        {"p-off-task", "X",
         "share of judged responses answering another task [" + fmt(d.p_off_task) + "]",
         prob([](DatasetOptions& o) -> double& { return o.p_off_task; })},
        {"judge-noise", "X",
         "judge targets move by +-1 with probability X [" + fmt(d.judge_noise.p_score_noise) + "]",
         prob([](DatasetOptions& o) -> double& { return o.judge_noise.p_score_noise; })},
        {"length-bias", "X",
         "verbose answers get +1 from the judge with probability X [" +
             fmt(d.judge_noise.p_length_bias) + "]",
         prob([](DatasetOptions& o) -> double& { return o.judge_noise.p_length_bias; })},
        {"meta-flip", "X",
         "meta-judge labels name the worse judgment with probability X [" +
             fmt(d.meta_noise.p_flip) + "]",
         prob([](DatasetOptions& o) -> double& { return o.meta_noise.p_flip; })},
    };
  }();
  return table;
}

}  // namespace

std::string testbed_data_usage() {
  std::ostringstream u;
  u << "usage: metareward testbed-data --out DIR [--seed S] [--sft-examples N] "
       "[--train-prompts N]\n"
       "         [--eval-prompts N] [--p-correct X] [--p-verbose X] [--judge-share X]\n"
       "         [--meta-share X] [--p-off-task X] [--judge-noise X] [--length-bias X]\n"
       "         [--meta-flip X]\n"
       "  Writes the oracle testbed's bootstrap dataset into DIR: sft.jsonl (instruction, judge\n"
       "  and meta-judge examples for the seed model), train_prompts.jsonl (loop prompts, no\n"
       "  answers), eval_prompts.jsonl (held-out prompts with task and answer) and\n"
       "  manifest.json. The same options always give byte-identical files.\n"
       "Options [default]:\n";
  for (const auto& f : flags()) {
    std::string left = "--" + f.name + " " + f.value_name;
    u << "  " << left << std::string(left.size() < 20 ? 20 - left.size() : 1, ' ') << f.help
      << "\n";
  }
  return u.str();
}

int testbed_data_command(const std::vector<std::string>& args,
                         std::ostream& out,
                         std::ostream& err) {
  DatasetOptions options;
  std::optional<std::string> out_dir;
  try {
    std::map<std::string, bool> seen;
    for (std::size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      if (a == "--help" || a == "-h") {
        out << testbed_data_usage();
        return 0;
      }
      if (a.rfind("--", 0) != 0) throw UsageError{"unexpected argument '" + a + "'"};
      std::string name = a.substr(2), value;
      bool has_value = false;
      if (const auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
      const Flag* flag = nullptr;
      for (const auto& f : flags())
        if (f.name == name) flag = &f;
      if (flag == nullptr) throw UsageError{"unknown option '--" + name + "'"};
      if (!has_value) {
        if (i + 1 >= args.size()) throw UsageError{"--" + name + " needs a value"};
        value = args[++i];
      }
      if (seen[name]) throw UsageError{"--" + name + " is given more than once"};
      seen[name] = true;
      if (flag->set) {
        flag->set(options, "--" + name, value);
      } else {
        if (value.empty()) throw UsageError{"--out needs a non-empty directory"};
        out_dir = value;
      }
    }
    if (!out_dir) throw UsageError{"--out DIR is required"};
    if (options.judge_share + options.meta_share > 1.0 + 1e-12)
      throw UsageError{"--judge-share + --meta-share must be at most 1, got " +
                       fmt(options.judge_share + options.meta_share)};
  } catch (const UsageError& e) {
    err << "metareward testbed-data: " << e.message << "\n" << testbed_data_usage();
    return 2;
  }
  const Dataset dataset = build_dataset(options);
  write_dataset(dataset, options, *out_dir);
  out << "testbed-data: wrote " << dataset.sft.size() << " SFT rows ("
      << dataset.sft_kind_counts.at("instruction") << " instruction, "
      << dataset.sft_kind_counts.at("judge") << " judge, "
      << dataset.sft_kind_counts.at("meta_judge") << " meta_judge), " << dataset.train.size()
      << " train prompts and " << dataset.eval.size() << " eval prompts to " << *out_dir
      << " (seed " << options.seed << ")\n";
  return 0;
}

void register_testbed_plugins(mr::sdk::Registrar& registrar) {
  registrar.add_command(
      {"testbed-data", "Write the oracle testbed's bootstrap dataset (SFT, train and eval prompts)",
       [](const std::vector<std::string>& args, mr::sdk::HostContext&) {
         return testbed_data_command(args, std::cout, std::cerr);
       }});
}

}  // namespace mr::plugins::testbed
