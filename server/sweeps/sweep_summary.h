// What a sweep's trials add up to (Sweep's summary fields): how many started, run and
// ended, the best trial, and the steps trained against the steps that running every
// trial to its end would have taken. Pure: the trials must be in sweep->trials().
#ifndef TRAINERD_SERVER_SWEEPS_SWEEP_SUMMARY_H_
#define TRAINERD_SERVER_SWEEPS_SWEEP_SUMMARY_H_

#include "trainer/v1/sweep_service.pb.h"

namespace trainerd {

// The best trial: of those with an objective, the ones that reached the highest rung
// (a value after more training is not compared with one after less), and of those the
// best objective by the sweep's direction (NaN is worst); ties: the lower number.
// Returns 0 when no trial has an objective.
int32_t BestTrial(const trainer::v1::Sweep& sweep);

// Sets trials_started/running/ended, best_trial/best_objective/best_checkpoint (the best
// trial's Trial.checkpoint), steps_trained and steps_without_stopping.
void SummarizeSweep(trainer::v1::Sweep* sweep);

// Whether a trial in `state` has ended (its job will not change the sweep any more).
bool TrialEnded(trainer::v1::TrialState state);

}  // namespace trainerd

#endif  // TRAINERD_SERVER_SWEEPS_SWEEP_SUMMARY_H_
