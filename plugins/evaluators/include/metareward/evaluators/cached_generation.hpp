// Generation through a RecordStore: only requests whose key the store lacks reach the model, in
// batches, each batch made durable before the next, so an interrupted evaluation resumes where it
// stopped and a re-run asks for nothing it already has.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "metareward/evaluators/eval_io.hpp"
#include "metareward/sdk/host.hpp"
#include "metareward/sdk/model_backend.hpp"

namespace mr::plugins::evaluators {

/// A request with its content key (content_key() of everything its result depends on).
struct KeyedRequest {
  std::string key;
  sdk::GenerationRequest request;  ///< n = 1.
};

/// A cached or new completion.
struct StoredCompletion {
  std::string text;
  std::int64_t tokens = 0;
  bool truncated = false;  ///< finish_reason == length.
};

/// Counts of one generate_cached() call.
struct GenerationCounts {
  std::size_t asked = 0, cached = 0, failed = 0;
};

/// The model identity that goes into cache keys: name, architecture and checkpoint path.
std::string model_identity(const sdk::ModelBackend& model);

/// One result per request (nullopt where the model failed it: not stored, so asked again next
/// time). Progress is reported as `stage`; `stop` is polled before each batch (sdk::Interrupted).
std::vector<std::optional<StoredCompletion>> generate_cached(
    sdk::ModelBackend& model,
    const std::vector<KeyedRequest>& requests,
    RecordStore& store,
    int batch_size,
    const std::function<bool()>& stop,
    sdk::HostContext& ctx,
    const std::string& stage,
    GenerationCounts& counts);

/// Greedy when temperature is 0. Serialised into cache keys by sampling_key().
sdk::SamplingParams make_sampling(double temperature, double top_p, int max_new_tokens);
std::string sampling_key(const sdk::SamplingParams& s);

}  // namespace mr::plugins::evaluators
