/// @file collective.hpp
/// The ranks of a data-parallel run as an optimizer sees them (TrainingJob::collective): sums,
/// gathers and broadcasts over the host's process group (c10d: Gloo on CPU, NCCL on CUDA). A
/// libtorch header, like trainable_model.hpp; include it from optimizer implementations only.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace mr::sdk {

/// A collective operation in flight (Collective::all_reduce_sum_async).
class CollectiveWork {
 public:
  virtual ~CollectiveWork();
  /// Required. Blocks until the operation completed on this rank; throws DistributedError when
  /// it failed (a rank exited or timed out).
  virtual void wait() = 0;
};

/// The process group of a distributed run. Every rank must issue the same collectives, with
/// tensors of the same shape and dtype, in the same order; they match up by that order. Not
/// thread-safe: call from one thread per rank.
class Collective {
 public:
  virtual ~Collective();
  /// Required. This process's rank, 0 <= rank() < world_size().
  virtual int rank() const = 0;
  /// Required. Number of ranks (1: a one-process run).
  virtual int world_size() const = 0;
  /// Required. Starts summing contiguous `tensor` over all ranks, in place; read it only after
  /// the returned work's wait(). Lets gradient buckets reduce while backward still runs.
  virtual std::unique_ptr<CollectiveWork> all_reduce_sum_async(torch::Tensor tensor) = 0;
  /// Sums `tensor` over all ranks in place and waits.
  void all_reduce_sum(const torch::Tensor& tensor) { all_reduce_sum_async(tensor)->wait(); }
  /// Required. Every rank's `bytes`, in rank order (sizes may differ between ranks).
  virtual std::vector<std::string> all_gather_bytes(const std::string& bytes) = 0;
  /// Required. Overwrites contiguous `tensor` on every rank with rank `root`'s.
  virtual void broadcast(const torch::Tensor& tensor, int root) = 0;
};

}  // namespace mr::sdk
