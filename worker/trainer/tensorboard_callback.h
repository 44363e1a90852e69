// HF's TensorBoardCallback (report_to: tensorboard): every logged metric as a scalar at
// its global step, with HF's tags (eval_loss -> eval/loss, test_x -> test/x, loss ->
// train/loss). Rank 0 only; a failed write is logged once and training goes on.
#ifndef TRAINERD_WORKER_TRAINER_TENSORBOARD_CALLBACK_H_
#define TRAINERD_WORKER_TRAINER_TENSORBOARD_CALLBACK_H_

#include <memory>
#include <string>

#include "worker/trainer/tensorboard_writer.h"
#include "worker/trainer/trainer_callback.h"

namespace trainerd {

class TensorBoardCallback : public TrainerCallback {
 public:
  explicit TensorBoardCallback(std::unique_ptr<TensorBoardWriter> writer) : writer_(std::move(writer)) {}
  void on_log(const TrainingArguments& args, TrainerState& state, TrainerControl& control,
              const Metrics& logs) override;

  // HF's rewrite_logs for one metric name.
  static std::string Tag(const std::string& name);

 private:
  std::unique_ptr<TensorBoardWriter> writer_;
  bool failed_ = false;
};

// The folder TensorBoard's files go to: logging_dir (relative to output_dir), else HF's
// default output_dir/runs/<Mon DD_HH-MM-SS>_<host>, or when `resuming` the newest folder
// already there, so that a resumed run continues the same TensorBoard run.
std::string TensorBoardDir(const TrainingArguments& args, bool resuming);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TRAINER_TENSORBOARD_CALLBACK_H_
