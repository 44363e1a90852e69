// AttemptRecovery: the supervisor's part that picks up after a trainerd restart. For
// each job whose last attempt was running it re-attaches to the ranks that survived
// (the launcher adopts them by their recorded pids, nodes or cluster job), or, when the
// gang lost a rank, stops the survivors, stores what the ranks wrote, and ends the
// attempt: the job succeeded meanwhile, was being cancelled, or restarts uncounted.
//
// Threads: Recover runs once, before the supervisor's thread starts, under its lock.
#ifndef TRAINERD_SERVER_JOBS_ATTEMPT_RECOVERY_H_
#define TRAINERD_SERVER_JOBS_ATTEMPT_RECOVERY_H_

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "server/jobs/job_options.h"
#include "server/jobs/job_registry.h"
#include "server/jobs/output_tailer.h"
#include "server/jobs/supervisor_state.h"
#include "server/launch/launcher.h"

namespace trainerd {

class AttemptRecovery {
 public:
  // Every pointer outlives this object.
  AttemptRecovery(const JobOptions* options, JobRegistry* registry, OutputTailer* tailer, Launcher* launcher,
                  SupervisorState* state)
      : options_(options), registry_(registry), tailer_(tailer), launcher_(launcher), state_(state) {}

  // Judges the attempts that were running when trainerd stopped.
  absl::Status Recover() ABSL_LOCKS_EXCLUDED(state_->mu);

 private:
  // Recover() for one job whose last attempt was running.
  void RecoverJob(trainer::v1::Job job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu);

  const JobOptions* const options_;
  JobRegistry* const registry_;
  OutputTailer* const tailer_;
  Launcher* const launcher_;
  SupervisorState* const state_;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_JOBS_ATTEMPT_RECOVERY_H_
