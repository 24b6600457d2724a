// Out-of-line destructors: the key functions that give every SDK interface a single
// vtable/typeinfo home in libmr_sdk, so exceptions and objects cross plugin boundaries safely.
#include "metareward/sdk/error.hpp"
#include "metareward/sdk/evaluator.hpp"
#include "metareward/sdk/host.hpp"
#include "metareward/sdk/judge_rubric.hpp"
#include "metareward/sdk/meta_judge.hpp"
#include "metareward/sdk/model_backend.hpp"
#include "metareward/sdk/optimizer.hpp"
#include "metareward/sdk/pair_selection.hpp"
#include "metareward/sdk/plugin.hpp"

namespace mr::sdk {

Error::~Error() = default;
ConfigError::~ConfigError() = default;
PluginError::~PluginError() = default;
BackendError::~BackendError() = default;
DistributedError::~DistributedError() = default;
DataError::~DataError() = default;
Interrupted::~Interrupted() = default;

Logger::~Logger() = default;
Progress::~Progress() = default;
HostContext::~HostContext() = default;
ModelBackend::~ModelBackend() = default;
JudgeRubric::~JudgeRubric() = default;
MetaJudgeStrategy::~MetaJudgeStrategy() = default;
PairSelectionPolicy::~PairSelectionPolicy() = default;
Optimizer::~Optimizer() = default;
Evaluator::~Evaluator() = default;
Registrar::~Registrar() = default;

int HostContext::run_command(const std::vector<std::string>& args) {
  throw PluginError("this host context cannot run commands (asked to run '" +
                    (args.empty() ? std::string() : args.front()) + "')");
}

void Registrar::add_command(CommandDescriptor command) {
  throw PluginError("this host does not accept plugin commands (command '" + command.name + "')");
}

void ModelBackend::reload(const std::filesystem::path& checkpoint_dir) {
  throw BackendError("model backend '" + info().name + "' cannot reload weights from '" +
                     checkpoint_dir.string() + "' (reload not supported)");
}

std::vector<std::int64_t> ModelBackend::tokenize(std::string_view) const {
  throw BackendError("model backend '" + info().name +
                     "' cannot return token ids (tokenize not supported)");
}

std::vector<ScoreResult> ModelBackend::score(const std::vector<ScoreRequest>&) {
  throw BackendError("model backend '" + info().name +
                     "' cannot score completions (not supported)");
}

const char* plugin_kind_name(PluginKind kind) {
  const auto i = static_cast<std::size_t>(kind);
  return i < std::size(kPluginKinds) ? kPluginKinds[i].name : "unknown";
}

std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t stream) {
  // SplitMix64 finaliser over a combination that is not symmetric in (seed, stream).
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace mr::sdk
