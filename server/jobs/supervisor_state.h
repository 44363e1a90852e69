// What the parts of the AttemptSupervisor share (attempt_supervisor.h says who they
// are): the attempts that run, and the queue's flags, under one mutex. Each part is
// handed this state; none keeps a copy of it.
#ifndef TRAINERD_SERVER_JOBS_SUPERVISOR_STATE_H_
#define TRAINERD_SERVER_JOBS_SUPERVISOR_STATE_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/jobs/job_registry.h"
#include "server/launch/launcher.h"
#include "trainer/v1/job_service.pb.h"

namespace trainerd {

using SupervisorClock = std::chrono::steady_clock;

// One rank of a running attempt.
struct RunningRank {
  std::string node;  // where the launcher runs it
  pid_t pid = 0;     // on its node; 0 until the launcher reports it
  std::vector<int32_t> gpus;
  std::string heartbeat_path;
  std::optional<ExitInfo> exit;  // set once it ended
  std::optional<SupervisorClock::time_point> last_rpc_heartbeat;
};

// A running attempt: its ranks start together and stop together.
struct RunningAttempt {
  int32_t number = 0;
  std::vector<RunningRank> ranks;
  int64_t started_ms = 0;
  // While the cluster's queue holds the gang (waiting for nodes, or requeued after a
  // preemption) its ranks cannot send heartbeats: the timeout counts from when it last
  // left the queue.
  bool queued = false;
  int64_t alive_since_ms = 0;
  int32_t gpus_per_rank = 0;
  int64_t time_limit_s = 0;  // the job's resources.time_limit_s
  std::string secret;        // the attempt's WorkerService credential
  std::string stop_reason;   // why trainerd stops it (attempt_verdict.h); "" while it need not stop
  bool node_lost = false;
  int32_t failed_rank = -1;
  std::optional<ExitInfo> failure;  // the first failing rank's exit
  std::optional<SupervisorClock::time_point> term_sent;
  // False while output read from the files could not be stored (it is read again next
  // poll); an attempt whose ranks ended finishes only once its output is stored.
  bool output_stored = true;
  std::optional<ExitInfo> finish_pending;
};

struct SupervisorState {
  absl::Mutex mu;
  std::map<std::string, RunningAttempt> running ABSL_GUARDED_BY(mu);       // job id -> its running attempt
  std::map<std::string, std::string> resume_requests ABSL_GUARDED_BY(mu);  // job -> checkpoint folder
  // Set when the queue or the free slots may have changed: the scheduler reads the queue
  // from the store only then, so thousands of queued jobs cost nothing per poll.
  bool schedule_needed ABSL_GUARDED_BY(mu) = true;
  // While nothing can start, the queue is still read to say where each job stands: when
  // it changed, at most once a second.
  bool queue_changed ABSL_GUARDED_BY(mu) = true;
  bool shutting_down ABSL_GUARDED_BY(mu) = false;
  bool stop_thread ABSL_GUARDED_BY(mu) = false;
  std::string worker_address ABSL_GUARDED_BY(mu);  // where workers reach the WorkerService

  // The queue or the free slots may have changed: schedule, and plan the queue again.
  void QueueChanged() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    schedule_needed = true;
    queue_changed = true;
  }
};

// An attempt of `job` numbered `number`, its ranks' heartbeat files named (under
// `data_root`), nothing started.
RunningAttempt NewRunningAttempt(const trainer::v1::Job& job, int32_t number, const std::string& data_root);

// Moves the job as the supervisor decided; the state table always allows these moves,
// so a refusal means the job changed meanwhile (logged).
void MoveJob(JobRegistry* registry, trainer::v1::Job& job, trainer::v1::JobState to);

}  // namespace trainerd

#endif  // TRAINERD_SERVER_JOBS_SUPERVISOR_STATE_H_
