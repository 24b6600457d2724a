// The run report: reading a run directory (complete, null-meta-judge, incomplete, missing and
// unstarted iterations, skipped rows, malformed files), the HTML page with its inline SVG plots
// and tables, the Markdown tables, the atomic writer, and the SVG chart helper underneath.
//
// One file (~650 lines): the cases share one synthetic run directory writer; a split would
// duplicate it.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "metareward/core/run_report.hpp"
#include "metareward/core/svg_chart.hpp"
#include "metareward/sdk/error.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using mr::core::read_run_directory;
using mr::core::render_report_html;
using mr::core::render_report_markdown;
using mr::core::RunRecord;

namespace {

using mr::tests::TempDir;

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Iteration 1's metrics.json: the example of docs/run_artifacts.md (a judge-training iteration).
json metrics_iteration_1() {
  return json::parse(R"({
  "iteration": 1, "iterations": 4, "train_judge": true,
  "prompts": 20,
  "actor":   {"requests": 20, "failed_requests": 0, "responses": 80,
              "mean_length_chars": 412.5, "mean_tokens": 98.1, "finish_length": 3},
  "judge":   {"judgments": 320, "failed_requests": 0, "parsed": 301, "parse_failures": 19,
              "parse_failure_rate": 0.059, "score_mean": 3.12, "score_std": 1.01,
              "score_histogram": {"0": 2, "1": 10, "2": 50, "3": 120, "4": 90, "5": 29},
              "responses_without_score": 1},
  "actor_pairs": {"pairs": 14, "drops": {"all_scores_equal": 6},
                  "chosen_length_mean": 380.2, "rejected_length_mean": 455.0,
                  "chosen_score_mean": 4.1, "rejected_score_mean": 2.3},
  "meta_judge": {"battles": 240, "failed_requests": 0,
                 "diagnostics": {"positional_bias": 0.61, "score_bias": 0.55,
                                 "verdict_parse_failure_rate": 0.02, "elo_spread": 180.0},
                 "drops": {"no_verdicts": 1}},
  "judge_pairs": {"pairs": 12, "chosen_length_mean": 300.0, "rejected_length_mean": 350.0},
  "training": {"pairs": 26, "steps": 4,
               "final": {"loss": 0.62, "accuracy": 0.75, "margin": 0.31}},
  "evaluation": {}
})");
}

/// Iteration 2: the judge is not trained (meta_judge and judge_pairs null), an evaluation hook.
json metrics_iteration_2() {
  json m = metrics_iteration_1();
  m["iteration"] = 2;
  m["train_judge"] = false;
  m["actor"]["mean_length_chars"] = 398.25;
  m["judge"]["parse_failure_rate"] = 0.0125;
  m["judge"]["score_mean"] = 3.5;
  m["judge"]["score_std"] = 0.9;
  m["judge"]["score_histogram"] = {{"2", 10}, {"3", 150}, {"4", 150}, {"5", 6}};
  m["actor_pairs"]["pairs"] = 15;
  m["actor_pairs"]["chosen_length_mean"] = 350;
  m["actor_pairs"]["rejected_length_mean"] = 420.5;
  m["meta_judge"] = nullptr;
  m["judge_pairs"] = nullptr;
  m["training"] = {
      {"pairs", 15}, {"steps", 3}, {"final", {{"loss", 0.55}, {"accuracy", 0.8}, {"margin", 0.4}}}};
  m["evaluation"] = {{"win_rate", 0.4}, {"length_controlled/win rate", 0.375}};
  return m;
}

/// `n` train_metrics.jsonl rows: loss falls, accuracy and margin rise with the step.
std::string train_rows(int n, double offset) {
  std::string text;
  for (int s = 1; s <= n; ++s) {
    json row = {{"step", s},
                {"loss", 0.7 - 0.02 * s - offset},
                {"lr", 5e-7},
                {"grad_norm", 1.5},
                {"epoch", 0},
                {"accuracy", 0.5 + 0.05 * s},
                {"margin", 0.1 * s + offset}};
    text += row.dump() + "\n";
  }
  return text;
}

std::string manifest_text() {
  return json::parse(R"({
  "metareward_version": "0.3.0", "git_revision": "abc1234", "plugin_api_version": 3,
  "build_fingerprint": "gcc-12 release", "config_file": "configs/a&b<c>.toml",
  "config_sha256": "ff00", "seed": 11, "iterations": 4, "threads": 2,
  "plugins": [{"name": "additive5", "kind": "judge_rubric", "version": "1.0.0",
               "library": "/opt/lib/libmr_recipe.so", "sha256": "deadbeef"},
              {"name": "dpo", "kind": "optimizer", "version": "1.1.0",
               "library": "/opt/lib/libmr_optimizers.so", "sha256": "cafef00d"}],
  "models": {"policy": {"architecture": "llama", "path": "/models/policy",
                        "parameters": 1000000, "context_length": 2048}},
  "roles": {"actor": "policy", "judge": "policy", "meta_judge": "policy"},
  "prompt_pool": {"files": ["prompts.jsonl"], "rows": 100, "accepted": 98, "pool": 98,
                  "duplicates": 2, "dropped": {}}
})")
      .dump(2);
}

/// A run planned for 4 iterations: 1 complete (judge trained), 2 complete (meta_judge null, one
/// bad train_metrics row), 3 started but not finished, 4 not started.
void write_run(const TempDir& dir) {
  dir.write("manifest.json", manifest_text());
  dir.write("config.resolved.toml", "[run]\niterations = 4\nseed = 11\n");
  dir.write("iter_1/metrics.json", metrics_iteration_1().dump(2));
  dir.write("iter_1/train_metrics.jsonl", train_rows(4, 0));
  dir.write("iter_1/timings.json",
            R"({"stages": {"prompts": 0.5, "actor": 12.25, "judge": 30, "train": 8, "total": 50.75},
                "throughput": {"actor_tokens_per_s": 640.5, "train_tokens_per_s": 1200}})");
  dir.write("iter_1/prompts.jsonl", "{}\n");
  dir.write("iter_2/metrics.json", metrics_iteration_2().dump(2));
  std::string rows = train_rows(3, 0.1);
  rows.insert(rows.find('\n') + 1, "{not json\n");
  dir.write("iter_2/train_metrics.jsonl", rows);
  dir.write("iter_3/prompts.jsonl", "{}\n");
  dir.write("iter_3/responses.jsonl", "{}\n");
  dir.write("iter_3/train_metrics.jsonl", train_rows(2, 0.2));
}

/// The <svg> element with id `id` ("" when absent).
std::string svg_element(const std::string& html, const std::string& id) {
  const auto start = html.find("<svg id=\"" + id + "\"");
  if (start == std::string::npos) return "";
  const auto end = html.find("</svg>", start);
  return html.substr(start, end + 6 - start);
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
    ++n;
  return n;
}

/// The number of "x,y" points of the polyline of series `name` (-1 when there is none).
int polyline_points(const std::string& svg, const std::string& name) {
  const auto start = svg.find("<polyline class=\"series\" data-series=\"" + name + "\"");
  if (start == std::string::npos) return -1;
  const auto points = svg.find("points=\"", start) + 8;
  const std::string list = svg.substr(points, svg.find('"', points) - points);
  return static_cast<int>(count_of(list, ",") == 0 ? 0 : count_of(list, " ") + 1);
}

/// The cells of the HTML table row of `table_id` whose first cell is `first`.
std::vector<std::string> html_row(const std::string& html,
                                  const std::string& table_id,
                                  const std::string& first) {
  const auto table = html.find("<table id=\"" + table_id + "\"");
  const auto end = html.find("</table>", table);
  std::vector<std::string> cells;
  auto row = html.find("<tr><td", table);
  while (row != std::string::npos && row < end) {
    cells.clear();
    const auto row_end = html.find("</tr>", row);
    for (auto td = html.find("<td", row); td != std::string::npos && td < row_end;
         td = html.find("<td", td + 1)) {
      const auto open = html.find('>', td) + 1;
      cells.push_back(html.substr(open, html.find("</td>", open) - open));
    }
    if (!cells.empty() && cells[0] == first) return cells;
    row = html.find("<tr><td", row_end);
  }
  return {};
}

std::string data_error_of(const fs::path& dir) {
  try {
    read_run_directory(dir);
  } catch (const mr::sdk::DataError& e) {
    return e.what();
  }
  FAIL("expected a DataError for " << dir);
  return "";
}

}  // namespace

TEST_CASE("run report: reading a run directory", "[report]") {
  TempDir dir("read");
  write_run(dir);
  const RunRecord run = read_run_directory(dir.path());

  SECTION("every iter_T directory is read, complete or not, by T") {
    REQUIRE(run.iterations.size() == 3);
    CHECK(run.iterations[0].complete);
    CHECK(run.iterations[1].complete);
    CHECK_FALSE(run.iterations[2].complete);
    CHECK(run.complete().size() == 2);
    REQUIRE(run.planned_iterations);
    CHECK(*run.planned_iterations == 4);
  }

  SECTION("metrics are read by dotted path; null sections are absent, not errors") {
    const auto& it1 = run.iterations[0];
    const auto& it2 = run.iterations[1];
    CHECK(it1.metric("judge.score_mean") == 3.12);
    CHECK(it1.metric("meta_judge.diagnostics.positional_bias") == 0.61);
    CHECK(it1.metric("training.final.margin") == 0.31);
    CHECK(it1.has_meta_judge);
    CHECK(it1.train_judge == true);
    CHECK_FALSE(it2.has_meta_judge);
    CHECK_FALSE(it2.has_judge_pairs);
    CHECK(it2.train_judge == false);
    CHECK_FALSE(it2.metric("meta_judge.battles"));
    CHECK_FALSE(it2.metric("no.such.key"));
    CHECK(it1.score_histogram.at(3) == 120);
    CHECK(it1.histogram_source == "metrics.json");
    CHECK(it1.actor_pair_drops.at("all_scores_equal") == 6);
    CHECK(it1.meta_judge_drops.at("no_verdicts") == 1);
    CHECK(it2.evaluation.at("win_rate") == 0.4);
    CHECK(it1.stage_seconds.at("actor") == 12.25);
    CHECK(it1.throughput.at("train_tokens_per_s") == 1200);
    CHECK_FALSE(it2.has_timings);
  }

  SECTION("train_metrics rows are read per step, also for an incomplete iteration") {
    CHECK(run.iterations[0].train_steps.size() == 4);
    CHECK(run.iterations[1].train_steps.size() == 3);  // the bad row skipped
    CHECK(run.iterations[2].train_steps.size() == 2);
    CHECK(run.iterations[0].train_steps[3].step == 4);
    CHECK(run.iterations[0].train_steps[3].values.at("accuracy") == Approx(0.7));
  }

  SECTION("notes name the incomplete and unstarted iterations and the skipped rows") {
    REQUIRE(run.notes.size() == 3);
    CHECK(run.notes[0] ==
          "iteration 3 incomplete (no metrics.json; present: prompts.jsonl, responses.jsonl, "
          "train_metrics.jsonl)");
    CHECK(run.notes[1] == "iteration 4 not started (the run plans 4)");
    CHECK(run.notes[2] ==
          "iter_2/train_metrics.jsonl: 1 row skipped (not valid JSON: 1; first at line 2)");
  }

  SECTION("the manifest basics are kept in display order") {
    REQUIRE(run.has_manifest);
    REQUIRE(run.manifest_fields.size() >= 3);
    CHECK(run.manifest_fields[0] ==
          std::pair<std::string, std::string>("metareward_version", "0.3.0"));
    CHECK(run.manifest_fields[1] == std::pair<std::string, std::string>("git_revision", "abc1234"));
    REQUIRE(run.plugins.size() == 2);
    CHECK(run.plugins[1].name == "dpo");
    CHECK(run.plugins[1].sha256 == "cafef00d");
    CHECK(run.models.at("policy").at("context_length") == "2048");
    CHECK(run.resolved_config == "[run]\niterations = 4\nseed = 11\n");
  }
}

TEST_CASE("run report: gaps and fallbacks", "[report]") {
  TempDir dir("gaps");

  SECTION("a missing iteration directory between complete ones is a note") {
    dir.write("iter_1/metrics.json", metrics_iteration_1().dump());
    json m3 = metrics_iteration_2();
    m3["iteration"] = 3;
    dir.write("iter_3/metrics.json", m3.dump());
    const RunRecord run = read_run_directory(dir.path());
    CHECK(run.complete().size() == 2);
    REQUIRE(run.notes.size() >= 3);
    CHECK(run.notes[0] == "iteration 2 missing (no iter_2 directory)");
    CHECK(run.notes[1] == "iteration 4 not started (the run plans 4)");  // from metrics.json
    CHECK(run.notes.back() == "manifest.json missing: versions, plugins and seed are unknown");
  }

  SECTION("without score_histogram the histogram is counted from judgments.jsonl") {
    json m = metrics_iteration_1();
    m["judge"].erase("score_histogram");
    dir.write("iter_1/metrics.json", m.dump());
    dir.write("iter_1/judgments.jsonl",
              "{\"score\": 4.4}\n{\"score\": 3.6}\n{\"score\": null, \"parse_error\": \"x\"}\n"
              "{\"score\": 2}\n\n{\"score\": \"five\"}\n");
    const RunRecord run = read_run_directory(dir.path());
    const auto& h = run.iterations[0].score_histogram;
    CHECK(h == std::map<std::int64_t, std::int64_t>{{2, 1}, {4, 2}});
    CHECK(run.iterations[0].histogram_source == "judgments.jsonl");
    CHECK(run.notes.back() ==
          "iter_1/judgments.jsonl: 1 row skipped ('score' is not a number: 1; first at line 6)");
  }

  SECTION("other directories and iter_ names that are not numbers are ignored") {
    dir.write("iter_1/metrics.json", metrics_iteration_1().dump());
    fs::create_directories(dir.path() / "iter_x");
    fs::create_directories(dir.path() / "iter_01");
    fs::create_directories(dir.path() / "logs");
    const RunRecord run = read_run_directory(dir.path());
    REQUIRE(run.iterations.size() == 1);
    CHECK(run.iterations[0].iteration == 1);
  }
}

TEST_CASE("run report: errors name the directory, file and line", "[report]") {
  TempDir dir("errors");

  SECTION("a directory that does not exist") {
    CHECK_THAT(
        data_error_of(dir.path() / "nope"),
        Catch::Contains("run directory '" + (dir.path() / "nope").string() + "' does not exist"));
  }
  SECTION("an empty directory has no complete iteration") {
    const std::string message = data_error_of(dir.path());
    CHECK_THAT(message, Catch::Contains("has no complete iteration (no iter_T/metrics.json)"));
    CHECK_THAT(message, Catch::Contains("is it a run directory?"));
  }
  SECTION("only an unfinished iteration is still no complete iteration") {
    dir.write("iter_1/prompts.jsonl", "{}\n");
    CHECK_THAT(data_error_of(dir.path()),
               Catch::Contains("iteration 1 has started but not finished"));
  }
  SECTION("metrics.json that is not valid JSON names the file and line") {
    dir.write("iter_1/metrics.json", metrics_iteration_1().dump());
    dir.write("iter_2/metrics.json", "{\n  \"iteration\": 2,\n  \"prompts\": ,\n}\n");
    const std::string message = data_error_of(dir.path());
    CHECK_THAT(message, Catch::Contains((dir.path() / "iter_2" / "metrics.json").string() + ":3:"));
    CHECK_THAT(message, Catch::Contains("not valid JSON"));
  }
  SECTION("a displayed metric of the wrong type names its path") {
    json m = metrics_iteration_1();
    m["judge"]["score_mean"] = "high";
    dir.write("iter_1/metrics.json", m.dump());
    CHECK_THAT(data_error_of(dir.path()),
               Catch::Contains("metrics.json: 'judge.score_mean' is string, expected a number"));
  }
  SECTION("a histogram key that is not an integer") {
    json m = metrics_iteration_1();
    m["judge"]["score_histogram"]["3.5"] = 1;
    dir.write("iter_1/metrics.json", m.dump());
    CHECK_THAT(data_error_of(dir.path()),
               Catch::Contains("'judge.score_histogram' key '3.5' is not an integer score"));
  }
  SECTION("a section that is not an object") {
    json m = metrics_iteration_1();
    m["meta_judge"] = 5;
    dir.write("iter_1/metrics.json", m.dump());
    CHECK_THAT(data_error_of(dir.path()),
               Catch::Contains("'meta_judge' is number, expected an object or null"));
  }
  SECTION("a bad manifest.json or timings.json names the file") {
    dir.write("iter_1/metrics.json", metrics_iteration_1().dump());
    dir.write("manifest.json", "[1, 2");
    CHECK_THAT(data_error_of(dir.path()),
               Catch::Contains((dir.path() / "manifest.json").string() + ":1: not valid JSON"));
    fs::remove(dir.path() / "manifest.json");
    dir.write("iter_1/timings.json", R"({"stages": {"actor": "slow"}})");
    CHECK_THAT(data_error_of(dir.path()),
               Catch::Contains("timings.json: 'stages.actor' is string, expected a number"));
  }
}

TEST_CASE("run report: the HTML page", "[report]") {
  TempDir dir("html");
  write_run(dir);
  const RunRecord run = read_run_directory(dir.path());
  const std::string html = render_report_html(run);

  SECTION("every plot is an inline <svg> with its stable id") {
    for (const char* id : {"plot-scores", "plot-score-histogram", "plot-lengths", "plot-biases",
                           "plot-dpo-loss", "plot-dpo-accuracy", "plot-dpo-margin",
                           "plot-eval-win-rate", "plot-eval-length-controlled-win-rate"}) {
      INFO(id);
      CHECK(count_of(html, std::string("<svg id=\"") + id + "\"") == 1);
    }
  }

  SECTION("the page is self-contained: no script, no external resource") {
    CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
    CHECK(count_of(html, "<script") == 0);
    CHECK(count_of(html, "http://") == 0);
    CHECK(count_of(html, "https://") == 0);
    CHECK(count_of(html, "<link") == 0);
    CHECK(count_of(html, "src=") == 0);
  }

  SECTION("DPO curves: one polyline per iteration with one point per step") {
    for (const char* metric : {"loss", "accuracy", "margin"}) {
      const std::string svg = svg_element(html, std::string("plot-dpo-") + metric);
      INFO(metric);
      CHECK(polyline_points(svg, "iteration 1") == 4);
      CHECK(polyline_points(svg, "iteration 2") == 3);
      CHECK(polyline_points(svg, "iteration 3 (incomplete)") == 2);
      CHECK(count_of(svg, "<circle class=\"marker\"") == 9);
    }
    CHECK_THAT(svg_element(html, "plot-dpo-loss"),
               Catch::Contains("<title>iteration 1: x = 4, y = 0.62</title>"));
  }

  SECTION("judge scores: a mean line over iterations and grouped histogram bars") {
    const std::string scores = svg_element(html, "plot-scores");
    CHECK(polyline_points(scores, "score mean (all judgments)") == 2);
    CHECK_THAT(scores, Catch::Contains("y = 3.12</title>"));
    const std::string histogram = svg_element(html, "plot-score-histogram");
    CHECK(count_of(histogram, "<rect class=\"bar\"") == 12);  // bins 0..5 x 2 iterations
    CHECK_THAT(histogram, Catch::Contains("<title>iteration 1, 3: 120</title>"));
    CHECK_THAT(histogram, Catch::Contains("<title>iteration 2, 0: 0</title>"));
  }

  SECTION("lengths: actor mean and the chosen and rejected sides of the actor pairs") {
    const std::string lengths = svg_element(html, "plot-lengths");
    CHECK(polyline_points(lengths, "actor responses") == 2);
    CHECK(polyline_points(lengths, "actor pairs: chosen") == 2);
    CHECK(polyline_points(lengths, "actor pairs: rejected") == 2);
    CHECK_THAT(lengths, Catch::Contains("x = 2, y = 398.25"));
  }

  SECTION("biases: only the judge-training iteration, with a 0.5 reference line") {
    const std::string biases = svg_element(html, "plot-biases");
    CHECK(count_of(biases, "<rect class=\"bar\"") == 2);
    CHECK_THAT(biases, Catch::Contains("<title>positional bias, 1: 0.61</title>"));
    CHECK_THAT(biases, Catch::Contains("<title>score bias, 1: 0.55</title>"));
    CHECK(count_of(biases, "class=\"reference\"") == 1);
    CHECK_THAT(biases, Catch::Contains("0.5 = no bias"));
  }

  SECTION("the summary table holds the metrics.json numbers") {
    CHECK(html_row(html, "table-summary", "1") ==
          std::vector<std::string>{"1", "yes", "20", "80", "320", "0.059", "3.12", "1.01", "14",
                                   "12", "4", "0.62", "0.75", "0.31"});
    CHECK(html_row(html, "table-summary", "2") ==
          std::vector<std::string>{"2", "no", "20", "80", "320", "0.0125", "3.5", "0.9", "15", "—",
                                   "3", "0.55", "0.8", "0.4"});
    CHECK(html_row(html, "table-summary", "3").empty());  // incomplete: a note, not a row
  }

  SECTION("timings, meta-judge, manifest and evaluation tables") {
    CHECK(html_row(html, "table-stages", "1") ==
          std::vector<std::string>{"1", "0.5", "12.25", "30", "8", "50.75"});
    CHECK(html_row(html, "table-meta-judge", "1") ==
          std::vector<std::string>{"1", "240", "0", "0.61", "0.55", "0.02", "180", "no_verdicts: 1",
                                   "12", "300", "350"});
    CHECK(html_row(html, "table-meta-judge", "2").empty());
    CHECK(html_row(html, "table-manifest", "seed") == std::vector<std::string>{"seed", "11"});
    CHECK(html_row(html, "table-plugins", "additive5") ==
          std::vector<std::string>{"additive5", "judge_rubric", "1.0.0", "/opt/lib/libmr_recipe.so",
                                   "deadbeef"});
    CHECK(html_row(html, "table-evaluation", "2") == std::vector<std::string>{"2", "0.375", "0.4"});
    CHECK(html_row(html, "table-evaluation", "1") == std::vector<std::string>{"1", "—", "—"});
  }

  SECTION("notes and text from the run are escaped") {
    CHECK_THAT(html, Catch::Contains("<li>iteration 3 incomplete (no metrics.json; present: "
                                     "prompts.jsonl, responses.jsonl, train_metrics.jsonl)</li>"));
    CHECK_THAT(html, Catch::Contains("configs/a&amp;b&lt;c&gt;.toml"));
    CHECK(count_of(html, "a&b<c>") == 0);
    CHECK_THAT(html, Catch::Contains("<pre>[run]\niterations = 4\nseed = 11\n</pre>"));
    CHECK_THAT(html, Catch::Contains("2 of 4 planned iterations complete."));
  }

  SECTION("rendering is deterministic") {
    CHECK(render_report_html(read_run_directory(dir.path())) == html);
  }
}

TEST_CASE("run report: without judge training or training rows", "[report]") {
  TempDir dir("nojudge");
  json m = metrics_iteration_2();
  m["iteration"] = 1;
  m["iterations"] = 1;
  m["evaluation"] = json::object();
  dir.write("iter_1/metrics.json", m.dump());
  const RunRecord run = read_run_directory(dir.path());
  const std::string html = render_report_html(run);
  CHECK(svg_element(html, "plot-biases").empty());
  CHECK(svg_element(html, "plot-dpo-loss").empty());
  CHECK(count_of(html, "plot-eval-") == 0);
  CHECK_THAT(html, Catch::Contains("No complete iteration trained the judge"));
  CHECK_THAT(html, Catch::Contains("No train_metrics.jsonl rows."));
  const std::string md = render_report_markdown(run);
  CHECK_THAT(md, Catch::Contains("No complete iteration trained the judge"));
  CHECK(count_of(md, "## Evaluation") == 0);
}

TEST_CASE("run report: the seed model's evaluation is iteration 0", "[report]") {
  TempDir dir("seed_eval");
  json m = metrics_iteration_2();
  m["iteration"] = 1;
  m["iterations"] = 1;
  m["evaluation"] = {{"win_rate", 0.4}};
  dir.write("iter_1/metrics.json", m.dump());
  dir.write("iter_0/eval/metrics.json",
            json({{"iteration", 0}, {"evaluation", {{"win_rate", 0.5}}}}).dump());
  const RunRecord run = read_run_directory(dir.path());
  CHECK(run.seed_evaluation.at("win_rate") == 0.5);
  const std::string html = render_report_html(run);
  CHECK(html_row(html, "table-evaluation", "0 (seed)") ==
        std::vector<std::string>{"0 (seed)", "0.5"});
  CHECK(html_row(html, "table-evaluation", "1") == std::vector<std::string>{"1", "0.4"});
  CHECK(polyline_points(svg_element(html, "plot-eval-win-rate"), "win_rate") == 2);
  CHECK_THAT(render_report_markdown(run), Catch::Contains("| 0 (seed) | 0.5 |"));
  // iter_0 is not an iteration of the loop: no "incomplete" or "missing" note for it.
  for (const auto& note : run.notes) CHECK_THAT(note, !Catch::Contains("iteration 0"));
}

TEST_CASE("run report: the Markdown report", "[report]") {
  TempDir dir("md");
  write_run(dir);
  const std::string md = render_report_markdown(read_run_directory(dir.path()));

  SECTION("the summary table rows equal the inputs") {
    CHECK_THAT(md, Catch::Contains("| Iteration | Judge trained | Prompts | Responses | Judgments "
                                   "| Parse failure rate | Score mean |"));
    CHECK_THAT(md, Catch::Contains(
                       "\n| 1 | yes | 20 | 80 | 320 | 0.059 | 3.12 | 1.01 | 14 | 12 | 4 | 0.62 | "
                       "0.75 | 0.31 |\n"));
    CHECK_THAT(
        md, Catch::Contains("\n| 2 | no | 20 | 80 | 320 | 0.0125 | 3.5 | 0.9 | 15 | — | 3 | 0.55 | "
                            "0.8 | 0.4 |\n"));
  }
  SECTION("the plot data as tables") {
    CHECK_THAT(md, Catch::Contains("| Score | Iteration 1 | Iteration 2 |\n| ---: | ---: | ---: |\n"
                                   "| 0 | 2 | 0 |\n"));
    CHECK_THAT(md, Catch::Contains("| 5 | 29 | 6 |\n"));
    CHECK_THAT(md, Catch::Contains("| 2 | 398.25 | 350 | 420.5 |\n"));   // lengths
    CHECK_THAT(md, Catch::Contains("| 1 | 0.61 | 0.55 |\n"));            // biases
    CHECK_THAT(md, Catch::Contains("| 1 | 4 | 0.62 | 0.7 | 0.4 |\n"));   // DPO, last step
    CHECK_THAT(md, Catch::Contains("| 3* | 2 | 0.46 | 0.6 | 0.4 |\n"));  // incomplete iteration
    CHECK_THAT(md, Catch::Contains("| Iteration | length_controlled/win rate | win_rate |"));
  }
  SECTION("notes, manifest and the resolved config") {
    CHECK_THAT(md, Catch::Contains("## Notes\n\n- iteration 3 incomplete (no metrics.json;"));
    CHECK_THAT(md, Catch::Contains("- iteration 4 not started (the run plans 4)\n"));
    CHECK_THAT(md, Catch::Contains("| git_revision | abc1234 |\n"));
    CHECK_THAT(md, Catch::Contains("```toml\n[run]\niterations = 4\nseed = 11\n```\n"));
  }
  SECTION("a pipe inside a cell is escaped") {
    TempDir pipe("pipe");
    json m = metrics_iteration_1();
    m["actor_pairs"]["drops"] = {{"a|b", 2}};
    pipe.write("iter_1/metrics.json", m.dump());
    CHECK_THAT(render_report_markdown(read_run_directory(pipe.path())),
               Catch::Contains("a\\|b: 2"));
  }
}

TEST_CASE("run report: write_run_report writes both files", "[report]") {
  TempDir dir("write");
  write_run(dir);
  const fs::path out = dir.path() / "reports" / "nested";
  const auto paths = mr::core::write_run_report(dir.path(), out);
  CHECK(paths.html == out / "report.html");
  CHECK(paths.markdown == out / "report.md");
  const RunRecord run = read_run_directory(dir.path());
  CHECK(read_text(paths.html) == render_report_html(run));
  CHECK(read_text(paths.markdown) == render_report_markdown(run));
  // Nothing but the two reports: no temporary file left behind.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(out)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"report.html", "report.md"});
}

TEST_CASE("svg chart: numbers, ticks and escaping", "[report][svg]") {
  using mr::core::svg::format_number;
  using mr::core::svg::nice_ticks;
  SECTION("format_number is fixed and trimmed") {
    CHECK(format_number(80) == "80");
    CHECK(format_number(3.12) == "3.12");
    CHECK(format_number(0.059) == "0.059");
    CHECK(format_number(1.0 / 3) == "0.3333");
    CHECK(format_number(-2.5) == "-2.5");
    CHECK(format_number(-0.0) == "0");
    CHECK(format_number(5e-7) == "5e-07");
    CHECK(format_number(1.25e-5) == "1.25e-05");
    CHECK(format_number(0.001) == "0.001");
    CHECK(format_number(1234567) == "1234567");
    CHECK(format_number(std::nan("")) == "nan");
  }
  SECTION("nice_ticks picks round steps inside the range") {
    const auto ticks = [](double lo, double hi, int target, bool integer) {
      std::string text;
      for (double t : nice_ticks(lo, hi, target, integer)) text += format_number(t) + " ";
      return text;
    };
    CHECK(ticks(0, 1, 5, false) == "0 0.2 0.4 0.6 0.8 1 ");
    CHECK(ticks(0.03, 0.97, 5, false) == "0.2 0.4 0.6 0.8 ");
    CHECK(ticks(-1, 1, 4, false) == "-1 -0.5 0 0.5 1 ");
    CHECK(ticks(1, 3, 6, true) == "1 2 3 ");
    CHECK(ticks(0.5, 1.5, 6, true) == "1 ");
    CHECK(ticks(1, 40, 6, true) == "10 20 30 40 ");
    CHECK(ticks(0, 100, 5, false) == "0 20 40 60 80 100 ");
    CHECK(ticks(2, 2, 5, false) == "2 ");
  }
  SECTION("escape_xml") {
    CHECK(mr::core::svg::escape_xml("a<b>&\"c'") == "a&lt;b&gt;&amp;&quot;c&#39;");
  }
}

TEST_CASE("svg chart: line and bar charts", "[report][svg]") {
  mr::core::svg::LineChart line;
  line.id = "plot-x";
  line.title = "T <1>";
  line.x_label = "step";
  line.y_label = "loss";
  line.series = {{"a", {{1, 0.5}, {2, 0.4}, {3, std::nan("")}}}, {"b", {}}};
  const std::string svg = mr::core::svg::render_line_chart(line);

  SECTION("one polyline per series with points, a marker per finite point") {
    CHECK(svg.rfind("<svg id=\"plot-x\"", 0) == 0);
    CHECK(polyline_points(svg, "a") == 2);
    CHECK(polyline_points(svg, "b") == -1);  // no points, no polyline
    CHECK(count_of(svg, "<circle class=\"marker\"") == 2);
    CHECK(count_of(svg, "<rect class=\"swatch\"") == 2);  // both in the legend
    CHECK_THAT(svg, Catch::Contains("<title id=\"plot-x-title\">T &lt;1&gt;</title>"));
    CHECK(svg.substr(svg.size() - 7) == "</svg>\n");
  }
  SECTION("a chart without data says so") {
    mr::core::svg::LineChart empty = line;
    empty.series = {};
    CHECK_THAT(mr::core::svg::render_line_chart(empty), Catch::Contains(">no data</text>"));
  }
  SECTION("bars: one rect per present value; negative values hang below zero") {
    mr::core::svg::BarChart bars;
    bars.id = "plot-b";
    bars.categories = {"1", "2"};
    bars.series = {"up", "down"};
    bars.values = {{1.0, std::nullopt}, {-1.0}};
    const std::string b = mr::core::svg::render_bar_chart(bars);
    CHECK(count_of(b, "<rect class=\"bar\"") == 2);
    // Bars start at y = 0: the positive bar ends where the negative one begins.
    const auto y_of = [&](const std::string& title) {
      const auto title_pos = b.find(title);
      const auto rect = b.rfind("<rect class=\"bar\"", title_pos);
      const auto y = b.find("y=\"", rect) + 3;
      const auto h = b.find("height=\"", rect) + 8;
      return std::pair<double, double>(std::stod(b.substr(y)), std::stod(b.substr(h)));
    };
    const auto [up_y, up_h] = y_of("<title>up, 1: 1</title>");
    const auto [down_y, down_h] = y_of("<title>down, 1: -1</title>");
    CHECK(up_y + up_h == Approx(down_y).margin(0.02));
    CHECK(up_h == Approx(down_h).margin(0.02));
  }
}
