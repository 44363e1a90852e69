#include "server/sweeps/sweep_summary.h"

#include <algorithm>
#include <cmath>

namespace trainerd {

using trainer::v1::Sweep;
using trainer::v1::Trial;

bool TrialEnded(trainer::v1::TrialState state) {
  return state == trainer::v1::TRIAL_COMPLETED || state == trainer::v1::TRIAL_STOPPED ||
         state == trainer::v1::TRIAL_FAILED || state == trainer::v1::TRIAL_CANCELLED;
}

int32_t BestTrial(const Sweep& sweep) {
  const bool maximize = sweep.spec().objective().direction() == "maximize";
  const Trial* best = nullptr;
  for (const Trial& t : sweep.trials()) {
    if (!t.has_objective()) continue;
    if (best == nullptr || t.rung() > best->rung()) {
      best = &t;
      continue;
    }
    if (t.rung() < best->rung() || std::isnan(t.objective())) continue;
    const bool better = std::isnan(best->objective()) ||
                        (maximize ? t.objective() > best->objective() : t.objective() < best->objective());
    if (better) best = &t;
  }
  return best == nullptr ? 0 : best->number();
}

void SummarizeSweep(Sweep* sweep) {
  int32_t running = 0, ended = 0;
  int64_t trained = 0;
  for (const Trial& t : sweep->trials()) {
    (TrialEnded(t.state()) ? ended : running) += 1;
    trained += t.steps();
  }
  sweep->set_trials_started(sweep->trials_size());
  sweep->set_trials_running(running);
  sweep->set_trials_ended(ended);
  sweep->set_steps_trained(trained);
  const auto& searcher = sweep->spec().searcher();
  sweep->set_steps_without_stopping(searcher.name() == "asha" ? int64_t{sweep->spec().n_trials()} * searcher.max_length()
                                                              : trained);
  const int32_t best = BestTrial(*sweep);
  sweep->set_best_trial(best);
  sweep->clear_best_objective();
  sweep->clear_best_checkpoint();
  for (const Trial& t : sweep->trials()) {
    if (t.number() != best) continue;
    sweep->set_best_objective(t.objective());
    sweep->set_best_checkpoint(t.checkpoint());
  }
}

}  // namespace trainerd
