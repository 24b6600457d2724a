// The batched, durable generation engine (generation_engine.hpp).
#include "generation_engine.hpp"

#include <algorithm>
#include <chrono>

#include <spdlog/spdlog.h>

#include "metareward/core/artifact_io.hpp"
#include "metareward/core/logging.hpp"
#include "metareward/core/run/guarded_plugins.hpp"
#include "metareward/sdk/error.hpp"

namespace mr::core {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

GenerationStats run_generation(const GenerationJob& job) {
  GenerationStats stats;
  const std::string& label = job.label;
  const fs::path& file = job.file;
  const auto& requests = *job.requests;
  BatchedJsonlWriter writer(file, job.batch_size);
  if (writer.complete()) return stats;
  const auto start = Clock::now();
  const std::size_t batch = static_cast<std::size_t>(job.batch_size);
  const std::size_t batches = (requests.size() + batch - 1) / batch;
  std::size_t next = static_cast<std::size_t>(writer.batches_done());
  if (next > batches)
    throw sdk::DataError(file.string() + ".partial.progress records " + std::to_string(next) +
                         " batches but the stage has only " + std::to_string(batches) +
                         "; delete the .partial files to redo the stage");
  if (next > 0)
    spdlog::info("{}: resuming after batch {}/{} ({} of {} requests done)", label, next, batches,
                 std::min(requests.size(), next * batch), requests.size());
  auto progress = make_progress(label, requests.size());
  if (next > 0) progress->advance(std::min(requests.size(), next * batch));
  std::int64_t failed = 0;
  for (; next < batches; ++next) {
    if (job.stop_requested && job.stop_requested())
      throw sdk::Interrupted("stopped during " + label + " (after " + std::to_string(next) + "/" +
                             std::to_string(batches) + " batches; they are saved)");
    const std::size_t lo = next * batch, hi = std::min(requests.size(), lo + batch);
    const std::vector<sdk::GenerationRequest> chunk(
        requests.begin() + static_cast<std::ptrdiff_t>(lo),
        requests.begin() + static_cast<std::ptrdiff_t>(hi));
    std::vector<sdk::GenerationResult> results;
    {
      const CallContext::ItemScope item("batch " + std::to_string(next + 1) + "/" +
                                        std::to_string(batches) + " (requests '" +
                                        chunk.front().id + "' to '" + chunk.back().id + "')");
      results = job.model->generate(chunk);
    }
    if (results.size() != chunk.size())
      throw sdk::BackendError(label + ": the backend returned " + std::to_string(results.size()) +
                              " results for " + std::to_string(chunk.size()) + " requests");
    std::vector<std::string> lines;
    std::uint64_t tokens = 0;
    for (std::size_t j = 0; j < results.size(); ++j) {
      auto& r = results[j];
      if (r.error.empty() && r.completions.size() != static_cast<std::size_t>(chunk[j].n))
        r.error = "backend returned " + std::to_string(r.completions.size()) +
                  " completions, expected " + std::to_string(chunk[j].n);
      if (!r.error.empty()) {
        ++failed;
        spdlog::warn("{}: request '{}' failed: {}", label, chunk[j].id, r.error);
      }
      for (const auto& c : r.completions)
        tokens += static_cast<std::uint64_t>(std::max<std::int64_t>(0, c.tokens));
      job.rows_of(lo + j, r, lines);
    }
    writer.append_batch(lines);
    stats.tokens += tokens;
    progress->advance(hi - lo, tokens);
  }
  progress.reset();
  writer.finish();
  stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (failed > 0)
    spdlog::warn("{}: {} of {} requests failed (recorded)", label, failed, requests.size());
  return stats;
}

}  // namespace mr::core
