// `metareward serve`: the one thread that calls the model backend. HTTP handler threads submit
// generation requests and wait on a future; the worker takes up to `max_batch` of them, waiting
// at most `batch_window` after the oldest arrived, calls ModelBackend::generate once for the
// batch and fulfils each future with its own result. Other backend calls (tokenize) run on the
// same thread between batches, since backend methods must be called one at a time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "metareward/sdk/model_backend.hpp"

namespace mr::core::serve {

/// How one queued generation request ended.
struct GenerationOutcome {
  sdk::GenerationResult result;
  /// Non-empty when generate() threw (or broke its contract) for the batch: a server error.
  std::string backend_failure;
};

/// A submitted request: wait on `outcome`; BatchQueue::cancel() takes it back while queued.
struct PendingGeneration {
  sdk::GenerationRequest request;
  std::promise<GenerationOutcome> promise;
  std::future<GenerationOutcome> outcome = promise.get_future();
  std::chrono::steady_clock::time_point enqueued;
};

class BatchQueue {
 public:
  BatchQueue(sdk::ModelBackend& backend, int max_batch, std::chrono::milliseconds batch_window);
  ~BatchQueue();  ///< stop()s.
  BatchQueue(const BatchQueue&) = delete;
  BatchQueue& operator=(const BatchQueue&) = delete;

  /// Starts the worker thread.
  void start();
  /// Lets the worker finish what is queued, then joins it; later submissions are refused.
  void stop();

  /// Queues `request`; nullptr once stop() has begun.
  std::shared_ptr<PendingGeneration> submit(sdk::GenerationRequest request);

  /// Removes `pending` from the queue if it is still waiting there (its future then never becomes
  /// ready). False when a batch has already taken it: generate() cannot be interrupted.
  bool cancel(const std::shared_ptr<PendingGeneration>& pending);

  /// Runs `task` on the worker thread between batches and waits for it; rethrows what it throws.
  /// Throws std::runtime_error once stop() has begun.
  void run_exclusive(const std::function<void(sdk::ModelBackend&)>& task);

  /// Requests waiting for a batch (for logs and tests).
  std::size_t queued() const;

 private:
  void worker_loop();
  void run_batch(std::vector<std::shared_ptr<PendingGeneration>> batch);

  sdk::ModelBackend& backend_;
  const std::size_t max_batch_;
  const std::chrono::milliseconds batch_window_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<PendingGeneration>> queue_;
  std::deque<std::packaged_task<void()>> tasks_;
  bool stopping_ = false;
  std::thread worker_;
  std::uint64_t batches_ = 0;
};

}  // namespace mr::core::serve
