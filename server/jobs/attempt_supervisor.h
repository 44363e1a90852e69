// AttemptSupervisor: runs jobs. It is the jobs' lifecycle as users ask for it (submit,
// cancel, resume, delete, and trainerd's own shutdown), and it wires the parts that do
// the rest, one per concept, over one shared SupervisorState:
//   - AttemptScheduler (attempt_scheduler.h): plans the queue and starts the attempts
//     whose gang fits in the free slots;
//   - AttemptMonitor (attempt_monitor.h): follows running attempts (the launcher's
//     events, heartbeats, output), stops them, judges how each ended and restarts failed
//     ones from their latest checkpoint;
//   - AttemptRecovery (attempt_recovery.h): after a trainerd restart, re-attaches to the
//     ranks that survived it.
//
// Threads: one supervisor thread does the periodic work (every poll interval); RPC
// handlers call Submit, Cancel, Resume, Delete and WorkerHeartbeat. All of it runs under
// the state's mutex, which is held while the registry, the tailer and the launcher are
// called (each guards its own state and never calls back).
#ifndef TRAINERD_SERVER_JOBS_ATTEMPT_SUPERVISOR_H_
#define TRAINERD_SERVER_JOBS_ATTEMPT_SUPERVISOR_H_

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/jobs/attempt_monitor.h"
#include "server/jobs/attempt_recovery.h"
#include "server/jobs/attempt_scheduler.h"
#include "server/jobs/job_admission.h"
#include "server/jobs/job_options.h"
#include "server/jobs/job_registry.h"
#include "server/jobs/output_tailer.h"
#include "server/jobs/scheduler.h"
#include "server/jobs/supervisor_state.h"
#include "server/launch/launcher.h"
#include "trainer/v1/job_service.pb.h"

namespace trainerd {

class AttemptSupervisor {
 public:
  // Every pointer outlives the supervisor. `on_restart` (optional) is told of each
  // restart of a failed attempt.
  AttemptSupervisor(JobOptions options, JobRegistry* registry, OutputTailer* tailer, Launcher* launcher,
                    std::function<void()> on_restart);
  // Stops the supervisor thread (the workers keep running: see Shutdown).
  ~AttemptSupervisor();

  // Judges the attempts that were running when trainerd stopped: re-attaches to ranks
  // that still run, restarts or finishes the others. Call once, before Start.
  absl::Status Recover() ABSL_LOCKS_EXCLUDED(state_.mu) { return recovery_.Recover(); }
  // Starts the supervisor thread. Workers reach the WorkerService at `worker_address`.
  void Start(const std::string& worker_address) ABSL_LOCKS_EXCLUDED(state_.mu);

  // Admits (job_admission.h) and queues a job of `submitter`'s; a validate_only
  // request is admitted and not queued. UNAVAILABLE while shutting down; on error
  // nothing of the job is kept.
  absl::StatusOr<trainer::v1::SubmitJobResponse> Submit(const trainer::v1::SubmitJobRequest& request,
                                                        const Submitter& submitter) ABSL_LOCKS_EXCLUDED(state_.mu);
  // Cancels a job: a queued one at once, a running one by SIGTERM (SIGKILL after the
  // grace period).
  absl::StatusOr<trainer::v1::Job> Cancel(const std::string& id) ABSL_LOCKS_EXCLUDED(state_.mu);
  // Queues a new attempt of a finished job from checkpoint `step` (0: the latest), to
  // stop at `stop_at_step` (0: at its end).
  absl::StatusOr<trainer::v1::Job> Resume(const std::string& id, int64_t checkpoint_step, int64_t stop_at_step = 0)
      ABSL_LOCKS_EXCLUDED(state_.mu);
  // Deletes a finished job's records, and its folder when `delete_files` (else the
  // folder keeps the owner's name in kDeletedOwnerFile).
  absl::Status Delete(const std::string& id, bool delete_files) ABSL_LOCKS_EXCLUDED(state_.mu);
  // Deletes the folder a Delete kept, once `may_delete(job)` allows it (the caller's
  // right to change the job: only its id, owner and owner_id are known). NOT_FOUND when
  // there is no such folder.
  absl::Status DeleteKeptFolder(const std::string& id,
                                const std::function<absl::Status(const trainer::v1::Job& kept)>& may_delete)
      ABSL_LOCKS_EXCLUDED(state_.mu);
  // The WorkerService heartbeat, authenticated by the attempt's secret.
  absl::StatusOr<trainer::v1::HeartbeatResponse> WorkerHeartbeat(const std::string& secret,
                                                                 const trainer::v1::HeartbeatRequest& request) {
    return monitor_.WorkerHeartbeat(secret, request);
  }
  // Where queued job `id` stood at the scheduler's last pass (nullopt: not queued, or
  // queued since). Never waits for the supervisor's work (its own lock).
  std::optional<QueueSpot> QueueSpotOf(const std::string& id) { return scheduler_.QueueSpotOf(id); }
  // The most one job can ask for: every node's CPU slots together, and the GPUs of the
  // node that has most (a rank's GPUs are on its own machine).
  NodeSlots Capacity() { return scheduler_.Capacity(); }

  // Stops accepting jobs and stops every worker gracefully (SIGTERM: they save a
  // checkpoint; SIGKILL after the grace period); returns once all have ended. Their
  // jobs resume at the next start.
  void Shutdown() ABSL_LOCKS_EXCLUDED(state_.mu);
  bool shutting_down() ABSL_LOCKS_EXCLUDED(state_.mu);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(state_.mu);
  void PollOnce() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_.mu);
  absl::Status RemoveJobFolder(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_.mu);

  const JobOptions options_;
  JobRegistry* const registry_;
  OutputTailer* const tailer_;
  SupervisorState state_;
  AttemptScheduler scheduler_;
  AttemptMonitor monitor_;
  AttemptRecovery recovery_;
  std::thread thread_;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_JOBS_ATTEMPT_SUPERVISOR_H_
