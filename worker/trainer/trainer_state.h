// TrainerState and TrainerControl, as in HF's trainer_callback.py, and the
// trainer_state.json file of a checkpoint in HF's schema.
#ifndef TRAINERD_WORKER_TRAINER_TRAINER_STATE_H_
#define TRAINERD_WORKER_TRAINER_TRAINER_STATE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/trainer/metrics_map.h"

namespace trainerd {

// The saved state of a callback that must survive a resume (HF's ExportableState).
struct CallbackState {
  Metrics args;
  Metrics attributes;
};

struct TrainerState {
  int64_t global_step = 0;
  double epoch = 0;
  int64_t max_steps = 0;
  int64_t num_train_epochs = 0;
  int64_t logging_steps = 0;
  int64_t eval_steps = 0;
  int64_t save_steps = 0;
  int64_t train_batch_size = 0;
  std::vector<Metrics> log_history;
  std::optional<double> best_metric;
  std::optional<int64_t> best_global_step;
  std::optional<std::string> best_model_checkpoint;
  bool is_world_process_zero = true;
  bool is_local_process_zero = true;
  std::map<std::string, CallbackState> stateful_callbacks;
};

// The flags through which callbacks steer the loop (HF's TrainerControl).
struct TrainerControl {
  bool should_training_stop = false;
  bool should_epoch_stop = false;
  bool should_save = false;
  bool should_evaluate = false;
  bool should_log = false;
  // Not HF's: the run stops to be resumed later (trainerd's cancel or shutdown, a time
  // limit), not because it is done. It skips what only a finished run does: the
  // end-of-epoch evaluation, the best model's reload and the train_end record.
  bool interrupted = false;
};

// trainer_state.json, as HF writes it (integers where HF has integers).
std::string TrainerStateToJson(const TrainerState& state);
absl::StatusOr<TrainerState> TrainerStateFromJson(const std::string& text);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TRAINER_TRAINER_STATE_H_
