// Distributed: one rank's membership in a data-parallel job, over torch's c10d.
//
// The launcher (trainerd, or a person starting one trainer-worker per rank) sets the
// torchrun variables: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT. Rank 0
// hosts a c10d TCPStore at MASTER_ADDR:MASTER_PORT; every rank joins it, and the ranks
// build a ProcessGroup on it: NCCL when this LibTorch has it and the job trains on
// GPUs, Gloo otherwise.
//
// Every collective waits at most `timeout` for the other ranks, then throws: a rank
// that died or hangs makes the others fail within the timeout instead of waiting
// forever. (Gloo usually notices a dead peer at once, from its closed connection.)
//
// Collectives must be called by every rank in the same order, from one thread.
#ifndef TRAINERD_WORKER_DISTRIBUTED_DISTRIBUTED_H_
#define TRAINERD_WORKER_DISTRIBUTED_DISTRIBUTED_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/torch.h>

#include "absl/status/statusor.h"

namespace trainerd {

struct DistributedConfig {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string store_host = "127.0.0.1";
  int store_port = 29500;
  std::chrono::milliseconds timeout{300000};
};

// Reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT. Unset means a
// single process (world size 1). Errors name the offending variable.
absl::StatusOr<DistributedConfig> DistributedConfigFromEnvironment();

class Distributed {
 public:
  // Joins the job's store and builds the process group; waits at most config.timeout
  // for the other ranks. A CUDA `device` (the rank's GPU) selects NCCL, an error where
  // LibTorch was built without it; the CPU selects Gloo.
  static absl::StatusOr<std::unique_ptr<Distributed>> Connect(const DistributedConfig& config,
                                                              const torch::Device& device);
  ~Distributed();

  // A second group of the same ranks, over Gloo on the CPU, for another thread than the
  // one that runs this group's collectives (the checkpoint writer's): the two never wait
  // on each other's messages. `name` keeps its messages apart in the store. Every rank
  // calls it at the same point.
  absl::StatusOr<std::unique_ptr<Distributed>> NewCpuGroup(const std::string& name) const;

  int rank() const { return config_.rank; }
  int world_size() const { return config_.world_size; }
  int local_rank() const { return config_.local_rank; }
  bool is_main() const { return config_.rank == 0; }
  const std::string& backend() const { return backend_; }

  // The blocking collectives below throw std::runtime_error naming the collective when
  // another rank fails or the timeout passes. They take tensors on any device (NCCL
  // needs them on the GPU: they are copied there and back).

  // Copies `root`'s tensors into every rank's, in place (one flat message per dtype).
  void Broadcast(const std::vector<torch::Tensor>& tensors, int root);
  // Sums `tensor` over the ranks, in place.
  void AllReduceSum(torch::Tensor& tensor);
  // Starts summing `tensor` in place; wait on the returned work.
  c10::intrusive_ptr<c10d::Work> AllReduceSumAsync(torch::Tensor& tensor);
  // Fills `full` (world_size equal slices, contiguous) with every rank's `shard` (one
  // slice's size), in rank order: the slices are the message, nothing else is allocated.
  void AllGatherInto(const torch::Tensor& shard, torch::Tensor& full);
  // AllGatherInto, started: `full` fills in the background (wait on the returned work
  // before reading it, and keep `shard` unchanged until then). Null where the backend
  // wants the tensors on another device: the gather then happened at once.
  c10::intrusive_ptr<c10d::Work> AllGatherIntoAsync(const torch::Tensor& shard, torch::Tensor& full);
  // Sums `full` (world_size equal slices, contiguous) over the ranks and writes this
  // rank's slice of the sum into `shard` (a reduce-scatter). Gloo has no reduce-scatter
  // in this LibTorch: there `full` is all-reduced in place and the slice copied, which
  // moves W times the data but gives the same result. `full` is clobbered.
  void ReduceScatterSum(torch::Tensor& full, torch::Tensor& shard);
  // Every rank's `tensor` (same shape on every rank), in rank order.
  std::vector<torch::Tensor> AllGather(const torch::Tensor& tensor);
  // Every rank's `bytes`, in rank order (sizes may differ).
  std::vector<std::string> AllGatherBytes(const std::string& bytes);
  void Barrier();

  // Waits for `work`, turning a failure or timeout into an exception that says which
  // collective failed and why ranks usually do that.
  void Wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what);

 private:
  Distributed(DistributedConfig config, std::string backend, torch::Device device,
              c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<c10d::ProcessGroup> group);

  DistributedConfig config_;
  torch::Device device_;  // where the backend wants tensors
  std::string backend_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroup> group_;
};

// The mean of `value` over `distributed`'s ranks (the value itself when null or of one
// rank). Every rank must call it at the same point.
double MeanOverRanks(Distributed* distributed, double value);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_DISTRIBUTED_DISTRIBUTED_H_
