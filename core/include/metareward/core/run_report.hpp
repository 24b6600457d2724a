/// @file run_report.hpp
/// `metareward report RUN`: renders a run directory read with read_run_directory() (run_record.hpp)
/// into
/// RUN/report.html (self-contained: tables and inline SVG plots, no script, no external
/// resource) and RUN/report.md (the same tables, the plot data as tables). Reading is
/// tolerant of what a live or killed run leaves behind: incomplete or missing iterations and
/// missing or null optional fields become notes and empty cells; malformed JSON is a DataError
/// naming the file and line, a malformed row of a .jsonl file is skipped and counted.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "metareward/core/run/run_record.hpp"

namespace mr::core {

/// The report as one self-contained HTML page. Each plot is an <svg> with a stable id:
/// plot-scores, plot-score-histogram, plot-lengths, plot-biases, plot-dpo-loss,
/// plot-dpo-accuracy, plot-dpo-margin and plot-eval-<key> (plots without data are left out).
std::string render_report_html(const RunRecord& run);

/// The report as Markdown: the same tables, the plot data as tables.
std::string render_report_markdown(const RunRecord& run);

/// The files write_run_report wrote.
struct ReportPaths {
  std::filesystem::path html;
  std::filesystem::path markdown;
};

/// Writes report.html and report.md of `run` into `out_dir` (created if needed), each
/// atomically (temp file, fsync, rename). Throws sdk::DataError when a file cannot be written.
ReportPaths write_run_report(const RunRecord& run, const std::filesystem::path& out_dir);

/// Reads `run_dir` (read_run_directory) and writes its report into `out_dir`.
ReportPaths write_run_report(const std::filesystem::path& run_dir,
                             const std::filesystem::path& out_dir);

}  // namespace mr::core
