// `metareward report RUN [--out DIR]`: writes report.html and report.md for a run directory
// (docs/run_artifacts.md, "Reports"). Needs no plugin and no model.
#include <iostream>

#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "metareward/core/run_report.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::core::cli {

namespace po = boost::program_options;
namespace fs = std::filesystem;

int report_command(const GlobalOptions&, const std::vector<std::string>& args) {
  po::options_description options("Options");
  options.add_options()("run", po::value<std::string>()->value_name("RUN"), "Run directory.")(
      "out", po::value<std::string>()->value_name("DIR"),
      "Write report.html and report.md into DIR instead of RUN (created if needed).");
  po::positional_options_description positional;
  positional.add("run", 1);
  po::variables_map vm;
  if (!parse_command_args("report", "RUN [--out DIR]", options, positional, args, vm)) return 0;
  if (!vm.count("run")) throw UsageError("report: missing the RUN directory argument");

  const fs::path run_dir = vm["run"].as<std::string>();
  const fs::path out_dir = vm.count("out") ? fs::path(vm["out"].as<std::string>()) : run_dir;
  std::error_code ec;
  if (!fs::exists(run_dir, ec))
    throw sdk::DataError("report: run directory '" + run_dir.string() + "' does not exist");

  const RunRecord run = read_run_directory(run_dir);
  for (const auto& note : run.notes) spdlog::warn("{}", note);
  const ReportPaths paths = write_run_report(run, out_dir);
  std::cout << paths.html.string() << "\n" << paths.markdown.string() << "\n";
  return 0;
}

}  // namespace mr::core::cli
