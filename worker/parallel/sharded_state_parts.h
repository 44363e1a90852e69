// The checkpoint parts of a fully sharded run (sharded_checkpoint.h is their format):
// each rank saves its own slices of the flat buffers, and loads its slices out of the
// ones any number of ranks saved, so that a run resumes on another number of ranks.
//
//   ShardedWeightsPart    the trained weights (state_dict_type SHARDED_STATE_DICT)
//   ShardedOptimizerPart  the optimizer's state of each flat buffer's slice
#ifndef TRAINERD_WORKER_PARALLEL_SHARDED_STATE_PARTS_H_
#define TRAINERD_WORKER_PARALLEL_SHARDED_STATE_PARTS_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <torch/optim/optimizer.h>

#include "worker/checkpoint/stateful.h"
#include "worker/parallel/flat_parameter.h"

namespace trainerd {

class ShardedWeightsPart final : public Stateful {
 public:
  // `flats` must outlive the part; `shards_loaded` runs after a load has overwritten the
  // shards (the whole weights follow them).
  ShardedWeightsPart(NamedFlats flats, int rank, int world_size, std::function<void()> shards_loaded)
      : flats_(std::move(flats)), rank_(rank), world_size_(world_size), shards_loaded_(std::move(shards_loaded)) {}

  void SaveState(CheckpointContents& out) override;
  void LoadState(const CheckpointContents& in) override;

 private:
  NamedFlats flats_;
  int rank_;
  int world_size_;
  std::function<void()> shards_loaded_;
};

class ShardedOptimizerPart final : public Stateful {
 public:
  // `optimizer` updates the flats' shards; both must outlive the part.
  ShardedOptimizerPart(NamedFlats flats, torch::optim::Optimizer* optimizer, int rank, int world_size)
      : flats_(std::move(flats)), optimizer_(optimizer), rank_(rank), world_size_(world_size) {}

  void SaveState(CheckpointContents& out) override;
  void LoadState(const CheckpointContents& in) override;

 private:
  NamedFlats flats_;
  torch::optim::Optimizer* optimizer_;
  int rank_;
  int world_size_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_PARALLEL_SHARDED_STATE_PARTS_H_
