// AttemptScheduler: the supervisor's part that starts queued jobs. When the queue or
// the free slots changed, it plans the queue (scheduler.h: priority, then age, the head
// holding its reservation), remembers where each waiting job stands, places the gangs
// that fit on nodes and GPUs, and starts their attempts through the launcher.
//
// Threads: its work runs under the supervisor's lock (SupervisorState::mu);
// QueueSpotOf takes only its own lock, so readers never wait for the supervisor.
#ifndef TRAINERD_SERVER_JOBS_ATTEMPT_SCHEDULER_H_
#define TRAINERD_SERVER_JOBS_ATTEMPT_SCHEDULER_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/jobs/job_options.h"
#include "server/jobs/job_registry.h"
#include "server/jobs/scheduler.h"
#include "server/jobs/supervisor_state.h"
#include "server/launch/launcher.h"

namespace trainerd {

class AttemptScheduler {
 public:
  // Every pointer outlives the scheduler.
  AttemptScheduler(const JobOptions* options, JobRegistry* registry, Launcher* launcher, SupervisorState* state)
      : options_(options), registry_(registry), launcher_(launcher), state_(state) {}

  // Checks (at run time too) that the caller holds the supervisor's lock this part
  // works under: the supervisor holds it as its own state's, which the compiler's lock
  // analysis cannot see to be the same mutex.
  void AssertLockHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK(state_->mu) { state_->mu.AssertHeld(); }
  // Starts what fits, when the queue or the free slots changed since the last pass.
  void Schedule() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu);
  // Where queued job `id` stood at the last pass (nullopt: not queued, or queued since).
  std::optional<QueueSpot> QueueSpotOf(const std::string& id) ABSL_LOCKS_EXCLUDED(spots_mu_);
  // The most one job can ask for: every node's CPU slots together, and the GPUs of the
  // node that has most (a rank's GPUs are on its own machine).
  NodeSlots Capacity();

 private:
  // Starts every rank of a new attempt; `nodes` says where each rank runs.
  void StartAttempt(trainer::v1::Job& job, const std::string& resume_from, const std::vector<std::string>& nodes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu);
  // Free slots on every node.
  std::vector<NodeSlots> FreeSlotsByNode() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu);
  // `count` GPU indices on `node` that no running rank holds, nor one in `taken`.
  std::vector<int32_t> FreeGpus(const std::string& node, int32_t count, const std::vector<std::vector<int32_t>>& taken)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu);

  const JobOptions* const options_;
  JobRegistry* const registry_;
  Launcher* const launcher_;
  SupervisorState* const state_;
  SupervisorClock::time_point queue_planned_ ABSL_GUARDED_BY(state_->mu);
  absl::Mutex spots_mu_ ABSL_ACQUIRED_AFTER(state_->mu);
  std::map<std::string, QueueSpot> queue_spots_ ABSL_GUARDED_BY(spots_mu_);  // the jobs that wait
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_JOBS_ATTEMPT_SCHEDULER_H_
