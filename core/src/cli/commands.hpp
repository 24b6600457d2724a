// Private to the `metareward` binary: the command table and the helpers commands share.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "metareward/core/config_loader.hpp"
#include "metareward/core/plugin_registry.hpp"

namespace mr::core::cli {

/// A command-line usage problem (unknown command or option, missing argument): exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Options accepted before or after any command.
struct GlobalOptions {
  std::string log_level = "info";
  std::vector<std::filesystem::path> plugin_dirs;  ///< --plugin-dir, in order.
};

/// Runs one command on its own arguments (everything after the command words, global options
/// removed). Returns the exit code; throws UsageError, sdk::Error or std::exception on failure.
using CommandHandler =
    std::function<int(const GlobalOptions& globals, const std::vector<std::string>& args)>;

/// One entry of the dispatcher table. `name` is one or two words ("run", "plugins list").
struct Command {
  std::string name;
  std::string summary;  ///< One line for `metareward --help`.
  CommandHandler handler;
};

/// Every command, in the order `--help` lists them. New commands are added here.
const std::vector<Command>& command_table();

/// The whole CLI: parses global options, dispatches, maps errors to exit codes
/// (0 ok, 1 runtime error, 2 usage or config error).
int run_cli(int argc, char** argv);

/// Parses a command's arguments with its options and positionals. Returns false when `--help`
/// was given (the help has then been printed to stdout). Throws UsageError on bad arguments.
bool parse_command_args(const std::string& command,
                        const std::string& usage,
                        const boost::program_options::options_description& options,
                        const boost::program_options::positional_options_description& positional,
                        const std::vector<std::string>& args,
                        boost::program_options::variables_map& vm);

/// Loads every library on the plugin search path (build tree, install dir,
/// $METAREWARD_PLUGIN_PATH, --plugin-dir), logging and skipping bad files.
void load_search_path(PluginRegistry& registry, const GlobalOptions& globals);

/// Parses the run config `file`, applies `overrides` (--set), loads the plugin search path and
/// the config's [plugins] dirs and libraries into `registry`, and validates the config: what
/// `config check`, `config show` and `plan` share. Loads no model.
ResolvedConfig load_run_config(PluginRegistry& registry,
                               const GlobalOptions& globals,
                               const std::string& file,
                               const std::vector<std::string>& overrides);

// Command handlers (one file per command group).
int plugins_list(const GlobalOptions& globals, const std::vector<std::string>& args);
int plugins_describe(const GlobalOptions& globals, const std::vector<std::string>& args);
int config_check(const GlobalOptions& globals, const std::vector<std::string>& args);
int config_show(const GlobalOptions& globals, const std::vector<std::string>& args);
int generate_command(const GlobalOptions& globals, const std::vector<std::string>& args);
int score_command(const GlobalOptions& globals, const std::vector<std::string>& args);
int train_dpo_command(const GlobalOptions& globals, const std::vector<std::string>& args);
int sft_command(const GlobalOptions& globals, const std::vector<std::string>& args);
int plan_command(const GlobalOptions& globals, const std::vector<std::string>& args);
int run_command(const GlobalOptions& globals, const std::vector<std::string>& args);
int launch_command(const GlobalOptions& globals, const std::vector<std::string>& args);
int report_command(const GlobalOptions& globals, const std::vector<std::string>& args);
int eval_command(const GlobalOptions& globals, const std::vector<std::string>& args);
int compare_command(const GlobalOptions& globals, const std::vector<std::string>& args);
int serve_command(const GlobalOptions& globals, const std::vector<std::string>& args);

}  // namespace mr::core::cli
