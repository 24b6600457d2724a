// End-to-end tests of `metareward report RUN`: the files it writes and prints, --out, exit
// codes and messages for bad input, and report.html as a browser renders it (headless Chromium,
// when installed).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_runner.hpp"
#include "skip.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using mr::tests::read_text;
using mr::tests::run_binary;
using mr::tests::run_cli;
using mr::tests::ScratchDir;

namespace {

json iteration_metrics(int t, bool train_judge) {
  json m = {{"iteration", t},
            {"iterations", 3},
            {"train_judge", train_judge},
            {"prompts", 8},
            {"actor",
             {{"requests", 8},
              {"failed_requests", 0},
              {"responses", 32},
              {"mean_length_chars", 400 + 10 * t},
              {"mean_tokens", 90},
              {"finish_length", 1}}},
            {"judge",
             {{"judgments", 128},
              {"failed_requests", 0},
              {"parsed", 120},
              {"parse_failures", 8},
              {"parse_failure_rate", 0.0625},
              {"score_mean", 3 + 0.25 * t},
              {"score_std", 1},
              {"score_histogram", {{"1", 10}, {"2", 20}, {"3", 40}, {"4", 30}, {"5", 20}}},
              {"responses_without_score", 0}}},
            {"actor_pairs",
             {{"pairs", 6},
              {"drops", {{"all_scores_equal", 2}}},
              {"chosen_length_mean", 380},
              {"rejected_length_mean", 450},
              {"chosen_score_mean", 4.5},
              {"rejected_score_mean", 2}}},
            {"meta_judge", nullptr},
            {"judge_pairs", nullptr},
            {"training",
             {{"pairs", 6},
              {"steps", 5},
              {"final", {{"loss", 0.6}, {"accuracy", 0.75}, {"margin", 0.3}}}}},
            {"evaluation", {{"win_rate", 0.25 * t}}}};
  if (train_judge) {
    m["meta_judge"] = {{"battles", 96},
                       {"failed_requests", 0},
                       {"diagnostics", {{"positional_bias", 0.6}, {"score_bias", 0.52}}},
                       {"drops", json::object()}};
    m["judge_pairs"] = {{"pairs", 4}, {"chosen_length_mean", 300}, {"rejected_length_mean", 320}};
  }
  return m;
}

std::string train_rows(int steps) {
  std::string text;
  for (int s = 1; s <= steps; ++s)
    text += json{{"step", s},  {"loss", 0.69 - 0.02 * s},    {"lr", 1e-6},        {"grad_norm", 1},
                 {"epoch", 0}, {"accuracy", 0.5 + 0.05 * s}, {"margin", 0.05 * s}}
                .dump() +
            "\n";
  return text;
}

/// A run of 3 planned iterations: 1 trains the judge, 2 does not, 3 is unfinished.
void write_run(const ScratchDir& dir) {
  dir.write("run/manifest.json", json{{"metareward_version", "0.3.0"},
                                      {"git_revision", "0123abcd"},
                                      {"seed", 7},
                                      {"iterations", 3},
                                      {"plugins", json::array({{{"name", "dpo"},
                                                                {"kind", "optimizer"},
                                                                {"version", "1.0.0"},
                                                                {"library", "libmr_optimizers.so"},
                                                                {"sha256", "00ff"}}})}}
                                     .dump(2));
  dir.write("run/config.resolved.toml", "[run]\niterations = 3\n");
  dir.write("run/iter_1/metrics.json", iteration_metrics(1, true).dump(2));
  dir.write("run/iter_1/train_metrics.jsonl", train_rows(5));
  dir.write("run/iter_1/timings.json", R"({"stages": {"actor": 1.5, "total": 9}})");
  dir.write("run/iter_2/metrics.json", iteration_metrics(2, false).dump(2));
  dir.write("run/iter_2/train_metrics.jsonl", train_rows(5));
  dir.write("run/iter_3/prompts.jsonl", "{}\n");
  dir.write("run/iter_3/train_metrics.jsonl", train_rows(2));
}

/// The path of `name` on $PATH, or "" when none is executable.
std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const fs::path candidate = fs::path(dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return "";
}

/// The element `<svg id="ID" ...>...</svg>` of `dom` ("" when absent).
std::string svg_element(const std::string& dom, const std::string& id) {
  const auto start = dom.find("<svg id=\"" + id + "\"");
  if (start == std::string::npos) return "";
  return dom.substr(start, dom.find("</svg>", start) + 6 - start);
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
    ++n;
  return n;
}

}  // namespace

TEST_CASE("report command: writes report.html and report.md for a run directory", "[e2e][report]") {
  ScratchDir dir("report");
  write_run(dir);
  const fs::path run = dir.path() / "run";

  SECTION("by default into RUN, printing the paths it wrote") {
    const auto r = run_cli({"report", run.string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out == (run / "report.html").string() + "\n" + (run / "report.md").string() + "\n");
    const std::string html = read_text(run / "report.html");
    const std::string md = read_text(run / "report.md");
    CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
    CHECK(count_of(html, "<svg id=\"plot-dpo-loss\"") == 1);
    CHECK_THAT(md, Catch::Contains("| 2 | no | 8 | 32 | 128 | 0.0625 | 3.5 | 1 | 6 | — | 5 | "
                                   "0.6 | 0.75 | 0.3 |"));
    // The unfinished iteration is reported, on stderr and in both files.
    CHECK_THAT(r.err, Catch::Contains("iteration 3 incomplete"));
    CHECK_THAT(html, Catch::Contains("iteration 3 incomplete"));
    CHECK_THAT(md, Catch::Contains("- iteration 3 incomplete"));
    SECTION("running it again gives the same files") {
      REQUIRE(run_cli({"report", run.string()}).exit_code == 0);
      CHECK(read_text(run / "report.html") == html);
      CHECK(read_text(run / "report.md") == md);
    }
  }

  SECTION("--out DIR writes there and leaves RUN alone") {
    const fs::path out = dir.path() / "out" / "sub";
    const auto r = run_cli({"report", run.string(), "--out", out.string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out == (out / "report.html").string() + "\n" + (out / "report.md").string() + "\n");
    CHECK(fs::is_regular_file(out / "report.html"));
    CHECK(fs::is_regular_file(out / "report.md"));
    CHECK_FALSE(fs::exists(run / "report.html"));
  }

  SECTION("a missing directory is exit 1 with its name") {
    const auto r = run_cli({"report", (dir.path() / "nope").string()});
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("run directory '" + (dir.path() / "nope").string() +
                                      "' does not exist"));
    CHECK(r.out.empty());
  }

  SECTION("a directory without a complete iteration is exit 1") {
    const auto r = run_cli({"report", (dir.path() / "run" / "iter_3").string()});
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("has no complete iteration"));
  }

  SECTION("a bad metrics.json is exit 1 naming the file and line") {
    dir.write("run/iter_2/metrics.json", "{\n  \"iteration\": 2,\n  oops\n}\n");
    const auto r = run_cli({"report", run.string()});
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err,
               Catch::Contains((run / "iter_2" / "metrics.json").string() + ":3: not valid JSON"));
    CHECK_FALSE(fs::exists(run / "report.html"));
  }

  SECTION("usage errors and help") {
    CHECK(run_cli({"report"}).exit_code == 2);
    CHECK_THAT(run_cli({"report"}).err, Catch::Contains("missing the RUN directory argument"));
    CHECK(run_cli({"report", run.string(), "--bogus"}).exit_code == 2);
    const auto help = run_cli({"report", "--help"});
    CHECK(help.exit_code == 0);
    CHECK_THAT(help.out, Catch::Contains("Usage: metareward report RUN [--out DIR]"));
  }
}

TEST_CASE("report command: report.html renders in headless Chromium", "[e2e][report][browser]") {
  const std::string chromium = find_on_path("chromium");
  if (chromium.empty())
    MR_SKIP(
        "chromium not on PATH: no browser rendering check of report.html "
        "(install it with scripts/setup.sh)");
  ScratchDir dir("report_browser");
  write_run(dir);
  const fs::path run = dir.path() / "run";
  REQUIRE(run_cli({"report", run.string()}).exit_code == 0);

  // --no-sandbox: Chromium refuses to run as root otherwise (containers, CI).
  const auto r =
      run_binary("timeout", {"120", chromium, "--headless", "--no-sandbox", "--disable-gpu",
                             "--user-data-dir=" + (dir.path() / "profile").string(), "--dump-dom",
                             "file://" + fs::absolute(run / "report.html").string()});
  INFO("chromium stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  const std::string& dom = r.out;
  REQUIRE_THAT(dom, Catch::Contains("metareward run report"));

  SECTION("every plot is in the rendered DOM with its id") {
    for (const char* id :
         {"plot-scores", "plot-score-histogram", "plot-lengths", "plot-biases", "plot-dpo-loss",
          "plot-dpo-accuracy", "plot-dpo-margin", "plot-eval-win-rate"}) {
      INFO(id);
      CHECK_FALSE(svg_element(dom, id).empty());
    }
  }
  SECTION("the DOM keeps the lines and bars") {
    // DPO: one polyline per iteration with rows (1, 2 and the unfinished 3).
    const std::string loss = svg_element(dom, "plot-dpo-loss");
    CHECK(count_of(loss, "<polyline") == 3);
    CHECK(count_of(loss, "<circle class=\"marker\"") == 5 + 5 + 2);
    // Histogram: bins 1..5 for iterations 1 and 2.
    CHECK(count_of(svg_element(dom, "plot-score-histogram"), "<rect class=\"bar\"") == 10);
    // Biases: only iteration 1 trained the judge.
    CHECK(count_of(svg_element(dom, "plot-biases"), "<rect class=\"bar\"") == 2);
    CHECK(count_of(svg_element(dom, "plot-lengths"), "<polyline") == 3);
  }
  SECTION("the tables render with their numbers") {
    CHECK_THAT(dom, Catch::Contains("<table id=\"table-summary\">"));
    CHECK_THAT(dom, Catch::Contains("<td class=\"num\">0.0625</td>"));
  }
}
