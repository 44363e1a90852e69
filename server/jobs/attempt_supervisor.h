// AttemptSupervisor: runs jobs. It starts queued jobs' attempts when their gang fits in
// the free slots, follows their ranks (the launcher's events, heartbeats, output), stops
// them (cancel, shutdown, a failed rank, a lost heartbeat, SIGKILL after the grace
// period), judges how each attempt ended, restarts failed ones from their latest
// checkpoint, and after a trainerd restart re-attaches to ranks that survived it.
//
// Starting lives in attempt_starts.cc, following and judging in attempt_supervisor.cc.
//
// Threads: one supervisor thread does the periodic work (every poll interval); RPC
// handlers call Submit, Cancel, Resume, Delete and WorkerHeartbeat. All of it runs under mu_,
// which is held while the registry, the tailer and the launcher are called (each guards
// its own state and never calls back).
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
#include "server/jobs/job_admission.h"
#include "server/jobs/job_options.h"
#include "server/jobs/job_registry.h"
#include "server/jobs/output_tailer.h"
#include "server/jobs/scheduler.h"
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
  absl::Status Recover() ABSL_LOCKS_EXCLUDED(mu_);
  // Starts the supervisor thread. Workers reach the WorkerService at `worker_address`.
  void Start(const std::string& worker_address) ABSL_LOCKS_EXCLUDED(mu_);

  // Admits (job_admission.h) and queues a job of `submitter`'s; a validate_only
  // request is admitted and not queued. UNAVAILABLE while shutting down; on error
  // nothing of the job is kept.
  absl::StatusOr<trainer::v1::SubmitJobResponse> Submit(const trainer::v1::SubmitJobRequest& request,
                                                        const Submitter& submitter) ABSL_LOCKS_EXCLUDED(mu_);
  // Cancels a job: a queued one at once, a running one by SIGTERM (SIGKILL after the
  // grace period).
  absl::StatusOr<trainer::v1::Job> Cancel(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  // Queues a new attempt of a finished job from checkpoint `step` (0: the latest).
  absl::StatusOr<trainer::v1::Job> Resume(const std::string& id, int64_t checkpoint_step) ABSL_LOCKS_EXCLUDED(mu_);
  // Deletes a finished job's records, and its folder when `delete_files` (else the
  // folder keeps the owner's name in kDeletedOwnerFile).
  absl::Status Delete(const std::string& id, bool delete_files) ABSL_LOCKS_EXCLUDED(mu_);
  // Deletes the folder a Delete kept, once `may_delete(job)` allows it (the caller's
  // right to change the job: only its id, owner and owner_id are known). NOT_FOUND when
  // there is no such folder.
  absl::Status DeleteKeptFolder(const std::string& id,
                                const std::function<absl::Status(const trainer::v1::Job& kept)>& may_delete)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The WorkerService heartbeat, authenticated by the attempt's secret.
  absl::StatusOr<trainer::v1::HeartbeatResponse> WorkerHeartbeat(const std::string& secret,
                                                                 const trainer::v1::HeartbeatRequest& request)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Where queued job `id` stood at the scheduler's last pass (nullopt: not queued, or
  // queued since). Never waits for the supervisor's work (its own lock).
  std::optional<QueueSpot> QueueSpotOf(const std::string& id) ABSL_LOCKS_EXCLUDED(spots_mu_);
  // The most one job can ask for: every node's CPU slots together, and the GPUs of the
  // node that has most (a rank's GPUs are on its own machine).
  NodeSlots Capacity();

  // Stops accepting jobs and stops every worker gracefully (SIGTERM: they save a
  // checkpoint; SIGKILL after the grace period); returns once all have ended. Their
  // jobs resume at the next start.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);
  bool shutting_down() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  using Clock = std::chrono::steady_clock;

  // One rank of a running attempt.
  struct Rank {
    std::string node;  // where the launcher runs it
    pid_t pid = 0;     // on its node; 0 until the launcher reports it
    std::vector<int32_t> gpus;
    std::string heartbeat_path;
    std::optional<ExitInfo> exit;  // set once it ended
    std::optional<Clock::time_point> last_rpc_heartbeat;
  };
  // A running attempt: its ranks start together and stop together.
  struct Attempt {
    int32_t number = 0;
    std::vector<Rank> ranks;
    int64_t started_ms = 0;
    // While the cluster's queue holds the gang (waiting for nodes, or requeued after a
    // preemption) its ranks cannot send heartbeats: the timeout counts from when it
    // last left the queue.
    bool queued = false;
    int64_t alive_since_ms = 0;
    int32_t gpus_per_rank = 0;
    int64_t time_limit_s = 0;  // the job's resources.time_limit_s
    std::string secret;       // the attempt's WorkerService credential
    std::string stop_reason;  // why trainerd stops it (attempt_verdict.h); "" while it need not stop
    bool node_lost = false;
    int32_t failed_rank = -1;
    std::optional<ExitInfo> failure;  // the first failing rank's exit
    std::optional<Clock::time_point> term_sent;
    // False while output read from the files could not be stored (it is read again next
    // poll); an attempt whose ranks ended finishes only once its output is stored.
    bool output_stored = true;
    std::optional<ExitInfo> finish_pending;
  };

  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RemoveJobFolder(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PollOnce() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // An attempt of `job` numbered `number`, its ranks' files named, nothing started.
  Attempt NewAttempt(const trainer::v1::Job& job, int32_t number) const;
  // Recover() for one job whose last attempt was running.
  void RecoverJob(trainer::v1::Job job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleEvents() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordPid(const std::string& job_id, const Attempt& attempt, int32_t rank, pid_t pid)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records a kClusterState event on the attempt (its Slurm state, a preemption).
  void OnClusterState(const std::string& job_id, Attempt& attempt, const RankEvent& event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records that rank `rank` ended (on machine `where`, if known). A failure stops the
  // attempt's other ranks; when the last rank has ended (and its output is stored) the
  // attempt is finished. May erase the attempt.
  void OnRankEnded(const std::string& job_id, int32_t rank, ExitInfo exit, const std::string& where = "")
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Finishes pending attempts, escalates ignored SIGTERMs and kills silent ranks.
  void CheckAttempt(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stops every rank of the attempt that still runs: `reason` ("" keeps the one set).
  void StopAttempt(const std::string& job_id, Attempt& attempt, int signal, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishAttempt(const std::string& job_id, const ExitInfo& exit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Schedule() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The queue or the free slots may have changed: schedule, and plan the queue again.
  void QueueChanged() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    schedule_needed_ = true;
    queue_changed_ = true;
  }
  // Starts every rank of a new attempt; `nodes` says where each rank runs.
  void StartAttempt(trainer::v1::Job& job, const std::string& resume_from, const std::vector<std::string>& nodes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Free slots on every node.
  std::vector<NodeSlots> FreeSlotsByNode() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `count` GPU indices on `node` that no running rank holds, nor one in `taken`.
  std::vector<int32_t> FreeGpus(const std::string& node, int32_t count,
                                const std::vector<std::vector<int32_t>>& taken) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the job as the supervisor decided; the state table always allows these moves,
  // so a refusal means the job changed meanwhile (logged).
  void MoveTo(trainer::v1::Job& job, trainer::v1::JobState to) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const JobOptions options_;
  JobRegistry* const registry_;
  OutputTailer* const tailer_;
  Launcher* const launcher_;
  const std::function<void()> on_restart_;

  absl::Mutex mu_;
  std::map<std::string, Attempt> running_ ABSL_GUARDED_BY(mu_);  // job id -> its running attempt
  std::map<std::string, std::string> resume_requests_ ABSL_GUARDED_BY(mu_);  // job -> checkpoint folder
  // Set when the queue or the free slots may have changed: Schedule() reads the queue
  // from the store only then, so thousands of queued jobs cost nothing per poll.
  bool schedule_needed_ ABSL_GUARDED_BY(mu_) = true;
  // While nothing can start, the queue is still read to say where each job stands: when
  // it changed, at most once a second.
  bool queue_changed_ ABSL_GUARDED_BY(mu_) = true;
  Clock::time_point queue_planned_ ABSL_GUARDED_BY(mu_);
  absl::Mutex spots_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::map<std::string, QueueSpot> queue_spots_ ABSL_GUARDED_BY(spots_mu_);  // the jobs that wait
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_thread_ ABSL_GUARDED_BY(mu_) = false;
  std::string worker_address_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_JOBS_ATTEMPT_SUPERVISOR_H_
