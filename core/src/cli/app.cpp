// The `metareward` dispatcher: global options, the command table and exit codes.
#include <algorithm>
#include <iostream>
#include <sstream>
#include <string_view>
#include <thread>

#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "metareward/core/logging.hpp"
#include "metareward/core/plugin_call.hpp"
#include "metareward/sdk/error.hpp"
#include "metareward/sdk/version.hpp"

namespace mr::core::cli {

namespace po = boost::program_options;

const std::vector<Command>& command_table() {
  static const std::vector<Command> table = {
      {"plugins list", "List the plugins found on the plugin search path, by kind.", plugins_list},
      {"plugins describe", "Show a plugin's config keys (--all --markdown: the config reference).",
       plugins_describe},
      {"config check", "Validate a run config against the host and plugin schemas.", config_check},
      {"config show", "Print a run config resolved (overrides applied, defaults filled in).",
       config_show},
      {"plan",
       "Print a run's generation budget per iteration and its seed stage (no model is loaded).",
       plan_command},
      {"run",
       "Run a config's seed stage and Meta-Rewarding iterations (resumable, records every "
       "artifact).",
       run_command},
      {"launch",
       "Start this machine's ranks of a distributed command (torchrun's environment), e.g. "
       "`launch --nproc-per-node 2 run CONFIG`.",
       launch_command},
      {"report", "Write report.html and report.md for a run directory.", report_command},
      {"eval", "Evaluate a config's models with its [evaluation] plugin (no training).",
       eval_command},
      {"compare", "Tabulate the evaluation metrics of runs per iteration (mean ± std over seeds).",
       compare_command},
      {"generate", "Sample completions for JSONL prompts with a model (+ --adapter).",
       generate_command},
      {"score", "Log-probabilities of JSONL completions given their prompts (+ --adapter).",
       score_command},
      {"train-dpo", "Train a model on JSONL preference pairs (dpo, rpo, ...; LoRA: --adapter-out).",
       train_dpo_command},
      {"sft", "Supervised fine-tuning on JSONL conversations (loss on assistant turns).",
       sft_command},
      {"serve", "Serve a model over an OpenAI-compatible HTTP API (chat, completions, tokenize).",
       serve_command},
  };
  return table;
}

namespace {

po::options_description global_options() {
  po::options_description desc("Global options");
  desc.add_options()("help,h", "Show this help (or a command's help after the command).")(
      "version", "Print the version, plugin API version and build fingerprint.")(
      "log-level", po::value<std::string>()->default_value("info")->value_name("LEVEL"),
      "Log verbosity: trace, debug, info, warn, error.")(
      "plugin-dir", po::value<std::vector<std::string>>()->composing()->value_name("DIR"),
      "Also load plugin libraries from DIR (repeatable; searched after the build/install "
      "plugin directories and $METAREWARD_PLUGIN_PATH).");
  return desc;
}

/// One line per command; `trailing_newline` false for the end of an error message.
std::string command_list(bool trailing_newline = true) {
  std::ostringstream out;
  std::size_t width = 0;
  for (const auto& c : command_table()) width = std::max(width, c.name.size());
  for (const auto& c : command_table())
    out << "  " << c.name << std::string(width - c.name.size() + 2, ' ') << c.summary << "\n";
  std::string text = out.str();
  if (!trailing_newline) text.pop_back();
  return text;
}

/// Commands contributed by plugin libraries, one line each (empty when none).
std::string plugin_command_list(const PluginRegistry& registry) {
  std::ostringstream out;
  for (const auto* c : registry.commands())
    out << "  " << c->descriptor.name
        << std::string(c->descriptor.name.size() < 16 ? 18 - c->descriptor.name.size() : 2, ' ')
        << c->descriptor.summary << "  [" << c->library_name << "]\n";
  return out.str();
}

void print_help(std::ostream& out, const PluginRegistry& registry) {
  const std::string plugin_commands = plugin_command_list(registry);
  out << "metareward " MR_SDK_VERSION " - Meta-Rewarding LLM alignment\n\n"
      << "Usage: metareward [global options] <command> [command options]\n\n"
      << "Commands:\n"
      << command_list() << "\n"
      << (plugin_commands.empty() ? "" : "Commands from plugins:\n" + plugin_commands + "\n")
      << global_options() << "\n"
      << "Environment:\n"
      << "  METAREWARD_PLUGIN_PATH  Colon-separated plugin directories, searched before "
         "--plugin-dir.\n\n"
      << "Exit status (docs/exit_codes.md):\n"
      << "  0 ok, 1 runtime error, 2 usage or config error, 3 no usable input rows,\n"
      << "  4 finished but input rows were dropped or items failed, 130/143 interrupted by\n"
      << "  SIGINT/SIGTERM (a run resumes with --resume).\n\n"
      << "Run `metareward <command> --help` for a command's options.\n";
}

/// Finds the command named by the leading words of `words` (two-word names first).
const Command* match_command(const std::vector<std::string>& words, std::size_t& consumed) {
  for (std::size_t n : {2u, 1u}) {
    if (words.size() < n) continue;
    std::string name = words[0];
    for (std::size_t i = 1; i < n; ++i) name += " " + words[i];
    for (const auto& c : command_table()) {
      if (c.name == name) {
        consumed = n;
        return &c;
      }
    }
  }
  return nullptr;
}

/// "  data       Write the dataset\n" for each subcommand of `command`.
std::string subcommand_list(const sdk::CommandDescriptor& command) {
  std::size_t width = 0;
  for (const auto& sub : command.subcommands) width = std::max(width, sub.name.size());
  std::ostringstream out;
  for (const auto& sub : command.subcommands)
    out << "  " << sub.name << std::string(width - sub.name.size() + 2, ' ') << sub.summary << "\n";
  return out.str();
}

/// Runs a plugin-contributed command: chooses its subcommand (the first word that is not an
/// option, so that `testbed --help data` works as `testbed data --help`), then calls it through
/// the plugin-call guard, which reads any exception while the plugin's library is loaded.
int run_plugin_command(const RegisteredCommand& command, std::vector<std::string> args) {
  const sdk::CommandDescriptor* chosen = &command.descriptor;
  std::string name = chosen->name;
  while (!chosen->subcommands.empty()) {
    const auto word = std::find_if(args.begin(), args.end(),
                                   [](const std::string& a) { return a.rfind('-', 0) != 0; });
    const bool help = std::any_of(args.begin(), args.end(),
                                  [](const std::string& a) { return a == "--help" || a == "-h"; });
    const auto sub =
        word == args.end()
            ? chosen->subcommands.end()
            : std::find_if(chosen->subcommands.begin(), chosen->subcommands.end(),
                           [&](const sdk::CommandDescriptor& c) { return c.name == *word; });
    if (sub == chosen->subcommands.end()) {
      if (word == args.end() && chosen->run) break;  // The group itself runs without a subcommand.
      const std::string usage = "Usage: metareward " + name + " SUBCOMMAND [options]\n\n" +
                                chosen->summary + "\n\nSubcommands (each takes --help):\n" +
                                subcommand_list(*chosen);
      if (word == args.end() && help) {
        std::cout << usage;
        return 0;
      }
      throw UsageError((word == args.end() ? "'" + name + "' needs a subcommand"
                                           : "unknown subcommand '" + name + " " + *word + "'") +
                       "\n" + usage.substr(0, usage.size() - 1));
    }
    name += " " + sub->name;
    args.erase(word);
    chosen = &*sub;
  }
  auto ctx = std::make_shared<PluginHostContext>(
      name, sdk::Config("", {}, 1), 0, std::filesystem::path(),
      static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  PluginCall site;
  site.plugin = name;
  site.kind = "command";
  site.library =
      command.library_path.empty() ? command.library_name : command.library_path.string();
  site.call = "run";
  return guarded(site, [&] { return chosen->run(args, *ctx); });
}

/// Runs `args` as a nested `metareward` command line with the global options of the invocation
/// that started it (HostContext::run_command). The nested command sets up its own logger; the
/// caller's is restored afterwards.
int run_nested(const GlobalOptions& globals, const std::vector<std::string>& args) {
  std::vector<std::string> words = {"metareward", "--log-level", globals.log_level};
  for (const auto& dir : globals.plugin_dirs) {
    words.push_back("--plugin-dir");
    words.push_back(dir.string());
  }
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  const auto logger = spdlog::default_logger();
  const int code = run_cli(static_cast<int>(words.size()), argv.data());
  spdlog::set_default_logger(logger);
  return code;
}

/// Installs the command runner for one invocation and puts the previous one back (a nested
/// command line installs its own while it runs).
class CommandRunnerScope {
 public:
  explicit CommandRunnerScope(const GlobalOptions& globals)
      : previous_(set_command_runner([globals](const std::vector<std::string>& args) {
          return run_nested(globals, args);
        })) {}
  ~CommandRunnerScope() { set_command_runner(std::move(previous_)); }
  CommandRunnerScope(const CommandRunnerScope&) = delete;
  CommandRunnerScope& operator=(const CommandRunnerScope&) = delete;

 private:
  CommandRunner previous_;
};

int dispatch(int argc, char** argv) {
  po::options_description globals_desc = global_options();
  // Global options may appear anywhere; every other token (command words, command options and
  // their values) is passed on in order to the command.
  po::options_description all;
  all.add(globals_desc).add_options()("rest", po::value<std::vector<std::string>>(), "");
  po::positional_options_description rest;
  rest.add("rest", -1);
  // A literal "--" ends the global options: what follows is passed on verbatim, "--" included
  // (`launch -- --version` starts ranks that run `metareward --version`).
  int options_end = 1;
  while (options_end < argc && std::string_view(argv[options_end]) != "--") ++options_end;
  po::parsed_options parsed = po::command_line_parser(options_end, argv)
                                  .options(all)
                                  .positional(rest)
                                  .allow_unregistered()
                                  .run();
  std::vector<std::string> words = po::collect_unrecognized(parsed.options, po::include_positional);
  words.insert(words.end(), argv + options_end, argv + argc);
  po::variables_map vm;
  po::store(parsed, vm);
  po::notify(vm);

  GlobalOptions globals;
  globals.log_level = vm["log-level"].as<std::string>();
  if (vm.count("plugin-dir"))
    for (const auto& d : vm["plugin-dir"].as<std::vector<std::string>>())
      globals.plugin_dirs.emplace_back(d);

  // Plugin commands (and anything they run) reach the command table through run_command.
  const CommandRunnerScope runner_scope(globals);

  if (vm.count("version")) {
    std::cout << "metareward " MR_SDK_VERSION " (plugin API " << MR_PLUGIN_API_VERSION << "; "
              << host_fingerprint() << ")\n";
    return 0;
  }
  std::size_t consumed = 0;
  const Command* command = match_command(words, consumed);
  // Plugin commands and the full help need the plugins; host commands load what they need.
  PluginRegistry registry;
  const bool needs_plugins = command == nullptr && !(words.empty() && !vm.count("help"));
  if (needs_plugins) {
    init_logging(globals.log_level);
    load_search_path(registry, globals);
  }
  const RegisteredCommand* plugin_command =
      (command == nullptr && !words.empty()) ? registry.find_command(words[0]) : nullptr;
  if (plugin_command != nullptr) {
    if (vm.count("help")) words.insert(words.begin() + 1, "--help");
    return run_plugin_command(*plugin_command,
                              std::vector<std::string>(words.begin() + 1, words.end()));
  }
  if (vm.count("help")) {
    if (command == nullptr) {
      print_help(std::cout, registry);
      return 0;
    }
    words.insert(words.begin() + static_cast<std::ptrdiff_t>(consumed), "--help");
  }
  if (words.empty()) {
    print_help(std::cerr, registry);
    return 2;
  }
  if (command == nullptr) {
    // A group word ("plugins", "config") names the subcommand the user tried, or asks for one.
    bool group = false;
    for (const auto& c : command_table()) group = group || c.name.rfind(words[0] + " ", 0) == 0;
    if (group && (words.size() < 2 || words[1].rfind('-', 0) == 0))
      throw UsageError("'" + words[0] + "' needs a subcommand; commands are:\n" +
                       command_list(false));
    const std::string given = group ? words[0] + " " + words[1] : words[0];
    const std::string from_plugins = plugin_command_list(registry);
    throw UsageError(
        "unknown command '" + given + "'; commands are:\n" + command_list(false) +
        (from_plugins.empty() ? "" : "\n" + from_plugins.substr(0, from_plugins.size() - 1)));
  }
  init_logging(globals.log_level);
  std::vector<std::string> args(words.begin() + static_cast<std::ptrdiff_t>(consumed), words.end());
  return command->handler(globals, args);
}

}  // namespace

bool parse_command_args(const std::string& command,
                        const std::string& usage,
                        const po::options_description& options,
                        const po::positional_options_description& positional,
                        const std::vector<std::string>& args,
                        po::variables_map& vm) {
  po::options_description with_help = options;
  with_help.add_options()("help,h", "Show this help.");
  try {
    po::store(po::command_line_parser(args).options(with_help).positional(positional).run(), vm);
    if (vm.count("help")) {
      std::cout << "Usage: metareward " << command << " " << usage << "\n\n" << options << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(command + ": " + e.what() + " (see `metareward " + command + " --help`)");
  }
  return true;
}

void load_search_path(PluginRegistry& registry, const GlobalOptions& globals) {
  for (const auto& dir : globals.plugin_dirs) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec))
      spdlog::warn("--plugin-dir '{}' is not a directory; ignored", dir.string());
  }
  for (const auto& dir : plugin_search_path(globals.plugin_dirs)) {
    const int n = registry.load_directory(dir);
    spdlog::debug("plugin directory '{}': {} libraries loaded", dir.string(), n);
  }
}

int run_cli(int argc, char** argv) {
  try {
    return dispatch(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const po::error& e) {
    std::cerr << "error: " << e.what() << " (see `metareward --help`)\n";
    return 2;
  } catch (const sdk::ConfigError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  } catch (...) {
    std::cerr << "error: unknown exception\n";
    return 1;
  }
}

}  // namespace mr::core::cli
