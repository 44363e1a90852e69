#include "worker/trainer/trainer_callback.h"

#include <cmath>

#include <spdlog/spdlog.h>

namespace trainerd {

std::string BestMetricKey(const TrainingArguments& args) {
  std::string key = args.has_metric_for_best_model() ? args.metric_for_best_model() : "loss";
  return key.rfind("eval_", 0) == 0 ? key : "eval_" + key;
}

void DefaultFlowCallback::on_step_end(const TrainingArguments& args, TrainerState& state,
                                      TrainerControl& control) {
  if (state.global_step == 1 && args.logging_first_step()) control.should_log = true;
  if (args.logging_strategy() == "steps" && state.global_step % state.logging_steps == 0) {
    control.should_log = true;
  }
  if (args.eval_strategy() == "steps" && state.global_step % state.eval_steps == 0) {
    control.should_evaluate = true;
  }
  if (args.save_strategy() == "steps" && state.save_steps > 0 &&
      state.global_step % state.save_steps == 0) {
    control.should_save = true;
  }
  if (state.global_step >= state.max_steps) {
    control.should_training_stop = true;
    if (args.save_strategy() == "steps") control.should_save = true;
  }
}

void DefaultFlowCallback::on_epoch_end(const TrainingArguments& args, TrainerState& state,
                                       TrainerControl& control) {
  if (args.logging_strategy() == "epoch") control.should_log = true;
  if (args.eval_strategy() == "epoch") control.should_evaluate = true;
  if (args.save_strategy() == "epoch") control.should_save = true;
}

void EarlyStoppingCallback::on_evaluate(const TrainingArguments& args, TrainerState& state,
                                        TrainerControl& control, const Metrics& metrics) {
  if (!training_) return;
  const std::string key = BestMetricKey(args);
  auto it = metrics.find(key);
  if (it == metrics.end()) {
    spdlog::warn("early stopping: metric {} is not among the evaluation metrics; not stopping", key);
    return;
  }
  const double value = it->second;
  const bool better = !state.best_metric ||
                      ((args.greater_is_better() ? value > *state.best_metric : value < *state.best_metric) &&
                       std::abs(value - *state.best_metric) > threshold_);
  counter_ = better ? 0 : counter_ + 1;
  if (counter_ >= patience_) {
    spdlog::info("Early stopping: {} has not improved for {} evaluations", key, counter_);
    control.should_training_stop = true;
  }
}

CallbackState EarlyStoppingCallback::SaveState() const {
  return {{{"early_stopping_patience", static_cast<double>(patience_)},
           {"early_stopping_threshold", threshold_}},
          {{"early_stopping_patience_counter", static_cast<double>(counter_)}}};
}

void EarlyStoppingCallback::LoadState(const CallbackState& state) {
  auto it = state.attributes.find("early_stopping_patience_counter");
  if (it != state.attributes.end()) counter_ = static_cast<int64_t>(it->second);
}

std::vector<std::shared_ptr<TrainerCallback>> CreateCallbacks(const trainer::v1::JobSpec& spec) {
  std::vector<std::shared_ptr<TrainerCallback>> out;
  for (const auto& cb : spec.callbacks()) {
    if (cb.name() == "early_stopping") {
      out.push_back(std::make_shared<EarlyStoppingCallback>(cb.early_stopping_patience(),
                                                            cb.early_stopping_threshold()));
    } else if (cb.name() == "stop_after_steps") {
      out.push_back(std::make_shared<StopAfterStepsCallback>(cb.steps()));
    }
  }
  return out;
}

#define TRAINERD_CALL_EVENT(event, ...)            \
  for (auto& cb : callbacks_) cb->event(a, s, c, ##__VA_ARGS__)

void CallbackHandler::on_init_end(const TrainingArguments& a, TrainerState& s, TrainerControl& c) {
  TRAINERD_CALL_EVENT(on_init_end);
}
void CallbackHandler::on_train_begin(const TrainingArguments& a, TrainerState& s, TrainerControl& c) {
  c.should_training_stop = false;
  TRAINERD_CALL_EVENT(on_train_begin);
}
void CallbackHandler::on_train_end(const TrainingArguments& a, TrainerState& s, TrainerControl& c) {
  TRAINERD_CALL_EVENT(on_train_end);
}
void CallbackHandler::on_epoch_begin(const TrainingArguments& a, TrainerState& s, TrainerControl& c) {
  c.should_epoch_stop = false;
  TRAINERD_CALL_EVENT(on_epoch_begin);
}
void CallbackHandler::on_epoch_end(const TrainingArguments& a, TrainerState& s, TrainerControl& c) {
  TRAINERD_CALL_EVENT(on_epoch_end);
}
void CallbackHandler::on_step_begin(const TrainingArguments& a, TrainerState& s, TrainerControl& c) {
  c.should_log = false;
  c.should_evaluate = false;
  c.should_save = false;
  TRAINERD_CALL_EVENT(on_step_begin);
}
void CallbackHandler::on_pre_optimizer_step(const TrainingArguments& a, TrainerState& s, TrainerControl& c) {
  TRAINERD_CALL_EVENT(on_pre_optimizer_step);
}
void CallbackHandler::on_optimizer_step(const TrainingArguments& a, TrainerState& s, TrainerControl& c) {
  TRAINERD_CALL_EVENT(on_optimizer_step);
}
void CallbackHandler::on_substep_end(const TrainingArguments& a, TrainerState& s, TrainerControl& c) {
  TRAINERD_CALL_EVENT(on_substep_end);
}
void CallbackHandler::on_step_end(const TrainingArguments& a, TrainerState& s, TrainerControl& c) {
  TRAINERD_CALL_EVENT(on_step_end);
}
void CallbackHandler::on_evaluate(const TrainingArguments& a, TrainerState& s, TrainerControl& c,
                                  const Metrics& m) {
  c.should_evaluate = false;
  TRAINERD_CALL_EVENT(on_evaluate, m);
}
void CallbackHandler::on_predict(const TrainingArguments& a, TrainerState& s, TrainerControl& c,
                                 const Metrics& m) {
  TRAINERD_CALL_EVENT(on_predict, m);
}
void CallbackHandler::on_save(const TrainingArguments& a, TrainerState& s, TrainerControl& c) {
  c.should_save = false;
  TRAINERD_CALL_EVENT(on_save);
}
void CallbackHandler::on_log(const TrainingArguments& a, TrainerState& s, TrainerControl& c,
                             const Metrics& logs) {
  c.should_log = false;
  TRAINERD_CALL_EVENT(on_log, logs);
}
void CallbackHandler::on_prediction_step(const TrainingArguments& a, TrainerState& s, TrainerControl& c) {
  TRAINERD_CALL_EVENT(on_prediction_step);
}

#undef TRAINERD_CALL_EVENT

}  // namespace trainerd
