// Callbacks, as in HF's trainer_callback.py: objects that watch the training loop and
// steer it through TrainerControl's flags.
//
// Event order in one update of gradient_accumulation_steps micro-batches:
//   on_step_begin, [on_substep_end after each micro-batch but the last],
//   on_pre_optimizer_step, on_optimizer_step, on_step_end, then (as flagged) on_log,
//   evaluation (on_prediction_step per batch, on_log, on_evaluate), on_save.
// Around it: on_init_end, on_train_begin, on_epoch_begin / on_epoch_end, on_train_end,
// and on_predict after predict().
#ifndef TRAINERD_WORKER_TRAINER_TRAINER_CALLBACK_H_
#define TRAINERD_WORKER_TRAINER_TRAINER_CALLBACK_H_

#include <memory>
#include <string>
#include <vector>

#include "trainer/v1/job_spec.pb.h"
#include "worker/trainer/trainer_state.h"

namespace trainerd {

using TrainingArguments = trainer::v1::TrainingArguments;

// The evaluation metric that decides the best model: metric_for_best_model (default
// "loss") with HF's "eval_" prefix added when missing.
std::string BestMetricKey(const TrainingArguments& args);

class TrainerCallback {
 public:
  virtual ~TrainerCallback() = default;

  virtual void on_init_end(const TrainingArguments&, TrainerState&, TrainerControl&) {}
  virtual void on_train_begin(const TrainingArguments&, TrainerState&, TrainerControl&) {}
  virtual void on_train_end(const TrainingArguments&, TrainerState&, TrainerControl&) {}
  virtual void on_epoch_begin(const TrainingArguments&, TrainerState&, TrainerControl&) {}
  virtual void on_epoch_end(const TrainingArguments&, TrainerState&, TrainerControl&) {}
  virtual void on_step_begin(const TrainingArguments&, TrainerState&, TrainerControl&) {}
  virtual void on_pre_optimizer_step(const TrainingArguments&, TrainerState&, TrainerControl&) {}
  virtual void on_optimizer_step(const TrainingArguments&, TrainerState&, TrainerControl&) {}
  virtual void on_substep_end(const TrainingArguments&, TrainerState&, TrainerControl&) {}
  virtual void on_step_end(const TrainingArguments&, TrainerState&, TrainerControl&) {}
  virtual void on_evaluate(const TrainingArguments&, TrainerState&, TrainerControl&,
                           const Metrics& metrics) {}
  virtual void on_predict(const TrainingArguments&, TrainerState&, TrainerControl&,
                          const Metrics& metrics) {}
  virtual void on_save(const TrainingArguments&, TrainerState&, TrainerControl&) {}
  virtual void on_log(const TrainingArguments&, TrainerState&, TrainerControl&,
                      const Metrics& logs) {}
  virtual void on_prediction_step(const TrainingArguments&, TrainerState&, TrainerControl&) {}

  // A callback whose state must survive a resume returns its name here (the key in
  // trainer_state.json's stateful_callbacks) and implements the two methods below.
  virtual std::string stateful_name() const { return ""; }
  virtual CallbackState SaveState() const { return {}; }
  virtual void LoadState(const CallbackState& state) {}
};

// HF's DefaultFlowCallback: turns logging/eval/save strategies into control flags.
class DefaultFlowCallback : public TrainerCallback {
 public:
  void on_step_end(const TrainingArguments& args, TrainerState& state, TrainerControl& control) override;
  void on_epoch_end(const TrainingArguments& args, TrainerState& state, TrainerControl& control) override;
};

// HF's EarlyStoppingCallback: stops training when metric_for_best_model has not
// improved (by more than threshold) for `patience` evaluations.
class EarlyStoppingCallback : public TrainerCallback {
 public:
  EarlyStoppingCallback(int64_t patience, double threshold)
      : patience_(patience), threshold_(threshold) {}
  void on_train_begin(const TrainingArguments&, TrainerState&, TrainerControl&) override { training_ = true; }
  void on_train_end(const TrainingArguments&, TrainerState&, TrainerControl&) override { training_ = false; }
  // Counts evaluations during training only: one after train_end (the final do_eval)
  // has no training left to stop.
  void on_evaluate(const TrainingArguments& args, TrainerState& state, TrainerControl& control,
                   const Metrics& metrics) override;
  std::string stateful_name() const override { return "EarlyStoppingCallback"; }
  CallbackState SaveState() const override;
  void LoadState(const CallbackState& state) override;
  int64_t patience_counter() const { return counter_; }

 private:
  int64_t patience_;
  double threshold_;
  int64_t counter_ = 0;
  bool training_ = false;
};

// Stops training after a fixed number of optimizer steps (the seed's example callback).
class StopAfterStepsCallback : public TrainerCallback {
 public:
  explicit StopAfterStepsCallback(int64_t steps) : steps_(steps) {}
  void on_step_end(const TrainingArguments&, TrainerState& state, TrainerControl& control) override {
    if (state.global_step >= steps_) control.should_training_stop = true;
  }

 private:
  int64_t steps_;
};

// Stops training at a step with a checkpoint saved there, whatever save_strategy says
// (trainer-worker --stop-at-step: a sweep's rung). Resuming from that checkpoint goes on
// as if the run had never stopped: max_steps, and with it the schedule, stay the same.
class StopAtStepCallback : public TrainerCallback {
 public:
  explicit StopAtStepCallback(int64_t step) : step_(step) {}
  void on_step_end(const TrainingArguments&, TrainerState& state, TrainerControl& control) override {
    if (state.global_step < step_) return;
    control.should_save = true;
    control.should_training_stop = true;
  }

 private:
  int64_t step_;
};

// The built-in callbacks a spec names.
std::vector<std::shared_ptr<TrainerCallback>> CreateCallbacks(const trainer::v1::JobSpec& spec);

// Calls every callback in order and resets the flags each event consumes, as HF's
// CallbackHandler does.
class CallbackHandler {
 public:
  void Add(std::shared_ptr<TrainerCallback> callback) { callbacks_.push_back(std::move(callback)); }
  const std::vector<std::shared_ptr<TrainerCallback>>& callbacks() const { return callbacks_; }

  void on_init_end(const TrainingArguments& a, TrainerState& s, TrainerControl& c);
  void on_train_begin(const TrainingArguments& a, TrainerState& s, TrainerControl& c);
  void on_train_end(const TrainingArguments& a, TrainerState& s, TrainerControl& c);
  void on_epoch_begin(const TrainingArguments& a, TrainerState& s, TrainerControl& c);
  void on_epoch_end(const TrainingArguments& a, TrainerState& s, TrainerControl& c);
  void on_step_begin(const TrainingArguments& a, TrainerState& s, TrainerControl& c);
  void on_pre_optimizer_step(const TrainingArguments& a, TrainerState& s, TrainerControl& c);
  void on_optimizer_step(const TrainingArguments& a, TrainerState& s, TrainerControl& c);
  void on_substep_end(const TrainingArguments& a, TrainerState& s, TrainerControl& c);
  void on_step_end(const TrainingArguments& a, TrainerState& s, TrainerControl& c);
  void on_evaluate(const TrainingArguments& a, TrainerState& s, TrainerControl& c, const Metrics& m);
  void on_predict(const TrainingArguments& a, TrainerState& s, TrainerControl& c, const Metrics& m);
  void on_save(const TrainingArguments& a, TrainerState& s, TrainerControl& c);
  void on_log(const TrainingArguments& a, TrainerState& s, TrainerControl& c, const Metrics& logs);
  void on_prediction_step(const TrainingArguments& a, TrainerState& s, TrainerControl& c);

 private:
  std::vector<std::shared_ptr<TrainerCallback>> callbacks_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TRAINER_TRAINER_CALLBACK_H_
