// FlatParameter: the parameters of one sharded unit (of one dtype and weight-decay
// class) as one flat buffer split evenly across the ranks, as PyTorch's FSDP keeps them.
//
// The parameters stay the model's own tensors (the same names, shapes and autograd
// leaves), but their data are views into the flat buffer: all-gathering the ranks'
// slices into the buffer makes every parameter whole at once, and releasing the
// buffer's memory leaves them with their shapes and no data. Because autograd saves
// views of that same memory, a unit may be released after its forward and gathered
// again before its backward, and backward reads the gathered values.
//
// Each rank keeps its own slice, the shard, as a separate tensor: the optimizer updates
// the shard, and the next gather spreads the update. The flat buffer is padded with
// zeros to a multiple of the world size.
#ifndef TRAINERD_WORKER_PARALLEL_FLAT_PARAMETER_H_
#define TRAINERD_WORKER_PARALLEL_FLAT_PARAMETER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <torch/csrc/distributed/c10d/Work.hpp>
#include <torch/torch.h>

#include "worker/models/model.h"

namespace trainerd {

class Distributed;

class FlatParameter {
 public:
  // `params`: of one dtype and device, with the same values on every rank. `decays`:
  // whether they take weight decay; the shard is then a [1, n] matrix, because the
  // optimizer factory decays matrices and not vectors. `trainable`: whether they train
  // (the shard then requires grad); frozen ones (a LoRA job's base weights) are sharded
  // and gathered the same way, without gradients. Parameters without data (a model
  // built with deferred weights) have this rank's slice read from `deferred` into the
  // shard; throws StatusError when that fails. Leaves the buffer gathered, or released
  // where something was read (Gather makes the parameters whole).
  FlatParameter(NamedTensors params, bool decays, bool trainable, int world_size, int rank,
                const DeferredWeights* deferred = nullptr);

  const NamedTensors& params() const { return params_; }
  // The optimizer's tensor: this rank's slice of the parameters (a leaf that requires grad).
  const torch::Tensor& shard() const { return shard_; }
  // Whole and ready: gathered, and no prefetch still filling the buffer.
  bool gathered() const { return gathered_ && !pending_; }
  bool trainable() const { return shard_.requires_grad(); }
  int64_t numel() const { return numel_; }                // the parameters' elements
  int64_t shard_numel() const { return shard_numel_; }    // one rank's slice, padding included
  int64_t padded_numel() const { return shard_numel_ * world_size_; }
  // Where this rank's shard starts in the flat buffer.
  int64_t shard_offset() const { return rank_ * shard_numel_; }

  // Makes the parameters whole from every rank's shard (allocating the buffer when it
  // was released, else overwriting it). Every rank calls it at the same point.
  // `distributed` null: one rank, whose shard is the whole buffer.
  // Waits for a Prefetch instead, where one is under way.
  void Gather(Distributed* distributed);
  // Starts gathering the whole parameters in the background where the backend allows it
  // (else gathers now); the next Gather or Release waits for it. Nothing when they are
  // whole already. Every rank calls it at the same point.
  void Prefetch(Distributed* distributed);
  // Releases the buffer's memory: the parameters keep their shapes but have no data.
  // Waits for a prefetch under way first.
  void Release();
  // Copies this rank's slice of the whole parameters into the shard, after something
  // wrote into the parameters (weights loaded from a checkpoint).
  void CopyParametersToShard();
  // The parameters' gradients (zeros where a parameter has none) summed over the ranks
  // and divided by the world size; this rank's slice is added into the shard's gradient
  // and the parameters' gradients are dropped. Every rank calls it at the same point.
  void ReduceGradients(Distributed* distributed);

 private:
  NamedTensors params_;
  std::vector<int64_t> offsets_;  // of each parameter in the flat buffer
  int64_t numel_ = 0;
  int64_t shard_numel_ = 0;
  int world_size_;
  int rank_;
  torch::Tensor flat_;   // the whole buffer; its storage is released between uses
  torch::Tensor shard_;
  bool gathered_ = true;
  // A prefetch under way: the buffer is allocated and filling.
  c10::intrusive_ptr<c10d::Work> pending_;
  Distributed* pending_on_ = nullptr;

  // Reads this rank's slice of params_[i] from `deferred` into the shard.
  void ReadDeferredSlice(size_t i, const DeferredWeights& deferred);
  // Gives the released buffer memory again.
  void Allocate();
  void WaitForPrefetch();
};

// Flat buffers by the names their shards have in the optimizer and in checkpoints, in
// the same order on every rank.
using NamedFlats = std::vector<std::pair<std::string, FlatParameter*>>;

}  // namespace trainerd

#endif  // TRAINERD_WORKER_PARALLEL_FLAT_PARAMETER_H_
