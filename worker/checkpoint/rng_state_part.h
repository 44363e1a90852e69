// RngStatePart: each rank's random number generators in a checkpoint (the CPU's and every
// CUDA device's), as torch.load-able dicts: rng_state.pth on one rank, rng_state_<r>.pth
// for each rank of several (HF's names), so that dropout and shuffling continue exactly.
#ifndef TRAINERD_WORKER_CHECKPOINT_RNG_STATE_PART_H_
#define TRAINERD_WORKER_CHECKPOINT_RNG_STATE_PART_H_

#include "worker/checkpoint/stateful.h"

namespace trainerd {

class Distributed;

class RngStatePart final : public Stateful {
 public:
  // `distributed` (null: one rank) must outlive the part. Every rank saves (the states are
  // gathered to rank 0's contents) and loads its own. A checkpoint of another number of
  // ranks (resharded on load) gives each rank the state of the rank of its number where
  // it has one; the others keep their seeded generators, and say so.
  explicit RngStatePart(Distributed* distributed) : distributed_(distributed) {}
  void SaveState(CheckpointContents& out) override;
  void LoadState(const CheckpointContents& in) override;

 private:
  Distributed* distributed_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_CHECKPOINT_RNG_STATE_PART_H_
