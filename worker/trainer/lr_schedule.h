// Learning-rate schedules with Hugging Face's exact formulas (transformers/optimization.py).
//
// Lambda schedules give lr(step) = learning_rate * factor(step), where `step` counts
// optimizer steps taken so far (torch's LambdaLR): the update number i (0-based) uses
// factor(i). reduce_lr_on_plateau instead changes the rate when evaluations stop
// improving (torch's ReduceLROnPlateau, stepped with the best-model metric after each
// evaluation, as HF's Trainer does).
//
// This file has no LibTorch dependency: it is pure arithmetic, cheap to test.
#ifndef TRAINERD_WORKER_TRAINER_LR_SCHEDULE_H_
#define TRAINERD_WORKER_TRAINER_LR_SCHEDULE_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "trainer/v1/job_spec.pb.h"
#include "worker/checkpoint/stateful.h"

namespace trainerd {

// State of reduce_lr_on_plateau that must survive a resume.
struct PlateauState {
  double lr = 0;
  double best = 0;
  int64_t num_bad_epochs = 0;
  int64_t cooldown_counter = 0;
  int64_t last_epoch = 0;
};

class LrSchedule : public Stateful {
 public:
  // Builds the schedule named by args.lr_scheduler_type for a run of
  // `num_training_steps` optimizer steps. Warmup is args.warmup_steps when > 0, else
  // ceil(num_training_steps * warmup_ratio), as HF's get_warmup_steps.
  static absl::StatusOr<std::unique_ptr<LrSchedule>> Create(
      const trainer::v1::TrainingArguments& args, int64_t num_training_steps);

  // The learning rate for the optimizer update that follows `step` completed updates.
  double LearningRate(int64_t step) const;

  // Reports an evaluation metric; only reduce_lr_on_plateau reacts.
  void OnEvaluate(double metric);

  bool is_plateau() const { return plateau_; }
  int64_t num_warmup_steps() const { return num_warmup_steps_; }

  // Checkpoints: reduce_lr_on_plateau's state in scheduler.json (written for every
  // schedule, so that a checkpoint's files do not depend on it).
  void SaveState(CheckpointContents& out) override;
  void LoadState(const CheckpointContents& in) override;

 private:
  LrSchedule() = default;
  // reduce_lr_on_plateau's options from args.lr_scheduler_kwargs.
  absl::Status SetUpPlateau(const trainer::v1::TrainingArguments& args);
  bool IsBetter(double current) const;

  double base_lr_ = 0;
  int64_t num_warmup_steps_ = 0;
  std::function<double(int64_t)> factor_;

  // reduce_lr_on_plateau only.
  bool plateau_ = false;
  bool mode_max_ = false;
  bool threshold_abs_ = false;
  double factor_on_plateau_ = 0.1;
  int64_t patience_ = 10;
  double threshold_ = 1e-4;
  int64_t cooldown_ = 0;
  double min_lr_ = 0;
  double eps_ = 1e-8;
  PlateauState state_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TRAINER_LR_SCHEDULE_H_
