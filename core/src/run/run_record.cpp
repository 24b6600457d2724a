// Reading a run directory back into a RunRecord (run_record.hpp): the one reader of run
// directories, shared by `report` and `compare`.
#include "metareward/core/run/run_record.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "metareward/core/run/run_directory.hpp"
#include "metareward/core/svg_chart.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::core {

namespace fs = std::filesystem;
using json = nlohmann::json;
using svg::format_number;

namespace {

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw sdk::DataError("cannot read '" + file.string() + "'");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw sdk::DataError("read error in '" + file.string() + "'");
  return text.str();
}

/// The part of a nlohmann parse error after its "[json.exception...] parse error at line L,
/// column C: " prefix (the line is reported separately).
std::string parse_error_reason(const json::parse_error& e) {
  const std::string what = e.what();
  const auto column = what.find("column ");
  if (column != std::string::npos) {
    const auto colon = what.find(": ", column);
    if (colon != std::string::npos) return what.substr(colon + 2);
  }
  const auto bracket = what.find("] ");
  return bracket == std::string::npos ? what : what.substr(bracket + 2);
}

/// 1-based line of byte offset `byte` (nlohmann's 1-based error position) in `text`.
std::int64_t line_of(const std::string& text, std::size_t byte) {
  const std::size_t end = std::min(text.size(), byte > 0 ? byte - 1 : 0);
  return 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(end), '\n');
}

/// Parses JSON file `file` into an object; DataError "FILE:LINE: not valid JSON (...)".
json read_json_object(const fs::path& file) {
  const std::string text = read_text(file);
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    throw sdk::DataError(file.string() + ":" + std::to_string(line_of(text, e.byte)) +
                         ": not valid JSON (" + parse_error_reason(e) + ")");
  }
  if (!doc.is_object())
    throw sdk::DataError(file.string() + ": expected a JSON object, got " +
                         std::string(doc.type_name()));
  return doc;
}

/// Collects every number under `value` by dotted path; other leaves (strings, booleans,
/// arrays) go to `others` with their type name, nulls are skipped.
void flatten(const json& value,
             const std::string& prefix,
             std::map<std::string, double>& numbers,
             std::map<std::string, std::string>* others = nullptr) {
  if (value.is_object()) {
    for (const auto& [key, child] : value.items())
      flatten(child, prefix.empty() ? key : prefix + "." + key, numbers, others);
  } else if (value.is_number()) {
    numbers[prefix] = value.get<double>();
  } else if (!value.is_null() && others != nullptr) {
    (*others)[prefix] = value.type_name();
  }
}

/// Throws when `doc[key]` is present and neither null nor an object.
void require_section(const json& doc, const char* key, const fs::path& file) {
  auto it = doc.find(key);
  if (it != doc.end() && !it->is_null() && !it->is_object())
    throw sdk::DataError(file.string() + ": '" + key + "' is " + it->type_name() +
                         ", expected an object or null");
}

/// The numbers of metrics.json the report shows: each must be a number or null when present.
const std::vector<std::string>& displayed_metrics() {
  static const std::vector<std::string> keys = {
      "iteration",
      "iterations",
      "prompts",
      "actor.requests",
      "actor.failed_requests",
      "actor.responses",
      "actor.mean_length_chars",
      "actor.mean_tokens",
      "actor.finish_length",
      "judge.judgments",
      "judge.failed_requests",
      "judge.parsed",
      "judge.parse_failures",
      "judge.parse_failure_rate",
      "judge.score_mean",
      "judge.score_std",
      "judge.responses_without_score",
      "actor_pairs.pairs",
      "actor_pairs.chosen_length_mean",
      "actor_pairs.rejected_length_mean",
      "actor_pairs.chosen_score_mean",
      "actor_pairs.rejected_score_mean",
      "meta_judge.battles",
      "meta_judge.failed_requests",
      "meta_judge.diagnostics.positional_bias",
      "meta_judge.diagnostics.score_bias",
      "judge_pairs.pairs",
      "judge_pairs.chosen_length_mean",
      "judge_pairs.rejected_length_mean",
      "training.pairs",
      "training.steps",
      "training.final.loss",
      "training.final.accuracy",
      "training.final.margin",
  };
  return keys;
}

/// iter_0/metrics.json of a seed stage: its "seed_sft" object's numbers and type.
void read_seed_stage(const fs::path& file, RunRecord& run) {
  const json doc = read_json_object(file);
  require_section(doc, "seed_sft", file);
  if (!doc.contains("seed_sft") || doc["seed_sft"].is_null()) return;
  const json& seed = doc["seed_sft"];
  flatten(seed, "", run.seed_stage);
  run.seed_stage_type = seed.value("type", std::string("?"));
}

/// Skipped rows of one .jsonl file, for a note.
struct RowSkips {
  std::map<std::string, std::int64_t> reasons;
  std::int64_t first_line = 0;
  void add(const std::string& reason, std::int64_t line) {
    ++reasons[reason];
    if (first_line == 0) first_line = line;
  }
  /// "iter_2/train_metrics.jsonl: 2 rows skipped (not valid JSON: 1, ...; first at line 3)".
  std::string note(const std::string& name) const {
    std::int64_t total = 0;
    std::string list;
    for (const auto& [reason, count] : reasons) {
      total += count;
      list += (list.empty() ? "" : ", ") + reason + ": " + std::to_string(count);
    }
    return name + ": " + std::to_string(total) + (total == 1 ? " row" : " rows") + " skipped (" +
           list + "; first at line " + std::to_string(first_line) + ")";
  }
};

/// Calls `row` with each JSON object line of `file` (1-based line number); malformed lines
/// are counted in `skips`. `row` returns a reason to skip, or "" when it took the row.
void read_jsonl(const fs::path& file,
                RowSkips& skips,
                const std::function<std::string(const json&)>& row) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw sdk::DataError("cannot read '" + file.string() + "'");
  std::string line;
  std::int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json doc;
    try {
      doc = json::parse(line);
    } catch (const json::parse_error&) {
      skips.add("not valid JSON", number);
      continue;
    }
    if (!doc.is_object()) {
      skips.add("not a JSON object", number);
      continue;
    }
    const std::string reason = row(doc);
    if (!reason.empty()) skips.add(reason, number);
  }
  if (in.bad())
    throw sdk::DataError(file.string() + ": read error after line " + std::to_string(number));
}

/// A JSON value as one line of text: strings as they are, numbers formatted, arrays joined with
/// ", ", objects as "key: value, ...".
std::string json_text(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_unsigned()) return std::to_string(value.get<std::uint64_t>());
  if (value.is_number_integer()) return std::to_string(value.get<std::int64_t>());
  if (value.is_number()) return format_number(value.get<double>());
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  if (value.is_null()) return "";
  std::string out;
  if (value.is_array()) {
    for (const auto& v : value) out += (out.empty() ? "" : ", ") + json_text(v);
    return out;
  }
  for (const auto& [key, v] : value.items()) {
    const std::string inner = json_text(v);
    out += (out.empty() ? "" : ", ") + key + ": " + (v.is_object() ? "{" + inner + "}" : inner);
  }
  return out;
}

void read_metrics(const fs::path& file, IterationRecord& it) {
  const json doc = read_json_object(file);
  for (const char* section :
       {"actor", "judge", "actor_pairs", "meta_judge", "judge_pairs", "training", "evaluation"})
    require_section(doc, section, file);

  std::map<std::string, std::string> others;
  flatten(doc, "", it.metrics, &others);
  for (const auto& key : displayed_metrics()) {
    auto bad = others.find(key);
    if (bad != others.end())
      throw sdk::DataError(file.string() + ": '" + key + "' is " + bad->second +
                           ", expected a number or null");
  }
  if (auto t = doc.find("train_judge"); t != doc.end() && !t->is_null()) {
    if (!t->is_boolean())
      throw sdk::DataError(file.string() + ": 'train_judge' is " + std::string(t->type_name()) +
                           ", expected true or false");
    it.train_judge = t->get<bool>();
  }
  it.has_meta_judge = doc.contains("meta_judge") && doc["meta_judge"].is_object();
  it.has_judge_pairs = doc.contains("judge_pairs") && doc["judge_pairs"].is_object();

  if (doc.contains("judge") && doc["judge"].is_object()) {
    const json& judge = doc["judge"];
    auto h = judge.find("score_histogram");
    if (h != judge.end() && !h->is_null()) {
      if (!h->is_object())
        throw sdk::DataError(file.string() + ": 'judge.score_histogram' is " +
                             std::string(h->type_name()) + ", expected an object");
      for (const auto& [key, count] : h->items()) {
        std::int64_t bin = 0;
        const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), bin);
        if (ec != std::errc() || end != key.data() + key.size())
          throw sdk::DataError(file.string() + ": 'judge.score_histogram' key '" + key +
                               "' is not an integer score");
        if (!count.is_number())
          throw sdk::DataError(file.string() + ": 'judge.score_histogram." + key + "' is " +
                               std::string(count.type_name()) + ", expected a count");
        it.score_histogram[bin] += std::llround(count.get<double>());
      }
      it.histogram_source = "metrics.json";
    }
  }
  if (doc.contains("actor_pairs") && doc["actor_pairs"].is_object() &&
      doc["actor_pairs"].contains("drops"))
    flatten(doc["actor_pairs"]["drops"], "", it.actor_pair_drops);
  if (it.has_meta_judge && doc["meta_judge"].contains("drops"))
    flatten(doc["meta_judge"]["drops"], "", it.meta_judge_drops);
  if (doc.contains("evaluation")) flatten(doc["evaluation"], "", it.evaluation);
}

/// Bins every parsed score of judgments.jsonl at its nearest integer (the metrics.json rule).
void histogram_from_judgments(const fs::path& file,
                              const std::string& name,
                              IterationRecord& it,
                              std::vector<std::string>& notes) {
  RowSkips skips;
  read_jsonl(file, skips, [&](const json& row) -> std::string {
    auto s = row.find("score");
    if (s == row.end() || s->is_null()) return "";  // a parse failure: no score to bin
    if (!s->is_number()) return "'score' is not a number";
    const double score = s->get<double>();
    if (!std::isfinite(score)) return "'score' is not finite";
    ++it.score_histogram[std::llround(score)];
    return "";
  });
  if (!skips.reasons.empty()) notes.push_back(skips.note(name));
  if (!it.score_histogram.empty()) it.histogram_source = "judgments.jsonl";
}

void read_train_metrics(const fs::path& file,
                        const std::string& name,
                        IterationRecord& it,
                        std::vector<std::string>& notes) {
  RowSkips skips;
  std::map<double, std::map<std::string, double>> by_step;
  read_jsonl(file, skips, [&](const json& row) -> std::string {
    auto s = row.find("step");
    if (s == row.end() || !s->is_number()) return "no numeric 'step'";
    std::map<std::string, double> values;
    flatten(row, "", values);
    values.erase("step");
    by_step[s->get<double>()] = std::move(values);
    return "";
  });
  if (!skips.reasons.empty()) notes.push_back(skips.note(name));
  for (auto& [step, values] : by_step) it.train_steps.push_back({step, std::move(values)});
}

void read_timings(const fs::path& file, IterationRecord& it) {
  const json doc = read_json_object(file);
  for (const char* section : {"stages", "throughput"}) {
    require_section(doc, section, file);
    if (!doc.contains(section) || doc[section].is_null()) continue;
    std::map<std::string, std::string> others;
    auto& target = std::string(section) == "stages" ? it.stage_seconds : it.throughput;
    flatten(doc[section], "", target, &others);
    if (!others.empty())
      throw sdk::DataError(file.string() + ": '" + section + "." + others.begin()->first + "' is " +
                           others.begin()->second + ", expected a number");
  }
  it.has_timings = true;
}

void read_manifest(const fs::path& file, RunRecord& run) {
  const json doc = read_json_object(file);
  run.has_manifest = true;
  static const std::vector<std::string> order = {"metareward_version",
                                                 "git_revision",
                                                 "plugin_api_version",
                                                 "build_fingerprint",
                                                 "config_file",
                                                 "config_sha256",
                                                 "seed",
                                                 "iterations",
                                                 "threads",
                                                 "roles",
                                                 "prompt_pool"};
  std::set<std::string> shown;
  auto add = [&](const std::string& key) {
    shown.insert(key);
    auto v = doc.find(key);
    if (v == doc.end() || v->is_null()) return;
    run.manifest_fields.emplace_back(key, json_text(*v));
  };
  for (const auto& key : order) add(key);
  // Keys a later version adds, in name order, so that nothing the manifest says is hidden.
  for (const auto& [key, value] : doc.items())
    if (!shown.count(key) && key != "plugins" && key != "models") add(key);

  if (auto n = doc.find("iterations"); n != doc.end() && !n->is_null()) {
    if (!n->is_number_integer())
      throw sdk::DataError(file.string() + ": 'iterations' is " + std::string(n->type_name()) +
                           ", expected an integer");
    run.planned_iterations = n->get<int>();
  }
  if (auto p = doc.find("plugins"); p != doc.end() && !p->is_null()) {
    if (!p->is_array())
      throw sdk::DataError(file.string() + ": 'plugins' is " + std::string(p->type_name()) +
                           ", expected an array");
    for (const auto& entry : *p) {
      if (!entry.is_object())
        throw sdk::DataError(file.string() + ": a 'plugins' entry is " +
                             std::string(entry.type_name()) + ", expected an object");
      auto field = [&](const char* key) {
        return entry.contains(key) ? json_text(entry[key]) : std::string();
      };
      run.plugins.push_back(
          {field("name"), field("kind"), field("version"), field("library"), field("sha256")});
    }
  }
  if (auto m = doc.find("models"); m != doc.end() && !m->is_null()) {
    if (!m->is_object())
      throw sdk::DataError(file.string() + ": 'models' is " + std::string(m->type_name()) +
                           ", expected an object");
    for (const auto& [name, model] : m->items()) {
      auto& fields = run.models[name];
      if (!model.is_object()) {
        fields["value"] = json_text(model);
        continue;
      }
      for (const auto& [key, value] : model.items()) fields[key] = json_text(value);
    }
  }
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : separator) + s;
  return out;
}

/// "iteration 4" or "iterations 3-5".
std::string iteration_range(int first, int last) {
  return first == last ? "iteration " + std::to_string(first)
                       : "iterations " + std::to_string(first) + "-" + std::to_string(last);
}

}  // namespace

std::optional<double> IterationRecord::metric(const std::string& path) const {
  auto it = metrics.find(path);
  if (it == metrics.end()) return std::nullopt;
  return it->second;
}

std::vector<const IterationRecord*> RunRecord::complete() const {
  std::vector<const IterationRecord*> out;
  for (const auto& it : iterations)
    if (it.complete) out.push_back(&it);
  return out;
}

std::map<std::string, double> read_evaluation_metrics(const fs::path& file, int* iteration) {
  const json doc = read_json_object(file);
  if (iteration != nullptr)
    *iteration = doc.contains("iteration") && doc["iteration"].is_number_integer()
                     ? doc["iteration"].get<int>()
                     : 0;
  require_section(doc, "evaluation", file);
  std::map<std::string, double> out;
  if (!doc.contains("evaluation") || doc["evaluation"].is_null()) return out;
  for (const auto& [key, value] : doc["evaluation"].items()) {
    if (value.is_null()) continue;
    if (!value.is_number())
      throw sdk::DataError(file.string() + ": evaluation \"" + key + "\" is " +
                           std::string(value.type_name()) + ", expected a number");
    out[key] = value.get<double>();
  }
  return out;
}

RunRecord read_run_directory(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec))
    throw sdk::DataError("run directory '" + dir.string() + "' does not exist");
  if (!fs::is_directory(dir, ec)) throw sdk::DataError("'" + dir.string() + "' is not a directory");

  const RunDirectory layout(dir);
  RunRecord run;
  run.dir = dir;
  if (fs::exists(layout.manifest(), ec))
    read_manifest(layout.manifest(), run);
  else
    run.notes.push_back("manifest.json missing: versions, plugins and seed are unknown");
  if (fs::is_regular_file(layout.config_record(), ec))
    run.resolved_config = read_text(layout.config_record());

  const std::map<int, fs::path> iteration_dirs = layout.iteration_dirs();
  for (const auto& [t, path] : iteration_dirs) {
    IterationRecord it;
    it.iteration = t;
    for (const auto& entry : fs::directory_iterator(path))
      it.files.push_back(entry.path().filename().string() + (entry.is_directory() ? "/" : ""));
    std::sort(it.files.begin(), it.files.end());
    const std::string prefix = "iter_" + std::to_string(t) + "/";
    // A present record is read, so that a broken one is an error naming its file (and line);
    // one that parses but is not this iteration's says how to redo it.
    it.complete = fs::exists(layout.metrics(t), ec);
    if (it.complete) {
      read_metrics(layout.metrics(t), it);
      if (const std::string problem = layout.completion_problem(t); !problem.empty())
        throw sdk::DataError(layout.metrics(t).string() + " " + problem +
                             ": `metareward run CONFIG --resume` sets it aside and redoes "
                             "iteration " +
                             std::to_string(t));
    }
    const fs::path judgments = layout.file(t, RunDirectory::kJudgments);
    if (it.complete && it.score_histogram.empty() && fs::exists(judgments, ec))
      histogram_from_judgments(judgments, prefix + RunDirectory::kJudgments, it, run.notes);
    const fs::path train_metrics = layout.file(t, RunDirectory::kTrainMetrics);
    if (fs::exists(train_metrics, ec))
      read_train_metrics(train_metrics, prefix + RunDirectory::kTrainMetrics, it, run.notes);
    const fs::path timings = layout.file(t, RunDirectory::kTimings);
    if (fs::exists(timings, ec)) read_timings(timings, it);
    run.iterations.push_back(std::move(it));
  }

  if (layout.complete(0)) run.seed_evaluation = read_evaluation_metrics(layout.metrics(0));
  if (layout.seed_stage_complete()) read_seed_stage(layout.seed_stage_metrics(), run);

  const auto complete = run.complete();
  if (complete.empty()) {
    std::string message =
        "'" + dir.string() + "' has no complete iteration (no iter_T/metrics.json)";
    if (!run.iterations.empty())
      message += "; iteration " + std::to_string(run.iterations.front().iteration) +
                 " has started but not finished";
    else if (!run.has_manifest)
      message += " and no manifest.json; is it a run directory?";
    throw sdk::DataError(message);
  }
  if (!run.planned_iterations) {
    for (const auto* it : complete)
      if (auto n = it->metric("iterations"))
        run.planned_iterations = std::max(run.planned_iterations.value_or(0), static_cast<int>(*n));
  }

  // Notes on gaps, unfinished and unstarted iterations, in iteration order, before the
  // skipped-row notes gathered while reading.
  std::vector<std::string> gaps;
  const int last_dir = iteration_dirs.rbegin()->first;
  for (int t = 1; t <= last_dir; ++t) {
    auto found = std::find_if(run.iterations.begin(), run.iterations.end(),
                              [t](const IterationRecord& it) { return it.iteration == t; });
    if (found == run.iterations.end()) {
      gaps.push_back("iteration " + std::to_string(t) + " missing (no iter_" + std::to_string(t) +
                     " directory)");
    } else if (!found->complete) {
      gaps.push_back("iteration " + std::to_string(t) + " incomplete (no metrics.json; " +
                     (found->files.empty() ? std::string("the directory is empty")
                                           : "present: " + join(found->files, ", ")) +
                     ")");
    }
  }
  if (run.planned_iterations && *run.planned_iterations > last_dir)
    gaps.push_back(iteration_range(last_dir + 1, *run.planned_iterations) +
                   " not started (the run plans " + std::to_string(*run.planned_iterations) + ")");
  run.notes.insert(run.notes.begin(), gaps.begin(), gaps.end());
  return run;
}

}  // namespace mr::core
