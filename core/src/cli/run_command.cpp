// `metareward run CONFIG`: the Meta-Rewarding loop from a TOML file, resumable, with SIGINT /
// SIGTERM finishing the batch in flight and printing the command that resumes the run.
#include <atomic>
#include <csignal>
#include <iostream>

#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "metareward/core/distributed/process_group.hpp"
#include "metareward/core/run/distributed_run.hpp"
#include "metareward/core/run/run_loop.hpp"
#include "metareward/core/run/run_session.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::core::cli {

namespace po = boost::program_options;

namespace {

std::atomic<int> g_signal{0};

extern "C" void on_stop_signal(int sig) {
  if (g_signal.exchange(sig) != 0) {
    // Second signal: the user does not want to wait for the batch in flight.
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

/// Installs the handlers for the rest of the process. They are not restored when the run
/// returns: what follows is the process's exit (libtorch's teardown takes a while), and a signal
/// landing there must not turn a completed run into one killed by SIGINT (exit 130, no message).
/// A second signal still kills at once.
void install_stop_signals() {
  g_signal = 0;
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

std::string quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789-_./=:,+@") == std::string::npos)
    return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

/// One rank of a distributed run: rank 0 runs the loop and coordinates, the others serve it.
/// Returns the exit code of a rank other than 0 that stopped because rank 0 did (0 otherwise);
/// rank 0's own failures are thrown as in a one-process run.
int run_distributed(const PluginRegistry& registry,
                    const ResolvedConfig& config,
                    const WorldEnv& world,
                    RunLoopOptions run_options) {
  const std::unique_ptr<ProcessGroup> group =
      connect_process_group(world, distributed_options(config.section("distributed")));
  if (world.rank == 0) {
    RankCoordinator coordinator(*group);
    run_options.coordinator = &coordinator;
    run_options.local_ranks = world.local_world_size;
    try {
      run_loop(registry, config, run_options);
    } catch (const sdk::Interrupted& e) {
      coordinator.finish(e.what(), /*interrupted=*/true);
      throw;
    } catch (const std::exception& e) {
      group->report_failure(e.what());
      coordinator.finish(e.what());
      throw;
    }
    coordinator.finish();
    return 0;
  }
  RunSession session(registry, config, config.section("run").get_string("output_dir"));
  session.share_threads(world.local_world_size);
  try {
    session.set_stage("plugin construction");
    session.create_text_plugins();
    const RankWorkerResult result = serve_rank_commands(*group, session, run_options.stop_requested,
                                                        session.check_replicas_every_steps());
    if (result.exit_code == 0) {
      spdlog::info("rank {}: the run is complete", world.rank);
    } else if (result.exit_code > 128) {
      spdlog::warn("rank {}: rank 0 stopped the run: {}", world.rank, result.message);
    } else {
      spdlog::error("rank {}: rank 0 failed: {}", world.rank, result.message);
    }
    return result.exit_code;
  } catch (const std::exception& e) {
    group->report_failure(e.what());
    throw;
  }
}

}  // namespace

int run_command(const GlobalOptions& globals, const std::vector<std::string>& args) {
  po::options_description options("Options");
  options.add_options()("file", po::value<std::string>()->value_name("FILE"), "Run config (TOML).")(
      "set", po::value<std::vector<std::string>>()->composing()->value_name("KEY=VALUE"),
      "Override a config value, e.g. --set pair_selection.rho=0.2 (repeatable).")(
      "resume", "Continue the run in the output directory from its first incomplete stage.")(
      "force", "With --resume: continue even though the config differs from the recorded one.")(
      "iterations", po::value<int>()->value_name("N"), "Shortcut for --set run.iterations=N.")(
      "out", po::value<std::string>()->value_name("DIR"),
      "Run directory (overrides run.output_dir).");
  po::positional_options_description positional;
  positional.add("file", 1);
  po::variables_map vm;
  if (!parse_command_args("run",
                          "FILE [--set KEY=VALUE]... [--resume [--force]] [--iterations N] "
                          "[--out DIR]",
                          options, positional, args, vm))
    return 0;
  if (!vm.count("file")) throw UsageError("run: missing the config FILE argument");
  if (vm.count("force") && !vm.count("resume"))
    throw UsageError("run: --force only applies with --resume");

  std::vector<std::string> overrides =
      vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
  if (vm.count("iterations")) {
    if (vm["iterations"].as<int>() < 1) throw UsageError("run: --iterations must be >= 1");
    overrides.push_back("run.iterations=" + std::to_string(vm["iterations"].as<int>()));
  }
  if (vm.count("out")) {
    // A TOML string, so that any path survives the override parser.
    std::string escaped;
    for (char c : vm["out"].as<std::string>()) {
      if (c == '"' || c == '\\') escaped += '\\';
      escaped += c;
    }
    overrides.push_back("run.output_dir=\"" + escaped + "\"");
  }

  RunLoopOptions run_options;
  run_options.resume = vm.count("resume") > 0;
  run_options.force = vm.count("force") > 0;
  run_options.stop_requested = [] { return g_signal.load() != 0; };

  // Installed before the config and the plugins load (libtorch alone takes a while), so that
  // an interrupt at any point of a run says what to do next instead of dying silently.
  install_stop_signals();
  PluginRegistry registry;
  try {
    const ResolvedConfig resolved =
        load_run_config(registry, globals, vm["file"].as<std::string>(), overrides);
    if (run_options.stop_requested())
      throw sdk::Interrupted("while loading the config and the plugins, before the run started");
    const WorldEnv world = read_world_env();
    if (world.world_size > 1) {
      const int code = run_distributed(registry, resolved, world, run_options);
      if (code != 0) return code;
    } else {
      run_loop(registry, resolved, run_options);
    }
  } catch (const sdk::Interrupted& e) {
    const int sig = g_signal.load();
    // The user's own arguments, so the printed command reads like the one they typed.
    std::string command = "metareward run";
    for (const auto& a : args) command += " " + quote(a);
    if (!run_options.resume) command += " --resume";
    spdlog::error("interrupted{}: {}. Everything finished so far is saved; resume with:\n  {}",
                  sig == SIGTERM  ? " (SIGTERM)"
                  : sig == SIGINT ? " (SIGINT)"
                                  : "",
                  e.what(), command);
    return sig != 0 ? 128 + sig : 1;
  }
  if (const int sig = g_signal.load(); sig != 0)
    spdlog::info("a stop signal ({}) arrived after the last stage: the run is complete",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT");
  return 0;
}

}  // namespace mr::core::cli
