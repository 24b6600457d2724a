// generate_cached() and its helpers (cached_generation.hpp).
#include "metareward/evaluators/cached_generation.hpp"

#include <algorithm>

#include "metareward/sdk/error.hpp"

namespace mr::plugins::evaluators {

using json = nlohmann::json;

std::string model_identity(const sdk::ModelBackend& model) {
  const sdk::ModelInfo info = model.info();
  return info.name + "|" + info.architecture + "|" + info.path;
}

sdk::SamplingParams make_sampling(double temperature, double top_p, int max_new_tokens) {
  sdk::SamplingParams s;
  s.temperature = temperature;
  s.top_p = temperature > 0 ? top_p : 1.0;
  s.top_k = 0;
  s.max_new_tokens = max_new_tokens;
  return s;
}

std::string sampling_key(const sdk::SamplingParams& s) {
  std::string key = "t=" + std::to_string(s.temperature) + ";p=" + std::to_string(s.top_p) +
                    ";k=" + std::to_string(s.top_k) + ";max=" + std::to_string(s.max_new_tokens);
  for (const auto& stop : s.stop) key += ";stop=" + stop;
  return key;
}

std::vector<std::optional<StoredCompletion>> generate_cached(
    sdk::ModelBackend& model,
    const std::vector<KeyedRequest>& requests,
    RecordStore& store,
    int batch_size,
    const std::function<bool()>& stop,
    sdk::HostContext& ctx,
    const std::string& stage,
    GenerationCounts& counts) {
  std::vector<std::optional<StoredCompletion>> out(requests.size());
  std::vector<std::size_t> missing;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const json* r = store.find(requests[i].key);
    const auto text = r ? get_text(*r, "text") : std::nullopt;
    if (text) {
      const auto tokens = r->find("tokens");
      const auto truncated = r->find("truncated");
      out[i] = StoredCompletion{
          *text,
          tokens != r->end() && tokens->is_number_integer() ? tokens->get<std::int64_t>() : 0,
          truncated != r->end() && truncated->is_boolean() && truncated->get<bool>()};
      ++counts.cached;
    } else {
      missing.push_back(i);
    }
  }
  if (missing.empty()) return out;
  if (counts.cached > 0)
    ctx.logger().log(sdk::LogLevel::Info, stage + ": " + std::to_string(counts.cached) +
                                              " cached in " + store.file().string() + ", " +
                                              std::to_string(missing.size()) + " to generate");
  auto progress = ctx.progress(stage, missing.size());
  const std::size_t step = static_cast<std::size_t>(std::max(1, batch_size));
  for (std::size_t begin = 0; begin < missing.size(); begin += step) {
    if (stop && stop())
      throw sdk::Interrupted(stage + " stopped (" + std::to_string(begin) + " of " +
                             std::to_string(missing.size()) +
                             " requests done and cached; a re-run resumes there)");
    const std::size_t end = std::min(missing.size(), begin + step);
    std::vector<sdk::GenerationRequest> batch;
    for (std::size_t m = begin; m < end; ++m) batch.push_back(requests[missing[m]].request);
    const std::vector<sdk::GenerationResult> results = model.generate(batch);
    if (results.size() != batch.size())
      throw sdk::BackendError(stage + ": the model returned " + std::to_string(results.size()) +
                              " results for " + std::to_string(batch.size()) + " requests");
    std::vector<json> records;
    std::uint64_t tokens = 0;
    for (std::size_t m = begin; m < end; ++m) {
      const sdk::GenerationResult& r = results[m - begin];
      if (!r.error.empty() || r.completions.empty() ||
          r.completions.front().finish_reason == sdk::FinishReason::Error) {
        ++counts.failed;
        if (counts.failed <= 3)
          ctx.logger().log(sdk::LogLevel::Warn,
                           stage + ": request '" + requests[missing[m]].request.id + "' failed: " +
                               (r.error.empty() ? std::string("no completion") : r.error));
        continue;
      }
      const sdk::Completion& c = r.completions.front();
      tokens += static_cast<std::uint64_t>(std::max<std::int64_t>(0, c.tokens));
      StoredCompletion stored{c.text, c.tokens, c.finish_reason == sdk::FinishReason::Length};
      json record = {{"key", requests[missing[m]].key},
                     {"id", requests[missing[m]].request.id},
                     {"tokens", stored.tokens},
                     {"truncated", stored.truncated}};
      put_text(record, "text", stored.text);
      records.push_back(std::move(record));
      out[missing[m]] = std::move(stored);
      ++counts.asked;
    }
    store.append(records);
    progress->advance(end - begin, tokens);
  }
  return out;
}

}  // namespace mr::plugins::evaluators
