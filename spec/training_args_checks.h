// The checks of TrainingArguments: optimizer, schedule, strategies, precision and speed
// options, checkpoints and the best model. Internal to spec/ (FindSpecProblems runs them).
#ifndef TRAINERD_SPEC_TRAINING_ARGS_CHECKS_H_
#define TRAINERD_SPEC_TRAINING_ARGS_CHECKS_H_

#include "spec/spec_checker.h"
#include "trainer/v1/job_spec.pb.h"

namespace trainerd {

// Adds every problem of spec.training_args (and of the callbacks, which act on them).
void CheckTrainingArgs(const trainer::v1::JobSpec& spec, Checker* c);

}  // namespace trainerd

#endif  // TRAINERD_SPEC_TRAINING_ARGS_CHECKS_H_
