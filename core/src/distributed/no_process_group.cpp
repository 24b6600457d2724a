// connect_process_group() of a build without libtorch: one-process runs only.
#include "metareward/core/distributed/process_group.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::core {

std::unique_ptr<ProcessGroup> connect_process_group(const WorldEnv& env,
                                                    const DistributedOptions&) {
  throw sdk::ConfigError("WORLD_SIZE=" + std::to_string(env.world_size) +
                         ": this build of metareward has no libtorch (MR_WITH_TORCH=OFF), so it "
                         "cannot run several ranks");
}

}  // namespace mr::core
