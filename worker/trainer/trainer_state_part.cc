#include "worker/trainer/trainer_state_part.h"

#include <string>

#include "protocol/job_layout.h"

namespace trainerd {

void TrainerStatePart::SaveState(CheckpointContents& out) {
  state_->stateful_callbacks.clear();
  for (const auto& cb : callbacks_->callbacks()) {
    if (!cb->stateful_name().empty()) state_->stateful_callbacks[cb->stateful_name()] = cb->SaveState();
  }
  out.Put(kTrainerStateFile, TrainerStateToJson(*state_));
}

void TrainerStatePart::LoadState(const CheckpointContents& in) {
  auto saved = TrainerStateFromJson(in.Need(kTrainerStateFile));
  if (!saved.ok()) in.Corrupt(std::string(saved.status().message()));
  state_->global_step = saved->global_step;
  state_->epoch = saved->epoch;
  state_->log_history = saved->log_history;
  state_->best_metric = saved->best_metric;
  state_->best_global_step = saved->best_global_step;
  state_->best_model_checkpoint = saved->best_model_checkpoint;
  for (const auto& cb : callbacks_->callbacks()) {
    auto it = saved->stateful_callbacks.find(cb->stateful_name());
    if (!cb->stateful_name().empty() && it != saved->stateful_callbacks.end()) cb->LoadState(it->second);
  }
}

}  // namespace trainerd
