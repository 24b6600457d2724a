// read_world_env() and the other libtorch-free helpers of distributed/process_group.hpp: the
// torchrun variables, checked, and the [distributed] options.
#include <algorithm>
#include <charconv>
#include <cstdlib>

#include "metareward/core/distributed/process_group.hpp"
#include "metareward/sdk/config.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::core {

// The key function of ProcessGroup lives in libmr_core, beside the code that uses the interface
// (distributed_run.cpp, train_stage.cpp), so its vtable and typeinfo are there for any binary
// that links mr_core without mr_distributed (the unit tests; UBSan's vptr check needs typeinfo).
ProcessGroup::~ProcessGroup() = default;

namespace {

/// The integer in `name`, or `fallback` when unset.
int env_int(const char* name, int fallback, int lo, int hi) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  const std::string s(text);
  int value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || value < lo || value > hi)
    throw sdk::ConfigError("environment variable " + std::string(name) + "='" + s +
                           "' is not an integer in " + std::to_string(lo) + ".." +
                           std::to_string(hi));
  return value;
}

}  // namespace

WorldEnv read_world_env() {
  WorldEnv env;
  const char* world = std::getenv("WORLD_SIZE");
  env.launched = world != nullptr && *world != '\0';
  env.world_size = env_int("WORLD_SIZE", 1, 1, 1 << 20);
  env.rank = env_int("RANK", 0, 0, 1 << 20);
  if (env.rank >= env.world_size)
    throw sdk::ConfigError("environment variable RANK=" + std::to_string(env.rank) +
                           " is not below WORLD_SIZE=" + std::to_string(env.world_size));
  env.local_world_size = env_int("LOCAL_WORLD_SIZE", 1, 1, 1 << 20);
  env.local_rank = env_int("LOCAL_RANK", 0, 0, 1 << 20);
  if (env.local_rank >= env.local_world_size && std::getenv("LOCAL_WORLD_SIZE") != nullptr)
    throw sdk::ConfigError(
        "environment variable LOCAL_RANK=" + std::to_string(env.local_rank) +
        " is not below LOCAL_WORLD_SIZE=" + std::to_string(env.local_world_size));
  if (std::getenv("LOCAL_WORLD_SIZE") == nullptr)
    env.local_world_size = std::max(env.local_world_size, env.local_rank + 1);
  if (const char* addr = std::getenv("MASTER_ADDR"); addr != nullptr && *addr != '\0')
    env.master_addr = addr;
  else if (env.world_size > 1)
    throw sdk::ConfigError("WORLD_SIZE=" + std::to_string(env.world_size) +
                           " but MASTER_ADDR is not set (torchrun and `metareward launch` set it)");
  env.master_port = env_int("MASTER_PORT", 29500, 1, 65535);
  return env;
}

DistributedOptions distributed_options(const sdk::Config& section) {
  DistributedOptions o;
  o.backend = section.get_string("backend");
  o.timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(section.get_float("timeout_s") * 1000));
  return o;
}

void require_single_process(const WorldEnv& env,
                            const std::string& command,
                            const std::string& hint) {
  if (env.world_size > 1)
    throw sdk::ConfigError(command + " runs in one process, but this is rank " +
                           std::to_string(env.rank) +
                           " of WORLD_SIZE=" + std::to_string(env.world_size) +
                           " (torchrun or metareward launch): " + hint);
}

}  // namespace mr::core
