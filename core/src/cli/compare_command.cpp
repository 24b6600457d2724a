// `metareward compare RUN... [--metrics PREFIX]... [--markdown]`: one table of the evaluation
// metrics of several runs, per iteration (a metric's bootstrap interval, KEY/ci_low and
// KEY/ci_high, in its cell as "value [low, high]"), with mean ± std over the seeds of runs named
// NAME-seedN. Reads only metrics files (docs/run_artifacts.md); needs no plugin and no model.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "metareward/core/run/run_directory.hpp"
#include "metareward/core/run/run_record.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::core::cli {

namespace po = boost::program_options;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

using Metrics = std::map<std::string, double>;

/// One run's evaluation numbers by iteration (0 = the seed models).
struct RunMetrics {
  std::string label;  ///< The RUN argument without trailing slashes.
  std::map<int, Metrics> by_iteration;
};

/// Reads RUN/iter_0/eval/metrics.json (iteration 0) and every complete RUN/iter_T/metrics.json;
/// a directory written by `metareward eval` (RUN/metrics.json) counts as its one iteration.
RunMetrics read_run(const std::string& argument) {
  RunMetrics run;
  run.label = argument;
  while (run.label.size() > 1 && run.label.back() == '/') run.label.pop_back();
  const fs::path dir = run.label;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw sdk::DataError("compare: '" + argument + "' is not a directory");
  const RunDirectory layout(dir);
  bool found = false;
  for (const auto& [t, path] : layout.iteration_dirs(/*with_seed=*/true)) {
    // Incomplete iteration. A present record is read even when it is not a valid one, so that
    // the error names its file and line.
    if (!fs::exists(layout.metrics(t), ec)) continue;
    run.by_iteration[t] = read_evaluation_metrics(layout.metrics(t));
    if (const std::string problem = layout.completion_problem(t); !problem.empty())
      throw sdk::DataError("compare: " + layout.metrics(t).string() + " " + problem +
                           ": `metareward run CONFIG --resume` sets it aside and redoes "
                           "iteration " +
                           std::to_string(t));
    found = true;
  }
  // A directory written by `metareward eval --out DIR`: DIR/metrics.json is its one iteration.
  if (!found && fs::exists(dir / RunDirectory::kMetrics, ec)) {
    int t = 0;
    Metrics metrics = read_evaluation_metrics(dir / RunDirectory::kMetrics, &t);
    run.by_iteration[t] = std::move(metrics);
    found = true;
  }
  if (!found)
    throw sdk::DataError("compare: '" + argument +
                         "' holds no metrics (no iter_T/metrics.json, iter_0/eval/metrics.json "
                         "or metrics.json)");
  return run;
}

/// Up to 4 decimals, trailing zeros removed; magnitudes below 0.001 in exponent form (as in
/// `metareward report`).
std::string number(double v) {
  char buf[64];
  if (v != 0 && std::fabs(v) < 0.001) {
    std::snprintf(buf, sizeof buf, "%.3g", v);
    return buf;
  }
  std::snprintf(buf, sizeof buf, "%.4f", v);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s == "-0" ? "0" : s;
}

/// "mean ± std" (sample standard deviation) over the values present; " (n=K)" when some runs
/// of the group lack the value; "-" when none has it.
std::string aggregate(const std::vector<double>& values, std::size_t group_size) {
  if (values.empty()) return "-";
  double mean = 0;
  for (double v : values) mean += v;
  mean /= static_cast<double>(values.size());
  std::string text = number(mean);
  if (values.size() > 1) {
    double ss = 0;
    for (double v : values) ss += (v - mean) * (v - mean);
    double sd = std::sqrt(ss / static_cast<double>(values.size() - 1));
    // Equal values can leave rounding residue in the mean (0.19 +- 3.4e-17): that is 0.
    if (sd <= 1e-12 * std::max(1.0, std::fabs(mean))) sd = 0;
    text += " ± " + number(sd);
  }
  if (values.size() < group_size) text += " (n=" + std::to_string(values.size()) + ")";
  return text;
}

/// "runs/meta" for "runs/meta-seed2"; nullopt when the name has no -seedN suffix.
std::optional<std::string> seed_prefix(const std::string& label) {
  const auto pos = label.rfind("-seed");
  if (pos == std::string::npos || pos == 0 || pos + 5 == label.size()) return std::nullopt;
  if (label.find_first_not_of("0123456789", pos + 5) != std::string::npos) return std::nullopt;
  return label.substr(0, pos);
}

std::size_t display_width(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

std::string markdown_cell(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

void print_table(std::ostream& out,
                 const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows,
                 bool markdown) {
  if (markdown) {
    auto line = [&](const std::vector<std::string>& cells) {
      out << "|";
      for (const auto& c : cells) out << " " << markdown_cell(c) << " |";
      out << "\n";
    };
    line(header);
    out << "|";
    for (std::size_t i = 0; i < header.size(); ++i) out << (i < 2 ? "---|" : "---:|");
    out << "\n";
    for (const auto& r : rows) line(r);
    return;
  }
  std::vector<std::size_t> width(header.size(), 0);
  for (std::size_t i = 0; i < header.size(); ++i) width[i] = display_width(header[i]);
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], display_width(r[i]));
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      text += cells[i];
      if (i + 1 < cells.size()) text += std::string(width[i] - display_width(cells[i]) + 2, ' ');
    }
    out << text << "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
}

}  // namespace

int compare_command(const GlobalOptions&, const std::vector<std::string>& args) {
  po::options_description options("Options");
  options.add_options()("run", po::value<std::vector<std::string>>()->value_name("RUN"),
                        "Run directories (or `metareward eval` output directories).")(
      "metrics", po::value<std::vector<std::string>>()->composing()->value_name("PREFIX"),
      "Only metrics whose name starts with PREFIX, e.g. actor/ (repeatable).")(
      "markdown", "Print a Markdown table.");
  po::positional_options_description positional;
  positional.add("run", -1);
  po::variables_map vm;
  if (!parse_command_args("compare", "RUN... [--metrics PREFIX]... [--markdown]", options,
                          positional, args, vm))
    return 0;
  if (!vm.count("run")) throw UsageError("compare: give at least one RUN directory");
  const auto prefixes = vm.count("metrics") ? vm["metrics"].as<std::vector<std::string>>()
                                            : std::vector<std::string>{};

  std::vector<RunMetrics> runs;
  for (const auto& a : vm["run"].as<std::vector<std::string>>()) runs.push_back(read_run(a));

  std::set<std::string> all_keys;
  std::set<int> iterations;
  for (const auto& run : runs)
    for (const auto& [t, metrics] : run.by_iteration) {
      iterations.insert(t);
      for (const auto& [key, value] : metrics) all_keys.insert(key);
    }
  // KEY/ci_low and KEY/ci_high are shown in KEY's cell, "value [low, high]".
  auto is_bound = [&all_keys](const std::string& key) {
    for (const std::string tail : {"/ci_low", "/ci_high"})
      if (key.size() > tail.size() &&
          key.compare(key.size() - tail.size(), tail.size(), tail) == 0 &&
          all_keys.count(key.substr(0, key.size() - tail.size())))
        return true;
    return false;
  };
  std::vector<std::string> keys;
  for (const auto& key : all_keys) {
    if (is_bound(key)) continue;
    bool keep = prefixes.empty();
    for (const auto& p : prefixes) keep = keep || key.rfind(p, 0) == 0;
    if (keep) keys.push_back(key);
  }
  if (all_keys.empty())
    throw sdk::DataError(
        "compare: no evaluation metrics in the given runs (a run records them when its config "
        "has an [evaluation] table; `metareward eval` evaluates a checkpoint)");
  if (keys.empty()) {
    std::string names;
    for (const auto& k : all_keys) names += (names.empty() ? "" : ", ") + k;
    throw UsageError(
        "compare: no metric starts with the --metrics prefix(es) given (metrics: " + names + ")");
  }

  std::vector<std::string> header = {"run", "iteration"};
  header.insert(header.end(), keys.begin(), keys.end());
  std::vector<std::vector<std::string>> rows;
  for (const auto& run : runs)
    for (int t : iterations) {
      std::vector<std::string> row = {run.label, std::to_string(t)};
      const auto it = run.by_iteration.find(t);
      for (const auto& key : keys) {
        if (it == run.by_iteration.end() || !it->second.count(key))
          row.push_back("-");
        else {
          std::string text = number(it->second.at(key));
          const auto low = it->second.find(key + "/ci_low");
          const auto high = it->second.find(key + "/ci_high");
          if (low != it->second.end() && high != it->second.end())
            text += " [" + number(low->second) + ", " + number(high->second) + "]";
          row.push_back(std::move(text));
        }
      }
      rows.push_back(std::move(row));
    }

  // Runs named PREFIX-seedN, two or more with the same PREFIX: one aggregate row group.
  std::vector<std::pair<std::string, std::vector<const RunMetrics*>>> groups;
  for (const auto& run : runs) {
    const auto prefix = seed_prefix(run.label);
    if (!prefix) continue;
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const auto& g) { return g.first == *prefix; });
    if (it == groups.end())
      groups.push_back({*prefix, {&run}});
    else
      it->second.push_back(&run);
  }
  for (const auto& [prefix, members] : groups) {
    if (members.size() < 2) continue;
    const std::string label =
        prefix + "-seed* (mean ± std, " + std::to_string(members.size()) + " seeds)";
    for (int t : iterations) {
      std::vector<std::string> row = {label, std::to_string(t)};
      for (const auto& key : keys) {
        std::vector<double> values;
        for (const auto* run : members) {
          const auto it = run->by_iteration.find(t);
          if (it != run->by_iteration.end() && it->second.count(key))
            values.push_back(it->second.at(key));
        }
        row.push_back(aggregate(values, members.size()));
      }
      rows.push_back(std::move(row));
    }
  }

  print_table(std::cout, header, rows, vm.count("markdown") > 0);
  return 0;
}

}  // namespace mr::core::cli
