// JSON forms of the SDK types that travel between the ranks of a distributed run
// (distributed_run.hpp). Lossless: every field, uint64 seeds as numbers, text as raw bytes.
// Internal to core/run.
#pragma once

#include <vector>

#include <nlohmann/json.hpp>

#include "metareward/sdk/optimizer.hpp"
#include "metareward/sdk/types.hpp"

namespace mr::core::wire {

nlohmann::json to_json(const sdk::GenerationRequest& r);
sdk::GenerationRequest request_from(const nlohmann::json& j);
nlohmann::json to_json(const sdk::GenerationResult& r);
sdk::GenerationResult result_from(const nlohmann::json& j);
nlohmann::json to_json(const sdk::PreferencePair& p);
sdk::PreferencePair pair_from(const nlohmann::json& j);
nlohmann::json to_json(const sdk::IterationInfo& i);
sdk::IterationInfo info_from(const nlohmann::json& j);

/// MessagePack bytes of `j`: strings travel as raw bytes, so model output that is not valid
/// UTF-8 arrives unchanged (JSON text would refuse or alter it).
std::string encode(const nlohmann::json& j);
/// The value encode() wrote; throws sdk::DistributedError on bytes it did not write.
nlohmann::json decode(const std::string& bytes, const std::string& what);

}  // namespace mr::core::wire
