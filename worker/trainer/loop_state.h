// LoopState: where the training loop is, and its running sums; LoopStatePart saves it in
// loop_state.json (kTrainingStateFile) so that a resumed run continues exactly: the same
// data position, the same logged losses.
#ifndef TRAINERD_WORKER_TRAINER_LOOP_STATE_H_
#define TRAINERD_WORKER_TRAINER_LOOP_STATE_H_

#include <cstdint>
#include <string>

#include "worker/checkpoint/stateful.h"

namespace trainerd {

class Distributed;

struct LoopState {
  int64_t epoch = 0;         // epoch to continue
  int64_t batches_done = 0;  // batches of that epoch already used
  double loss_since_log = 0;
  int64_t last_logged_step = 0;
  double total_loss = 0;
  int64_t total_samples = 0;
};

class LoopStatePart final : public Stateful {
 public:
  // `loop` and `distributed` (null: one rank) must outlive the part. `strategy` is the
  // ParallelStrategy's name: a checkpoint of another strategy is refused. `reshards`:
  // the strategy loads checkpoints of another number of ranks. `batch_size`: the
  // examples one rank's micro-batch holds.
  LoopStatePart(LoopState* loop, Distributed* distributed, std::string strategy, bool reshards, int64_t batch_size)
      : loop_(loop), distributed_(distributed), strategy_(std::move(strategy)), reshards_(reshards),
        batch_size_(batch_size) {}

  // Every rank calls it (the running sums become the ranks' means).
  void SaveState(CheckpointContents& out) override;
  // Throws std::invalid_argument, naming the setting to change, when the checkpoint was
  // saved with another strategy, or by another number of ranks where the strategy does
  // not reshard. Where it does, the epoch goes on after the examples the saved ranks
  // used (the shuffled order of an epoch is the same for any number of ranks), rounded
  // down to a whole batch of this run's: at most one global batch is seen again.
  void LoadState(const CheckpointContents& in) override;

 private:
  int world_size() const;

  LoopState* loop_;
  Distributed* distributed_;
  std::string strategy_;
  bool reshards_;
  int64_t batch_size_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TRAINER_LOOP_STATE_H_
