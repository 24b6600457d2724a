// The batching worker of `metareward serve` (batch_queue.hpp).
#include "batch_queue.hpp"

#include <algorithm>
#include <stdexcept>

#include <spdlog/spdlog.h>

namespace mr::core::serve {

using Clock = std::chrono::steady_clock;

BatchQueue::BatchQueue(sdk::ModelBackend& backend,
                       int max_batch,
                       std::chrono::milliseconds batch_window)
    : backend_(backend),
      max_batch_(static_cast<std::size_t>(std::max(1, max_batch))),
      batch_window_(batch_window) {}

BatchQueue::~BatchQueue() {
  stop();
}

void BatchQueue::start() {
  worker_ = std::thread([this] { worker_loop(); });
}

void BatchQueue::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
}

std::shared_ptr<PendingGeneration> BatchQueue::submit(sdk::GenerationRequest request) {
  auto pending = std::make_shared<PendingGeneration>();
  pending->request = std::move(request);
  pending->enqueued = Clock::now();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return nullptr;
    queue_.push_back(pending);
  }
  wake_.notify_all();
  return pending;
}

bool BatchQueue::cancel(const std::shared_ptr<PendingGeneration>& pending) {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto it = std::find(queue_.begin(), queue_.end(), pending);
  if (it == queue_.end()) return false;
  queue_.erase(it);
  spdlog::debug("serve: request '{}' cancelled while queued (client disconnected)",
                pending->request.id);
  return true;
}

void BatchQueue::run_exclusive(const std::function<void(sdk::ModelBackend&)>& task) {
  std::packaged_task<void()> job([this, &task] { task(backend_); });
  std::future<void> done = job.get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) throw std::runtime_error("the server is shutting down");
    tasks_.push_back(std::move(job));
  }
  wake_.notify_all();
  done.get();
}

std::size_t BatchQueue::queued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size();
}

void BatchQueue::worker_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    wake_.wait(lock, [&] { return stopping_ || !queue_.empty() || !tasks_.empty(); });
    if (!tasks_.empty()) {
      std::packaged_task<void()> job = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      job();  // Its exception goes to the waiting caller through the future.
      lock.lock();
      continue;
    }
    if (queue_.empty()) {
      if (stopping_) return;  // Drained.
      continue;
    }
    // Collect a batch: until it is full or the window after the oldest request has passed.
    // While stopping there is nothing more to wait for.
    while (!stopping_ && queue_.size() < max_batch_ && !queue_.empty()) {
      const auto deadline = queue_.front()->enqueued + batch_window_;
      if (Clock::now() >= deadline) break;
      wake_.wait_until(lock, deadline);
    }
    if (queue_.empty()) continue;  // Everything was cancelled while waiting.
    std::vector<std::shared_ptr<PendingGeneration>> batch;
    while (!queue_.empty() && batch.size() < max_batch_) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    lock.unlock();
    run_batch(std::move(batch));
    lock.lock();
  }
}

void BatchQueue::run_batch(std::vector<std::shared_ptr<PendingGeneration>> batch) {
  std::vector<sdk::GenerationRequest> requests;
  requests.reserve(batch.size());
  int samples = 0;
  for (const auto& p : batch) {
    requests.push_back(p->request);
    samples += p->request.n;
  }
  const auto start = Clock::now();
  std::string failure;
  std::vector<sdk::GenerationResult> results;
  try {
    results = backend_.generate(requests);
    if (results.size() != requests.size())
      failure = "the model backend returned " + std::to_string(results.size()) + " results for " +
                std::to_string(requests.size()) + " requests";
  } catch (const std::exception& e) {
    failure = e.what();
  } catch (...) {
    failure = "the model backend failed with an unknown exception";
  }
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  ++batches_;
  std::int64_t tokens = 0;
  for (const auto& r : results)
    for (const auto& c : r.completions) tokens += c.tokens;
  spdlog::debug("serve: batch {}: {} requests, {} samples, {} tokens, {:.1f} ms{}", batches_,
                batch.size(), samples, tokens, ms, failure.empty() ? "" : " (failed)");
  if (!failure.empty()) spdlog::error("serve: generate() failed: {}", failure);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    GenerationOutcome outcome;
    if (failure.empty())
      outcome.result = std::move(results[i]);
    else
      outcome.backend_failure = failure;
    batch[i]->promise.set_value(std::move(outcome));
  }
}

}  // namespace mr::core::serve
