// Checkpointer: the stateful parts of a run (stateful.h), saved and loaded in one order.
// Parts of the model (weights, trainer state) are in every checkpoint; parts of the
// training (loop position, RNG, optimizer, schedule, loss scale) are left out with
// save_only_model, and such a checkpoint resumes with fresh training state.
//
// This file has no LibTorch dependency.
#ifndef TRAINERD_WORKER_CHECKPOINT_CHECKPOINTER_H_
#define TRAINERD_WORKER_CHECKPOINT_CHECKPOINTER_H_

#include <memory>
#include <vector>

#include "worker/checkpoint/stateful.h"

namespace trainerd {

// The file whose presence marks a checkpoint that holds training state (it is the loop
// part's; save_only_model checkpoints have none).
inline constexpr char kTrainingStateFile[] = "loop_state.json";

class Checkpointer {
 public:
  enum class Scope {
    kModel,     // in every checkpoint
    kTraining,  // not with save_only_model
  };

  // Adds a part; parts save and load in the order they were added. `part` must outlive
  // the checkpointer.
  void Add(Stateful* part, Scope scope) { parts_.push_back({part, scope}); }
  // Adds a part the checkpointer owns.
  void Add(std::unique_ptr<Stateful> part, Scope scope);

  // Every part's state (kModel parts only when `save_only_model`).
  CheckpointContents Save(bool save_only_model);
  // Restores every part from `in`. Returns false when `in` holds no training state (it
  // was saved with save_only_model): only the kModel parts were restored.
  bool Load(const CheckpointContents& in);

 private:
  struct Part {
    Stateful* part;
    Scope scope;
  };
  std::vector<Part> parts_;
  std::vector<std::unique_ptr<Stateful>> owned_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_CHECKPOINT_CHECKPOINTER_H_
