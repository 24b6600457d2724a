/// @file plugin.hpp
/// The plugin entry point: descriptors, the Registrar and the MR_PLUGIN macro that exports the
/// single entry symbol of a plugin library.
///
/// A plugin library defines one registration function and exports it with MR_PLUGIN:
/// @code
///   void register_my_plugins(mr::sdk::Registrar& r) {
///     r.add<mr::sdk::JudgeRubric>("my_rubric", "1.0.0", "One-line description", my_schema(),
///                                 [](mr::sdk::HostContext& ctx) {
///                                   return std::make_unique<MyRubric>(ctx);
///                                 });
///   }
///   MR_PLUGIN("my-plugins", "1.0.0", register_my_plugins)
/// @endcode
/// Keeping the registration function a normal function lets the same code be linked statically
/// into tests.
#pragma once

#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "metareward/sdk/config.hpp"
#include "metareward/sdk/evaluator.hpp"
#include "metareward/sdk/host.hpp"
#include "metareward/sdk/judge_rubric.hpp"
#include "metareward/sdk/meta_judge.hpp"
#include "metareward/sdk/model_backend.hpp"
#include "metareward/sdk/optimizer.hpp"
#include "metareward/sdk/pair_selection.hpp"
#include "metareward/sdk/version.hpp"

namespace mr::sdk {

/// The plugin kinds: the five of the method, plus the optional evaluation hook. Adding a kind:
/// docs/architecture.md, "Adding a plugin kind" (one row in kPluginKinds below, the interface
/// header, the AnyFactory alternative and kind_of<>, the host's call sites).
enum class PluginKind { ModelBackend, JudgeRubric, MetaJudge, PairSelection, Optimizer, Evaluator };

/// What the host and the docs know about one plugin kind. kPluginKinds is the one table that the
/// registry, config resolution, `plugins list`, `config check` and `plugins describe` read.
struct PluginKindInfo {
  PluginKind kind;
  const char* name;   ///< Config-facing name: "judge_rubric".
  const char* label;  ///< For people: "judge rubric".
  /// Where a run config selects it with `type`: a top-level table ("judge_rubric"), or
  /// "models.<name>" for the model backends (one table per model).
  const char* config_table;
  /// The plugin an absent table gets (the paper's recipe); nullptr for model backends (their
  /// tables are named by [roles]) and for the optional evaluator (absent = no evaluation).
  const char* default_plugin;
  const char* header;   ///< The interface's SDK header.
  const char* summary;  ///< When the host calls it, one line.
};

/// Every kind, in PluginKind order (kPluginKinds[int(kind)].kind == kind).
inline constexpr PluginKindInfo kPluginKinds[] = {
    {PluginKind::ModelBackend, "model_backend", "model backend", "models.<name>", nullptr,
     "metareward/sdk/model_backend.hpp",
     "generate() per batch of every generation stage; reload() after training"},
    {PluginKind::JudgeRubric, "judge_rubric", "judge rubric", "judge_rubric", "additive5",
     "metareward/sdk/judge_rubric.hpp", "build_prompt() per response, parse() per judgment"},
    {PluginKind::MetaJudge, "meta_judge", "meta-judge strategy", "meta_judge", "pairwise_elo",
     "metareward/sdk/meta_judge.hpp", "plan() then decide(), once per judge-training iteration"},
    {PluginKind::PairSelection, "pair_selection", "pair-selection policy", "pair_selection",
     "length_control", "metareward/sdk/pair_selection.hpp", "select() once per iteration"},
    {PluginKind::Optimizer, "optimizer", "optimizer", "optimizer", "dpo",
     "metareward/sdk/optimizer.hpp", "train() once per iteration"},
    {PluginKind::Evaluator, "evaluator", "evaluator", "evaluation", nullptr,
     "metareward/sdk/evaluator.hpp",
     "evaluate() for the seed models, then after every iteration's training (optional)"},
};

/// The row of `kind` in kPluginKinds.
constexpr const PluginKindInfo& plugin_kind_info(PluginKind kind) {
  return kPluginKinds[static_cast<int>(kind)];
}

/// Config-facing name of a kind: "model_backend", "judge_rubric", "meta_judge",
/// "pair_selection", "optimizer", "evaluator".
const char* plugin_kind_name(PluginKind kind);

/// Creates one plugin object. `ctx` outlives the object. Throwing is allowed: the host reports
/// the message with the plugin and library name.
template <class Interface>
using Factory = std::function<std::unique_ptr<Interface>(HostContext& ctx)>;

/// One factory of any kind; the variant index is the PluginKind.
using AnyFactory = std::variant<Factory<ModelBackend>,
                                Factory<JudgeRubric>,
                                Factory<MetaJudgeStrategy>,
                                Factory<PairSelectionPolicy>,
                                Factory<Optimizer>,
                                Factory<Evaluator>>;

/// Maps an interface type to its kind (compile-time).
template <class Interface>
constexpr PluginKind kind_of();
template <>
constexpr PluginKind kind_of<ModelBackend>() {
  return PluginKind::ModelBackend;
}
template <>
constexpr PluginKind kind_of<JudgeRubric>() {
  return PluginKind::JudgeRubric;
}
template <>
constexpr PluginKind kind_of<MetaJudgeStrategy>() {
  return PluginKind::MetaJudge;
}
template <>
constexpr PluginKind kind_of<PairSelectionPolicy>() {
  return PluginKind::PairSelection;
}
template <>
constexpr PluginKind kind_of<Optimizer>() {
  return PluginKind::Optimizer;
}
template <>
constexpr PluginKind kind_of<Evaluator>() {
  return PluginKind::Evaluator;
}

/// Everything the host knows about one plugin before constructing it.
struct PluginDescriptor {
  std::string name;         ///< Unique across all loaded libraries, lowercase, e.g. "additive5".
  std::string version;      ///< The plugin's own semver, informational.
  std::string description;  ///< One line.
  Schema schema;            ///< Keys its config table accepts (besides `type`).
  AnyFactory factory;

  PluginKind kind() const { return static_cast<PluginKind>(factory.index()); }
};

/// Exit statuses of every `metareward` command, host or plugin (docs/exit_codes.md). A command
/// that reads rows (JSONL prompts, pairs, texts) never exits 0 when it dropped some: a script
/// can tell "all done" from "done, but rows were skipped" from "nothing usable".
namespace exit_status {
inline constexpr int kOk = 0;     ///< Finished; every input row was used.
inline constexpr int kError = 1;  ///< A runtime error (I/O, backend, bad data); message on stderr.
inline constexpr int kUsage = 2;  ///< Bad arguments or config; message (and usage) on stderr.
inline constexpr int kNoUsableRows = 3;  ///< Nothing done: the input held no usable row.
inline constexpr int kDroppedRows =
    4;  ///< Finished, but some rows were dropped or failed (counted, logged).
inline constexpr int kInterrupted =
    130;  ///< Stopped by SIGINT (SIGTERM: 143); resumable where the command says so.
}  // namespace exit_status

/// A CLI command contributed by a plugin library, e.g. the torch backend's `init-model`. Runs as
/// `metareward NAME [args...]`; with subcommands, as `metareward NAME SUB [args...]`
/// (`testbed data`), the host choosing the subcommand, listing them in `metareward NAME --help`
/// and rejecting a missing or unknown one as a usage error. Parse the arguments with
/// Boost.Program_options, as the host's own commands do.
struct CommandDescriptor {
  std::string name;     ///< One word, lowercase with dashes; must not clash with host commands.
  std::string summary;  ///< One line for `metareward --help`.
  /// Runs the command on the arguments after its name (global options already removed; a global
  /// --help arrives as "--help"). Returns the exit status (`exit_status`): 0 ok, 1 runtime
  /// error, 2 usage error (print the usage to stderr first), 3 no usable input rows, 4 finished
  /// with dropped rows. Throwing sdk::ConfigError exits 2, any other exception
  /// exits 1, both printing the message. `ctx` has an empty config, seed 0 and threads = all
  /// cores; it outlives the call. Empty for a command that only groups subcommands.
  std::function<int(const std::vector<std::string>& args, HostContext& ctx)> run;
  /// `metareward NAME SUB ...`: the host dispatches on the first word after NAME.
  std::vector<CommandDescriptor> subcommands;
};

/// Collects a library's descriptors during registration. Implemented by the host; valid only
/// during the registration call.
class Registrar {
 public:
  virtual ~Registrar();
  /// Adds one plugin. A name already registered (by this or another library) is an error the
  /// host reports naming both files.
  virtual void add(PluginDescriptor descriptor) = 0;

  /// Adds a CLI subcommand. A name already taken (by the host or another library) is an error.
  /// Default: throws PluginError (a host that takes no commands, e.g. a test registrar).
  virtual void add_command(CommandDescriptor command);

  /// Typed convenience over add(PluginDescriptor).
  template <class Interface>
  void add(std::string name,
           std::string version,
           std::string description,
           Schema schema,
           Factory<Interface> factory) {
    add(PluginDescriptor{std::move(name), std::move(version), std::move(description),
                         std::move(schema), AnyFactory(std::move(factory))});
  }
};

}  // namespace mr::sdk

extern "C" {
/// The struct a plugin library's entry symbol returns. `api_version` stays the first member in
/// every future version so that any host can read it.
struct MrPluginInfo {
  std::uint32_t api_version;      ///< MR_PLUGIN_API_VERSION at plugin build time.
  const char* build_fingerprint;  ///< MR_BUILD_FINGERPRINT at plugin build time.
  const char* library_name;       ///< e.g. "mr-recipe".
  const char* library_version;    ///< The library's own version, informational.
  void (*register_plugins)(mr::sdk::Registrar& registrar);
};
}

/// Name of the single symbol every plugin library exports.
#define MR_PLUGIN_ENTRY_SYMBOL "mr_plugin_info"

/// Defines and exports the library's entry symbol. Use exactly once per library.
#define MR_PLUGIN(LIBRARY_NAME, LIBRARY_VERSION, REGISTER_FN)                                 \
  extern "C" __attribute__((visibility("default"))) const MrPluginInfo* mr_plugin_info() {    \
    static const MrPluginInfo info{MR_PLUGIN_API_VERSION, MR_BUILD_FINGERPRINT, LIBRARY_NAME, \
                                   LIBRARY_VERSION, &REGISTER_FN};                            \
    return &info;                                                                             \
  }

static_assert(
    [] {
      for (int i = 0; i < static_cast<int>(std::size(mr::sdk::kPluginKinds)); ++i)
        if (static_cast<int>(mr::sdk::kPluginKinds[i].kind) != i) return false;
      return std::size(mr::sdk::kPluginKinds) == std::variant_size_v<mr::sdk::AnyFactory>;
    }(),
    "kPluginKinds lists every PluginKind once, in enum order, one per AnyFactory alternative");
