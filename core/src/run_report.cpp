// `metareward report`: renders a RunRecord (run/run_record.cpp reads it) as report.html and
// report.md.
//
// One file (~810 lines) on purpose: the HTML and Markdown renderers share every table builder
// below (the Markdown report is the same tables, with the plot data as tables).
#include "metareward/core/run_report.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "metareward/core/jsonl.hpp"
#include "metareward/core/svg_chart.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::core {

namespace fs = std::filesystem;
using json = nlohmann::json;
using svg::escape_xml;
using svg::format_number;

namespace {

constexpr const char* kMissing = "—";

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : separator) + s;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Tables shared by both renderers
// ---------------------------------------------------------------------------------------------

struct Table {
  std::string id;  ///< HTML id of the <table>.
  std::vector<std::string> headers;
  std::vector<bool> numeric;  ///< Right-aligned columns.
  std::vector<std::vector<std::string>> rows;
};

std::string cell(std::optional<double> value) {
  return value ? format_number(*value) : std::string(kMissing);
}

std::string cell_map(const std::map<std::string, double>& values) {
  if (values.empty()) return kMissing;
  std::string out;
  for (const auto& [key, count] : values)
    out += (out.empty() ? "" : ", ") + key + ": " + format_number(count);
  return out;
}

std::optional<double> lookup(const std::map<std::string, double>& values, const std::string& key) {
  auto it = values.find(key);
  if (it == values.end()) return std::nullopt;
  return it->second;
}

/// `canonical` keys first (when present in any map), then the others by name.
std::vector<std::string> ordered_keys(const std::vector<const std::map<std::string, double>*>& maps,
                                      const std::vector<std::string>& canonical) {
  std::set<std::string> all;
  for (const auto* m : maps)
    for (const auto& [key, value] : *m) all.insert(key);
  std::vector<std::string> keys;
  for (const auto& key : canonical)
    if (all.erase(key)) keys.push_back(key);
  keys.insert(keys.end(), all.begin(), all.end());
  return keys;
}

std::string yes_no(std::optional<bool> value) {
  return value ? (*value ? "yes" : "no") : std::string(kMissing);
}

Table manifest_table(const RunRecord& run) {
  Table t{"table-manifest", {"Field", "Value"}, {false, false}, {}};
  for (const auto& [key, value] : run.manifest_fields) t.rows.push_back({key, value});
  return t;
}

Table plugins_table(const RunRecord& run) {
  Table t{"table-plugins",
          {"Plugin", "Kind", "Version", "Library", "SHA-256"},
          {false, false, false, false, false},
          {}};
  for (const auto& p : run.plugins)
    t.rows.push_back({p.name, p.kind, p.version, p.library, p.sha256});
  return t;
}

Table models_table(const RunRecord& run) {
  std::set<std::string> fields;
  for (const auto& [name, model] : run.models)
    for (const auto& [key, value] : model) fields.insert(key);
  std::vector<std::string> keys;
  for (const char* k : {"architecture", "path", "parameters", "context_length"})
    if (fields.erase(k)) keys.push_back(k);
  keys.insert(keys.end(), fields.begin(), fields.end());
  Table t{"table-models", {"Model"}, {false}, {}};
  for (const auto& k : keys) {
    t.headers.push_back(k);
    t.numeric.push_back(k == "parameters" || k == "context_length");
  }
  for (const auto& [name, model] : run.models) {
    std::vector<std::string> row{name};
    for (const auto& k : keys) {
      auto v = model.find(k);
      row.push_back(v == model.end() ? kMissing : v->second);
    }
    t.rows.push_back(std::move(row));
  }
  return t;
}

Table summary_table(const RunRecord& run) {
  Table t{"table-summary",
          {"Iteration", "Judge trained", "Prompts", "Responses", "Judgments", "Parse failure rate",
           "Score mean", "Score std", "Actor pairs", "Judge pairs", "DPO steps", "Final loss",
           "Final accuracy", "Final margin"},
          {true, false, true, true, true, true, true, true, true, true, true, true, true, true},
          {}};
  for (const auto* it : run.complete())
    t.rows.push_back(
        {std::to_string(it->iteration), yes_no(it->train_judge), cell(it->metric("prompts")),
         cell(it->metric("actor.responses")), cell(it->metric("judge.judgments")),
         cell(it->metric("judge.parse_failure_rate")), cell(it->metric("judge.score_mean")),
         cell(it->metric("judge.score_std")), cell(it->metric("actor_pairs.pairs")),
         it->has_judge_pairs ? cell(it->metric("judge_pairs.pairs")) : kMissing,
         cell(it->metric("training.steps")), cell(it->metric("training.final.loss")),
         cell(it->metric("training.final.accuracy")), cell(it->metric("training.final.margin"))});
  return t;
}

/// The seed stage (iteration 0), one row; no rows without one.
Table seed_stage_table(const RunRecord& run) {
  Table t{"table-seed-stage",
          {"Optimizer", "Rows", "Rows dropped", "Examples", "Steps", "Final loss"},
          {false, true, true, true, true, true},
          {}};
  if (run.seed_stage_type.empty()) return t;
  double dropped = 0;
  for (const auto& [key, value] : run.seed_stage)
    if (key.rfind("drops.", 0) == 0) dropped += value;
  t.rows.push_back({run.seed_stage_type, cell(lookup(run.seed_stage, "rows")),
                    format_number(dropped), cell(lookup(run.seed_stage, "examples")),
                    cell(lookup(run.seed_stage, "steps")),
                    cell(lookup(run.seed_stage, "final.loss"))});
  return t;
}

Table actor_table(const RunRecord& run) {
  Table t{"table-actor",
          {"Iteration", "Requests", "Failed requests", "Responses", "Mean length (chars)",
           "Mean tokens", "Stopped at length", "Judge failed requests", "Responses without score",
           "Pair chosen score", "Pair rejected score", "Actor pair drops"},
          {true, true, true, true, true, true, true, true, true, true, true, false},
          {}};
  for (const auto* it : run.complete())
    t.rows.push_back(
        {std::to_string(it->iteration), cell(it->metric("actor.requests")),
         cell(it->metric("actor.failed_requests")), cell(it->metric("actor.responses")),
         cell(it->metric("actor.mean_length_chars")), cell(it->metric("actor.mean_tokens")),
         cell(it->metric("actor.finish_length")), cell(it->metric("judge.failed_requests")),
         cell(it->metric("judge.responses_without_score")),
         cell(it->metric("actor_pairs.chosen_score_mean")),
         cell(it->metric("actor_pairs.rejected_score_mean")), cell_map(it->actor_pair_drops)});
  return t;
}

/// The iterations with meta-judge diagnostics (judge-training iterations).
std::vector<const IterationRecord*> meta_judged(const RunRecord& run) {
  std::vector<const IterationRecord*> out;
  for (const auto* it : run.complete())
    if (it->has_meta_judge) out.push_back(it);
  return out;
}

Table meta_judge_table(const RunRecord& run) {
  const auto iterations = meta_judged(run);
  std::vector<std::map<std::string, double>> diagnostics;
  for (const auto* it : iterations) {
    std::map<std::string, double> d;
    const std::string prefix = "meta_judge.diagnostics.";
    for (const auto& [key, value] : it->metrics)
      if (key.rfind(prefix, 0) == 0) d[key.substr(prefix.size())] = value;
    diagnostics.push_back(std::move(d));
  }
  std::vector<const std::map<std::string, double>*> maps;
  for (const auto& d : diagnostics) maps.push_back(&d);
  const auto keys = ordered_keys(
      maps, {"positional_bias", "score_bias", "verdict_parse_failure_rate", "elo_spread"});
  Table t{"table-meta-judge", {"Iteration", "Battles", "Failed requests"}, {true, true, true}, {}};
  for (const auto& k : keys) {
    t.headers.push_back(k);
    t.numeric.push_back(true);
  }
  for (const char* h : {"Drops", "Judge pairs", "Chosen length", "Rejected length"}) {
    t.headers.push_back(h);
    t.numeric.push_back(std::string(h) != "Drops");
  }
  for (std::size_t i = 0; i < iterations.size(); ++i) {
    const auto* it = iterations[i];
    std::vector<std::string> row{std::to_string(it->iteration),
                                 cell(it->metric("meta_judge.battles")),
                                 cell(it->metric("meta_judge.failed_requests"))};
    for (const auto& k : keys) row.push_back(cell(lookup(diagnostics[i], k)));
    row.push_back(cell_map(it->meta_judge_drops));
    row.push_back(cell(it->metric("judge_pairs.pairs")));
    row.push_back(cell(it->metric("judge_pairs.chosen_length_mean")));
    row.push_back(cell(it->metric("judge_pairs.rejected_length_mean")));
    t.rows.push_back(std::move(row));
  }
  return t;
}

/// One row per iteration of `field(it)`'s keys: stage seconds or throughput.
Table timing_table(const RunRecord& run,
                   const std::string& id,
                   const std::map<std::string, double> IterationRecord::*field,
                   const std::vector<std::string>& canonical) {
  std::vector<const IterationRecord*> timed;
  std::vector<const std::map<std::string, double>*> maps;
  for (const auto& it : run.iterations)
    if (it.has_timings) {
      timed.push_back(&it);
      maps.push_back(&(it.*field));
    }
  const auto keys = ordered_keys(maps, canonical);
  Table t{id, {"Iteration"}, {true}, {}};
  for (const auto& k : keys) {
    t.headers.push_back(k);
    t.numeric.push_back(true);
  }
  for (const auto* it : timed) {
    std::vector<std::string> row{std::to_string(it->iteration) +
                                 (it->complete ? "" : " (incomplete)")};
    for (const auto& k : keys) row.push_back(cell(lookup(it->*field, k)));
    t.rows.push_back(std::move(row));
  }
  return t;
}

Table stages_table(const RunRecord& run) {
  return timing_table(
      run, "table-stages", &IterationRecord::stage_seconds,
      {"prompts", "actor", "judge", "actor_pairs", "meta_judge", "judge_pairs", "train", "total"});
}

Table throughput_table(const RunRecord& run) {
  return timing_table(run, "table-throughput", &IterationRecord::throughput,
                      {"actor_tokens_per_s", "judge_tokens_per_s", "meta_judge_tokens_per_s",
                       "train_tokens_per_s"});
}

std::vector<std::string> evaluation_keys(const RunRecord& run) {
  std::vector<const std::map<std::string, double>*> maps = {&run.seed_evaluation};
  for (const auto* it : run.complete()) maps.push_back(&it->evaluation);
  return ordered_keys(maps, {});
}

Table evaluation_table(const RunRecord& run) {
  Table t{"table-evaluation", {"Iteration"}, {true}, {}};
  const auto keys = evaluation_keys(run);
  for (const auto& k : keys) {
    t.headers.push_back(k);
    t.numeric.push_back(true);
  }
  if (!run.seed_evaluation.empty()) {
    std::vector<std::string> row{"0 (seed)"};
    for (const auto& k : keys) row.push_back(cell(lookup(run.seed_evaluation, k)));
    t.rows.push_back(std::move(row));
  }
  for (const auto* it : run.complete()) {
    std::vector<std::string> row{std::to_string(it->iteration)};
    for (const auto& k : keys) row.push_back(cell(lookup(it->evaluation, k)));
    t.rows.push_back(std::move(row));
  }
  return t;
}

// Plot data tables (report.md shows these instead of the plots).

Table scores_data(const RunRecord& run) {
  Table t{"data-scores",
          {"Iteration", "Score mean", "Score std", "Pair chosen score", "Pair rejected score"},
          {true, true, true, true, true},
          {}};
  for (const auto* it : run.complete())
    t.rows.push_back({std::to_string(it->iteration), cell(it->metric("judge.score_mean")),
                      cell(it->metric("judge.score_std")),
                      cell(it->metric("actor_pairs.chosen_score_mean")),
                      cell(it->metric("actor_pairs.rejected_score_mean"))});
  return t;
}

/// The iterations with a score histogram, and every bin from the lowest to the highest.
std::pair<std::vector<const IterationRecord*>, std::vector<std::int64_t>> histogram_bins(
    const RunRecord& run) {
  std::vector<const IterationRecord*> with;
  std::int64_t lo = 0, hi = -1;
  for (const auto* it : run.complete()) {
    if (it->score_histogram.empty()) continue;
    with.push_back(it);
    const auto first = it->score_histogram.begin()->first;
    const auto last = it->score_histogram.rbegin()->first;
    if (hi < lo) {
      lo = first;
      hi = last;
    } else {
      lo = std::min(lo, first);
      hi = std::max(hi, last);
    }
  }
  std::vector<std::int64_t> bins;
  // A score scale is small; bins beyond 200 apart would be an artifact bug, shown sparsely.
  if (hi >= lo && hi - lo <= 200) {
    for (auto b = lo; b <= hi; ++b) bins.push_back(b);
  } else {
    std::set<std::int64_t> all;
    for (const auto* it : with)
      for (const auto& [bin, count] : it->score_histogram) all.insert(bin);
    bins.assign(all.begin(), all.end());
  }
  return {with, bins};
}

std::int64_t count_at(const IterationRecord& it, std::int64_t bin) {
  auto c = it.score_histogram.find(bin);
  return c == it.score_histogram.end() ? 0 : c->second;
}

Table histogram_data(const RunRecord& run) {
  const auto [with, bins] = histogram_bins(run);
  Table t{"data-score-histogram", {"Score"}, {true}, {}};
  for (const auto* it : with) {
    t.headers.push_back("Iteration " + std::to_string(it->iteration));
    t.numeric.push_back(true);
  }
  for (auto bin : bins) {
    std::vector<std::string> row{std::to_string(bin)};
    for (const auto* it : with) row.push_back(std::to_string(count_at(*it, bin)));
    t.rows.push_back(std::move(row));
  }
  return t;
}

Table lengths_data(const RunRecord& run) {
  Table t{"data-lengths",
          {"Iteration", "Actor mean length", "Actor pairs chosen", "Actor pairs rejected"},
          {true, true, true, true},
          {}};
  for (const auto* it : run.complete())
    t.rows.push_back({std::to_string(it->iteration), cell(it->metric("actor.mean_length_chars")),
                      cell(it->metric("actor_pairs.chosen_length_mean")),
                      cell(it->metric("actor_pairs.rejected_length_mean"))});
  return t;
}

Table biases_data(const RunRecord& run) {
  Table t{"data-biases", {"Iteration", "Positional bias", "Score bias"}, {true, true, true}, {}};
  for (const auto* it : meta_judged(run))
    t.rows.push_back({std::to_string(it->iteration),
                      cell(it->metric("meta_judge.diagnostics.positional_bias")),
                      cell(it->metric("meta_judge.diagnostics.score_bias"))});
  return t;
}

/// The iterations with train_metrics rows (complete or not), with their legend names.
std::vector<std::pair<const IterationRecord*, std::string>> trained(const RunRecord& run) {
  std::vector<std::pair<const IterationRecord*, std::string>> out;
  for (const auto& it : run.iterations)
    if (!it.train_steps.empty())
      out.emplace_back(
          &it, "iteration " + std::to_string(it.iteration) + (it.complete ? "" : " (incomplete)"));
  return out;
}

const std::vector<std::string>& dpo_metrics() {
  static const std::vector<std::string> keys = {"loss", "accuracy", "margin"};
  return keys;
}

Table dpo_data(const RunRecord& run) {
  Table t{"data-dpo",
          {"Iteration", "Step", "Loss", "Accuracy", "Margin"},
          {true, true, true, true, true},
          {}};
  for (const auto& [it, name] : trained(run))
    for (const auto& step : it->train_steps) {
      std::vector<std::string> row{std::to_string(it->iteration) + (it->complete ? "" : "*"),
                                   format_number(step.step)};
      for (const auto& k : dpo_metrics()) row.push_back(cell(lookup(step.values, k)));
      t.rows.push_back(std::move(row));
    }
  return t;
}

// ---------------------------------------------------------------------------------------------
// Plots
// ---------------------------------------------------------------------------------------------

/// A line over iterations of `value(it)` (iterations without a value are left out).
svg::LineSeries iteration_series(
    const RunRecord& run,
    const std::string& name,
    const std::function<std::optional<double>(const IterationRecord&)>& value) {
  svg::LineSeries s{name, {}};
  for (const auto* it : run.complete())
    if (auto v = value(*it)) s.points.emplace_back(it->iteration, *v);
  return s;
}

std::function<std::optional<double>(const IterationRecord&)> metric_of(const std::string& path) {
  return [path](const IterationRecord& it) { return it.metric(path); };
}

bool has_points(const std::vector<svg::LineSeries>& series) {
  for (const auto& s : series)
    if (!s.points.empty()) return true;
  return false;
}

std::string scores_plot(const RunRecord& run) {
  svg::LineChart c;
  c.id = "plot-scores";
  c.title = "Judge score per iteration";
  c.x_label = "iteration";
  c.y_label = "score";
  c.integer_x = true;
  c.series = {
      iteration_series(run, "score mean (all judgments)", metric_of("judge.score_mean")),
      iteration_series(run, "actor pairs: chosen", metric_of("actor_pairs.chosen_score_mean")),
      iteration_series(run, "actor pairs: rejected", metric_of("actor_pairs.rejected_score_mean"))};
  return has_points(c.series) ? svg::render_line_chart(c) : "";
}

std::string histogram_plot(const RunRecord& run) {
  const auto [with, bins] = histogram_bins(run);
  if (with.empty()) return "";
  svg::BarChart c;
  c.id = "plot-score-histogram";
  c.title = "Judge score histogram per iteration";
  c.x_label = "score (nearest integer)";
  c.y_label = "judgments";
  for (auto bin : bins) c.categories.push_back(std::to_string(bin));
  for (const auto* it : with) {
    c.series.push_back("iteration " + std::to_string(it->iteration));
    std::vector<std::optional<double>> counts;
    for (auto bin : bins) counts.push_back(static_cast<double>(count_at(*it, bin)));
    c.values.push_back(std::move(counts));
  }
  return svg::render_bar_chart(c);
}

std::string lengths_plot(const RunRecord& run) {
  svg::LineChart c;
  c.id = "plot-lengths";
  c.title = "Response length per iteration";
  c.x_label = "iteration";
  c.y_label = "mean length (chars)";
  c.integer_x = true;
  c.series = {
      iteration_series(run, "actor responses", metric_of("actor.mean_length_chars")),
      iteration_series(run, "actor pairs: chosen", metric_of("actor_pairs.chosen_length_mean")),
      iteration_series(run, "actor pairs: rejected",
                       metric_of("actor_pairs.rejected_length_mean"))};
  return has_points(c.series) ? svg::render_line_chart(c) : "";
}

std::string biases_plot(const RunRecord& run) {
  svg::BarChart c;
  c.id = "plot-biases";
  c.title = "Meta-judge biases per iteration";
  c.x_label = "iteration";
  c.y_label = "rate";
  c.series = {"positional bias", "score bias"};
  c.values.resize(2);
  c.references.push_back({0.5, "0.5 = no bias"});
  for (const auto* it : meta_judged(run)) {
    const auto positional = it->metric("meta_judge.diagnostics.positional_bias");
    const auto score = it->metric("meta_judge.diagnostics.score_bias");
    if (!positional && !score) continue;
    c.categories.push_back(std::to_string(it->iteration));
    c.values[0].push_back(positional);
    c.values[1].push_back(score);
  }
  return c.categories.empty() ? "" : svg::render_bar_chart(c);
}

std::string dpo_plot(const RunRecord& run, const std::string& metric) {
  svg::LineChart c;
  c.id = "plot-dpo-" + metric;
  c.title = "DPO " + metric + " per step";
  c.x_label = "step";
  c.y_label = metric;
  c.integer_x = true;
  for (const auto& [it, name] : trained(run)) {
    svg::LineSeries s{name, {}};
    for (const auto& step : it->train_steps)
      if (auto v = lookup(step.values, metric)) s.points.emplace_back(step.step, *v);
    c.series.push_back(std::move(s));
  }
  return has_points(c.series) ? svg::render_line_chart(c) : "";
}

/// "plot-eval-" + the key in lowercase letters, digits and dashes, unique within `taken`.
std::string evaluation_id(const std::string& key, std::set<std::string>& taken) {
  std::string slug;
  for (char ch : key) {
    const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
      slug += c;
    else if (!slug.empty() && slug.back() != '-')
      slug += '-';
  }
  while (!slug.empty() && slug.back() == '-') slug.pop_back();
  if (slug.empty()) slug = "metric";
  std::string id = "plot-eval-" + slug;
  for (int n = 2; taken.count(id); ++n) id = "plot-eval-" + slug + "-" + std::to_string(n);
  taken.insert(id);
  return id;
}

std::vector<std::string> evaluation_plots(const RunRecord& run) {
  std::vector<std::string> plots;
  std::set<std::string> taken;
  const std::vector<std::string> keys = evaluation_keys(run);
  const std::set<std::string> key_set(keys.begin(), keys.end());
  auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() > tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  for (const auto& key : keys) {
    // KEY/ci_low and KEY/ci_high are KEY's error bars, not plots of their own.
    bool bound = false;
    for (const std::string tail : {"/ci_low", "/ci_high"})
      bound = bound ||
              (ends_with(key, tail) && key_set.count(key.substr(0, key.size() - tail.size())) > 0);
    if (bound) continue;
    svg::LineChart c;
    c.id = evaluation_id(key, taken);
    c.title = "Evaluation: " + key;
    c.x_label = "iteration";
    c.y_label = key;
    c.integer_x = true;
    c.width = 480;
    c.height = 260;
    c.series = {iteration_series(
        run, key, [&key](const IterationRecord& it) { return lookup(it.evaluation, key); })};
    if (auto seed = lookup(run.seed_evaluation, key))  // iteration 0: the seed model
      c.series.front().points.insert(c.series.front().points.begin(), {0, *seed});
    auto add_interval = [&](double x, const std::map<std::string, double>& metrics) {
      const auto low = lookup(metrics, key + "/ci_low"), high = lookup(metrics, key + "/ci_high");
      if (low && high) c.series.front().intervals.push_back({x, *low, *high});
    };
    add_interval(0, run.seed_evaluation);
    for (const auto* it : run.complete()) add_interval(it->iteration, it->evaluation);
    if (!c.series.front().intervals.empty()) c.title += " (with confidence intervals)";
    plots.push_back(svg::render_line_chart(c));
  }
  return plots;
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

std::string run_name(const RunRecord& run) {
  fs::path p = run.dir.lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  const std::string name = p.filename().string();
  return name.empty() ? run.dir.string() : name;
}

/// "2 of 4 iterations complete" (the plan from the manifest when known).
std::string progress_line(const RunRecord& run) {
  const std::size_t done = run.complete().size();
  std::string line = std::to_string(done) + " of ";
  if (run.planned_iterations)
    line += std::to_string(*run.planned_iterations) + " planned iterations complete";
  else
    line += std::to_string(run.iterations.size()) + " iteration directories complete";
  return line;
}

std::string html_table(const Table& t) {
  std::ostringstream out;
  out << "<div class=\"table-wrap\">\n<table id=\"" << escape_xml(t.id) << "\">\n<thead><tr>";
  for (std::size_t i = 0; i < t.headers.size(); ++i)
    out << "<th" << (t.numeric[i] ? " class=\"num\"" : "") << ">" << escape_xml(t.headers[i])
        << "</th>";
  out << "</tr></thead>\n<tbody>\n";
  for (const auto& row : t.rows) {
    out << "<tr>";
    for (std::size_t i = 0; i < row.size(); ++i)
      out << "<td" << (i < t.numeric.size() && t.numeric[i] ? " class=\"num\"" : "") << ">"
          << escape_xml(row[i]) << "</td>";
    out << "</tr>\n";
  }
  out << "</tbody>\n</table>\n</div>\n";
  return out.str();
}

std::string md_cell(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '|')
      out += "\\|";
    else if (c == '\n' || c == '\r')
      out += ' ';
    else
      out += c;
  }
  return out;
}

std::string md_table(const Table& t) {
  std::ostringstream out;
  out << "|";
  for (const auto& h : t.headers) out << " " << md_cell(h) << " |";
  out << "\n|";
  for (std::size_t i = 0; i < t.headers.size(); ++i) out << (t.numeric[i] ? " ---: |" : " --- |");
  out << "\n";
  for (const auto& row : t.rows) {
    out << "|";
    for (const auto& c : row) out << " " << md_cell(c) << " |";
    out << "\n";
  }
  return out.str();
}

constexpr const char* kStyle =
    R"(body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.notes { background: #fff8e1; border: 1px solid #f0d58c; padding: 0.4em 1em; }
svg.chart { display: block; margin: 0.8em 0; max-width: 100%; height: auto; }
p.caption { color: #555; font-size: 0.9em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; })";

}  // namespace

std::string render_report_html(const RunRecord& run) {
  std::ostringstream out;
  const std::string name = run_name(run);
  out << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      << "<title>metareward report: " << escape_xml(name) << "</title>\n"
      << "<style>\n"
      << kStyle << "\n</style>\n</head>\n<body>\n";
  out << "<h1>metareward run report: " << escape_xml(name) << "</h1>\n";
  out << "<p id=\"progress\">" << escape_xml(progress_line(run)) << ".</p>\n";
  if (!run.notes.empty()) {
    out << "<div class=\"notes\" id=\"notes\">\n<h2>Notes</h2>\n<ul>\n";
    for (const auto& n : run.notes) out << "<li>" << escape_xml(n) << "</li>\n";
    out << "</ul>\n</div>\n";
  }

  out << "<h2 id=\"run\">Run</h2>\n";
  if (run.has_manifest) {
    out << html_table(manifest_table(run));
    if (!run.plugins.empty()) out << "<h3>Plugins</h3>\n" << html_table(plugins_table(run));
    if (!run.models.empty()) out << "<h3>Models</h3>\n" << html_table(models_table(run));
  } else {
    out << "<p>No manifest.json.</p>\n";
  }

  out << "<h2 id=\"iterations\">Iterations</h2>\n" << html_table(summary_table(run));
  if (const Table seed = seed_stage_table(run); !seed.rows.empty())
    out << "<h3 id=\"seed-stage\">Seed stage (iteration 0)</h3>\n" << html_table(seed);

  out << "<h2 id=\"scores\">Judge scores</h2>\n" << scores_plot(run) << histogram_plot(run);
  out << "<p class=\"caption\">Mean of every parsed judgment, and of the chosen and rejected "
         "sides of the actor pairs; the histogram bins each parsed score at its nearest "
         "integer.</p>\n";

  out << "<h2 id=\"lengths\">Lengths</h2>\n" << lengths_plot(run);

  out << "<h2 id=\"meta-judge\">Meta-judge</h2>\n";
  if (meta_judged(run).empty()) {
    out << "<p>No complete iteration trained the judge: no meta-judge diagnostics.</p>\n";
  } else {
    out << biases_plot(run);
    out << "<p class=\"caption\">Positional bias: how often the first-shown judgment won; score "
           "bias: how often the higher-scoring judgment won. 0.5 means no bias.</p>\n";
    out << html_table(meta_judge_table(run));
  }

  out << "<h2 id=\"training\">DPO training</h2>\n";
  std::string dpo;
  for (const auto& m : dpo_metrics()) dpo += dpo_plot(run, m);
  out << (dpo.empty() ? "<p>No train_metrics.jsonl rows.</p>\n" : dpo);

  if (!evaluation_keys(run).empty()) {
    out << "<h2 id=\"evaluation\">Evaluation</h2>\n";
    for (const auto& plot : evaluation_plots(run)) out << plot;
    out << html_table(evaluation_table(run));
  }

  out << "<h2 id=\"details\">Actor and judge details</h2>\n" << html_table(actor_table(run));

  const Table stages = stages_table(run);
  if (!stages.rows.empty()) {
    out << "<h2 id=\"timings\">Timings</h2>\n"
        << "<p class=\"caption\">Wall seconds per stage in the invocation that finished it (not "
           "deterministic).</p>\n"
        << html_table(stages);
    const Table throughput = throughput_table(run);
    if (throughput.headers.size() > 1) out << "<h3>Throughput</h3>\n" << html_table(throughput);
  }

  if (!run.resolved_config.empty())
    out << "<h2 id=\"config\">Resolved config</h2>\n<details>\n<summary>config.resolved.toml"
        << "</summary>\n<pre>" << escape_xml(run.resolved_config) << "</pre>\n</details>\n";
  out << "</body>\n</html>\n";
  return out.str();
}

std::string render_report_markdown(const RunRecord& run) {
  std::ostringstream out;
  out << "# metareward run report: " << md_cell(run_name(run)) << "\n\n"
      << progress_line(run) << ".\n\n";
  if (!run.notes.empty()) {
    out << "## Notes\n\n";
    for (const auto& n : run.notes) out << "- " << md_cell(n) << "\n";
    out << "\n";
  }
  out << "## Run\n\n";
  if (run.has_manifest) {
    out << md_table(manifest_table(run)) << "\n";
    if (!run.plugins.empty()) out << "### Plugins\n\n" << md_table(plugins_table(run)) << "\n";
    if (!run.models.empty()) out << "### Models\n\n" << md_table(models_table(run)) << "\n";
  } else {
    out << "No manifest.json.\n\n";
  }
  out << "## Iterations\n\n" << md_table(summary_table(run)) << "\n";
  if (const Table seed = seed_stage_table(run); !seed.rows.empty())
    out << "### Seed stage (iteration 0)\n\n" << md_table(seed) << "\n";

  out << "## Judge scores\n\n" << md_table(scores_data(run)) << "\n";
  const Table histogram = histogram_data(run);
  if (!histogram.rows.empty())
    out << "### Score histogram\n\nJudgments per score (nearest integer), by iteration.\n\n"
        << md_table(histogram) << "\n";

  out << "## Lengths\n\nMean length in characters.\n\n" << md_table(lengths_data(run)) << "\n";

  out << "## Meta-judge\n\n";
  if (meta_judged(run).empty()) {
    out << "No complete iteration trained the judge: no meta-judge diagnostics.\n\n";
  } else {
    out << "0.5 means no bias.\n\n"
        << md_table(biases_data(run)) << "\n"
        << md_table(meta_judge_table(run)) << "\n";
  }

  out << "## DPO training\n\n";
  const Table dpo = dpo_data(run);
  if (dpo.rows.empty()) {
    out << "No train_metrics.jsonl rows.\n\n";
  } else {
    bool incomplete = false;
    for (const auto& [it, name] : trained(run)) incomplete = incomplete || !it->complete;
    out << md_table(dpo) << "\n";
    if (incomplete) out << "\\* iteration incomplete.\n\n";
  }

  if (!evaluation_keys(run).empty())
    out << "## Evaluation\n\n" << md_table(evaluation_table(run)) << "\n";

  out << "## Actor and judge details\n\n" << md_table(actor_table(run)) << "\n";

  const Table stages = stages_table(run);
  if (!stages.rows.empty()) {
    out << "## Timings\n\nWall seconds per stage in the invocation that finished it (not "
           "deterministic).\n\n"
        << md_table(stages) << "\n";
    const Table throughput = throughput_table(run);
    if (throughput.headers.size() > 1) out << "### Throughput\n\n" << md_table(throughput) << "\n";
  }

  if (!run.resolved_config.empty()) {
    // A fence longer than any backtick run in the config, so that the block cannot end early.
    std::size_t longest = 0, current = 0;
    for (char c : run.resolved_config) {
      current = c == '`' ? current + 1 : 0;
      longest = std::max(longest, current);
    }
    const std::string fence(std::max<std::size_t>(3, longest + 1), '`');
    out << "## Resolved config\n\n" << fence << "toml\n" << run.resolved_config;
    if (run.resolved_config.back() != '\n') out << "\n";
    out << fence << "\n";
  }
  return out.str();
}

ReportPaths write_run_report(const RunRecord& run, const fs::path& out_dir) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec)
    throw sdk::DataError("cannot create output directory '" + out_dir.string() +
                         "': " + ec.message());
  ReportPaths paths{out_dir / "report.html", out_dir / "report.md"};
  // write_lines_atomic ends every line with '\n': hand it the text without its last newline.
  auto write = [](const fs::path& file, std::string text) {
    if (!text.empty() && text.back() == '\n') text.pop_back();
    write_lines_atomic(file.string(), {text});
  };
  write(paths.html, render_report_html(run));
  write(paths.markdown, render_report_markdown(run));
  return paths;
}

ReportPaths write_run_report(const fs::path& run_dir, const fs::path& out_dir) {
  return write_run_report(read_run_directory(run_dir), out_dir);
}

}  // namespace mr::core
