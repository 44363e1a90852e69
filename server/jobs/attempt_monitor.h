// AttemptMonitor: the supervisor's part that follows running attempts. It takes the
// launcher's events (a rank started, ended, a cluster's word on its job), stores what
// the ranks wrote (OutputTailer), stops attempts (a failed rank takes its gang down; a
// lost heartbeat, the time limit, SIGKILL once the grace period after SIGTERM is over),
// answers the workers' heartbeats, and once every rank has ended judges the attempt
// (attempt_verdict.h): the job succeeds, fails, or is queued again to restart.
//
// Threads: everything runs under the supervisor's lock (SupervisorState::mu);
// WorkerHeartbeat takes it itself.
#ifndef TRAINERD_SERVER_JOBS_ATTEMPT_MONITOR_H_
#define TRAINERD_SERVER_JOBS_ATTEMPT_MONITOR_H_

#include <functional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "server/jobs/job_options.h"
#include "server/jobs/job_registry.h"
#include "server/jobs/output_tailer.h"
#include "server/jobs/supervisor_state.h"
#include "server/launch/launcher.h"
#include "trainer/v1/job_service.pb.h"

namespace trainerd {

class AttemptMonitor {
 public:
  // Every pointer outlives the monitor. `on_restart` (optional) is told of each restart
  // of a failed attempt.
  AttemptMonitor(const JobOptions* options, JobRegistry* registry, OutputTailer* tailer, Launcher* launcher,
                 SupervisorState* state, std::function<void()> on_restart)
      : options_(options),
        registry_(registry),
        tailer_(tailer),
        launcher_(launcher),
        state_(state),
        on_restart_(std::move(on_restart)) {}

  // Checks (at run time too) that the caller holds the supervisor's lock this part
  // works under: the supervisor holds it as its own state's, which the compiler's lock
  // analysis cannot see to be the same mutex.
  void AssertLockHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK(state_->mu) { state_->mu.AssertHeld(); }
  // One pass: the launcher's events, then each attempt's output and deadlines.
  void Poll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu);
  // Stops every rank of the attempt that still runs with `signal`; `reason` (attempt_verdict.h)
  // is why, unless one is set already.
  void StopAttempt(const std::string& job_id, RunningAttempt& attempt, int signal, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu);
  // The WorkerService heartbeat, authenticated by the attempt's secret.
  absl::StatusOr<trainer::v1::HeartbeatResponse> WorkerHeartbeat(const std::string& secret,
                                                                 const trainer::v1::HeartbeatRequest& request)
      ABSL_LOCKS_EXCLUDED(state_->mu);

 private:
  void HandleEvents() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu);
  void RecordPid(const std::string& job_id, const RunningAttempt& attempt, int32_t rank, pid_t pid)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu);
  // Records a kClusterState event on the attempt (its cluster job's state, a preemption).
  void OnClusterState(const std::string& job_id, RunningAttempt& attempt, const RankEvent& event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu);
  // Records that rank `rank` ended (on machine `where`, if known). A failure stops the
  // attempt's other ranks; when the last rank has ended (and its output is stored) the
  // attempt is finished. May erase the attempt.
  void OnRankEnded(const std::string& job_id, int32_t rank, ExitInfo exit, const std::string& where = "")
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu);
  // Finishes pending attempts, escalates ignored SIGTERMs and kills silent ranks.
  void CheckAttempt(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu);
  void FinishAttempt(const std::string& job_id, const ExitInfo& exit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu);

  const JobOptions* const options_;
  JobRegistry* const registry_;
  OutputTailer* const tailer_;
  Launcher* const launcher_;
  SupervisorState* const state_;
  const std::function<void()> on_restart_;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_JOBS_ATTEMPT_MONITOR_H_
