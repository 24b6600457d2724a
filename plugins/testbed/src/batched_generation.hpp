// The testbed evaluator's generation: requests in batches, each finished batch's results
// appended durably to a log in the evaluation's directory, so that an evaluation interrupted
// part-way (kill -9, SIGINT, a full disk) asks the models only for the requests it had not
// finished when the iteration is resumed.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "metareward/sdk/host.hpp"
#include "metareward/sdk/model_backend.hpp"

namespace mr::plugins::testbed {

/// Generates `requests` in batches of `batch_size`, polling `stop` before each batch (then
/// throws sdk::Interrupted). One result per request, in order. With a non-empty `log_file`,
/// results are keyed by everything that determines them (id, messages, sampling, n, seed) and
/// appended to it after every batch (fsync'd; a torn last line is cut); results already in the
/// log are reused instead of generated. Results do not depend on the batching, so a resumed
/// call returns exactly what an uninterrupted one would. The caller removes the log once its
/// rows are written (discard_generation_log).
std::vector<sdk::GenerationResult> generate_batched(
    sdk::ModelBackend& model,
    const std::vector<sdk::GenerationRequest>& requests,
    int batch_size,
    const std::function<bool()>& stop,
    sdk::HostContext& ctx,
    const std::string& stage,
    const std::filesystem::path& log_file);

/// Removes a log written by generate_batched (no error when absent).
void discard_generation_log(const std::filesystem::path& log_file);

}  // namespace mr::plugins::testbed
