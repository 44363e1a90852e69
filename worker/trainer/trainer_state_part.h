// TrainerStatePart: HF's trainer_state.json (TrainerState's schema: the step, the log
// history, the best metric and checkpoint), with the stateful callbacks' states inside
// as HF keeps them, in every checkpoint.
#ifndef TRAINERD_WORKER_TRAINER_TRAINER_STATE_PART_H_
#define TRAINERD_WORKER_TRAINER_TRAINER_STATE_PART_H_

#include "worker/checkpoint/stateful.h"
#include "worker/trainer/trainer_callback.h"
#include "worker/trainer/trainer_state.h"

namespace trainerd {

class TrainerStatePart final : public Stateful {
 public:
  // `state` and `callbacks` must outlive the part.
  TrainerStatePart(TrainerState* state, const CallbackHandler* callbacks) : state_(state), callbacks_(callbacks) {}

  void SaveState(CheckpointContents& out) override;
  // Restores the step, epoch, log history and best model, and each stateful callback
  // that is in this run.
  void LoadState(const CheckpointContents& in) override;

 private:
  TrainerState* state_;
  const CallbackHandler* callbacks_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TRAINER_TRAINER_STATE_PART_H_
