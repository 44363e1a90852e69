// JobManager: trainerd's core. It owns the jobs' life cycle: accepts submissions,
// queues them, starts worker processes when slots are free, follows their output into
// the store, restarts failed attempts from their latest checkpoint, cancels, and
// recovers after a trainerd restart.
//
// Threads: RPC handlers call the public methods; one supervisor thread does all
// process work (start, reap, tail output, heartbeats, escalate signals, schedule)
// every poll interval. Job mutations are serialised by mu_; reads go to the store.
#ifndef TRAINERD_SERVER_JOB_MANAGER_H_
#define TRAINERD_SERVER_JOB_MANAGER_H_

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "proto/spec/spec_policy.h"
#include "server/scheduler.h"
#include "server/worker_process.h"
#include "storage/job_store.h"
#include "trainer/v1/job_service.pb.h"

namespace trainerd {

struct JobManagerOptions {
  std::string data_root;                      // holds jobs/<id>/
  std::string worker_program;                 // trainer-worker
  std::vector<std::string> allowed_worker_dirs;  // where custom worker programs may live
  int32_t cpu_slots = 1;
  int32_t threads_per_slot = 1;  // LibTorch threads of a rank whose spec leaves them at 0
  int32_t gpus = 0;
  int32_t default_max_restarts = 3;
  double heartbeat_timeout_s = 300;
  double grace_period_s = 30;
  double poll_interval_s = 0.1;
  // Multi-node: the address other machines reach this one at (rank 0's store when it
  // runs here), how often agents poll, and how long a silent agent counts as alive.
  std::string advertise_host = "127.0.0.1";
  double agent_poll_interval_s = 0.5;
  double agent_timeout_s = 10;
  std::string agent_token;  // when set, agents must present it
  // When trainerd serves TLS: the CA file its workers verify it with (TRAINERD_TLS_CA).
  std::string worker_tls_ca;
  // Where jobs' files may be and how large jobs may grow; workers get it too.
  SpecPolicy spec_policy;
};

// Observers for the daemon's metrics (called with mu_ held; must be quick).
struct JobManagerHooks {
  std::function<void(const trainer::v1::Job&)> on_job_changed;
  std::function<void(const trainer::v1::Job&)> on_job_finished;
  std::function<void()> on_restart;
};

class JobManager {
 public:
  // Recovers the jobs found in `store` (re-attaching to workers that survived).
  // `store` must outlive the manager. Call Start() once the gRPC server is up.
  static absl::StatusOr<std::unique_ptr<JobManager>> Create(JobManagerOptions options, JobStore* store,
                                                            JobManagerHooks hooks = {});
  ~JobManager();

  // Starts the supervisor thread. Workers reach the WorkerService at `worker_address`.
  void Start(const std::string& worker_address);

  // Validates and queues a job. INVALID_ARGUMENT lists every bad field.
  // Validates and queues a job owned by user `owner`.
  absl::StatusOr<trainer::v1::Job> Submit(const trainer::v1::SubmitJobRequest& request, const std::string& owner);
  absl::StatusOr<trainer::v1::Job> Get(const std::string& id);
  // A page of jobs; `owner` non-empty: only that user's.
  absl::StatusOr<trainer::v1::ListJobsResponse> List(const trainer::v1::ListJobsRequest& request,
                                                     const std::string& owner);
  absl::StatusOr<trainer::v1::Job> Cancel(const std::string& id);
  // Queues a new attempt of a finished job from checkpoint `step` (0: the latest).
  absl::StatusOr<trainer::v1::Job> Resume(const std::string& id, int64_t checkpoint_step);
  // Deletes a finished job's records (and its folder when `delete_files`).
  absl::Status Delete(const std::string& id, bool delete_files);

  // Blocks until something changed after `seen` (a value this returned before), the
  // timeout passes, or shutdown; returns the current change counter.
  uint64_t WaitForChange(uint64_t seen, std::chrono::milliseconds timeout);
  uint64_t change_counter();

  // Stops accepting jobs and stops every worker gracefully (SIGTERM: they save a
  // checkpoint; SIGKILL after the grace period). Their jobs resume at the next start.
  void Shutdown();
  bool shutting_down();

  // WorkerService: calls from workers, authenticated by their attempt's secret.
  absl::StatusOr<trainer::v1::HeartbeatResponse> WorkerHeartbeat(const std::string& secret,
                                                                 const trainer::v1::HeartbeatRequest& request);

  // AgentService: calls from trainerd agents on other machines (job_agents.cc).
  absl::StatusOr<trainer::v1::RegisterAgentResponse> AgentRegister(const std::string& token,
                                                                   const trainer::v1::RegisterAgentRequest& request);
  absl::StatusOr<trainer::v1::AgentPollResponse> AgentPoll(const std::string& token,
                                                           const trainer::v1::AgentPollRequest& request);
  // The live agents: {id: "name (host), N slots"}.
  std::map<std::string, std::string> Agents();

  JobStore* store() { return store_; }

 private:
  using Clock = std::chrono::steady_clock;

  // One rank of a running attempt.
  struct RankProc {
    int32_t rank = 0;
    std::string node;  // "" = this machine; else the id of the agent that runs it
    pid_t pid = 0;     // on its node; 0 until an agent reports it
    std::string log_path, log_key, heartbeat_path;
    int64_t log_offset = 0;
    std::vector<int32_t> gpus;     // GPU indices on its node (its CUDA_VISIBLE_DEVICES)
    std::optional<ExitInfo> exit;  // set once it ended
    std::optional<Clock::time_point> last_rpc_heartbeat;
  };

  // A running attempt: its ranks start together and stop together.
  struct Running {
    std::string job_id;
    int32_t attempt = 0;
    bool child = true;  // false: re-attached after a restart (cannot be waited for)
    std::vector<RankProc> ranks;
    int64_t started_ms = 0;
    int32_t cpu_slots = 1, gpus = 0;
    std::string secret;       // the attempt's WorkerService credential
    std::string stop_reason;  // "cancelled", "shutdown", "heartbeat lost ...", "rank 1 ..."
    bool node_lost = false;   // an agent vanished: the restart is not the job's fault
    int32_t failed_rank = -1;
    std::optional<ExitInfo> failure;  // the first failing rank's exit
    std::optional<Clock::time_point> term_sent;
    // False while output read from the files could not be stored (it is read again next
    // poll); an attempt whose ranks ended finishes only once its output is stored.
    bool output_stored = true;
    std::optional<ExitInfo> finish_pending;
  };

  JobManager(JobManagerOptions options, JobStore* store, JobManagerHooks hooks);
  std::string JobDir(const std::string& id) const;
  // OK while a job's custom worker_program is still the file resolved at submission,
  // in an allowed folder.
  absl::Status CheckWorkerProgram(const trainer::v1::Job& job) const;
  // The RLIMIT_AS every local worker runs under, from --max-job-memory (0: none).
  int64_t WorkerAddressSpaceLimit() const;
  // Saves `job` (stamping updated_unix_ms). The in-memory copy is the truth the manager
  // works from, so it is updated even when the write fails; the job is then kept in
  // unsaved_ with the error shown as Job.store_error, and FlushUnsaved retries it every
  // poll. The hooks see a change only once it is saved, so that they never count what a
  // restart would not find.
  // `finishing`: this save ends the job (the finished hook fires once it is saved).
  void PutJob(trainer::v1::Job& job, bool finishing = false) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Changes the job's state and saves it. FAILED_PRECONDITION for a transition the state
  // table forbids (nothing changes then).
  absl::Status Transition(trainer::v1::Job& job, trainer::v1::JobState to) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Transition for the supervisor's own moves, which the state table always allows: a
  // refusal is a bug, logged.
  void MoveTo(trainer::v1::Job& job, trainer::v1::JobState to) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Retries saving the jobs whose last write failed.
  void FlushUnsaved() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Shows `error` as the job's store_error (output that could not be stored); the next
  // successful save clears it.
  void NoteUnsaved(const std::string& job_id, const absl::Status& error) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes `job` to the store and the cache (with store_error on failure); on success the
  // hooks follow and the job leaves unsaved_.
  absl::Status StoreJob(const trainer::v1::Job& job, bool finishing) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Supervisor (job_supervisor.cc; placing and starting in job_launch.cc, following
  // output in job_output.cc).
  // The file paths, tail key and slots of attempt `attempt` of `job`.
  Running AttemptFiles(const trainer::v1::Job& job, int32_t attempt) const;
  absl::Status Recover();
  void SupervisorLoop();
  void PollOnce() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Schedule() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts every rank of a new attempt; `nodes` says where each rank runs.
  void StartAttempt(trainer::v1::Job& job, const std::string& resume_from, const std::vector<std::string>& nodes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stores the output the ranks wrote since the last call; sets running.output_stored.
  void TailOutput(const std::string& job_id, Running& running) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CheckWorker(const std::string& job_id, Running& running) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records that rank `rank` ended. A failure stops the attempt's other ranks; when the
  // last rank has ended the attempt is finished. May erase `running`.
  void OnRankExit(const std::string& job_id, Running& running, size_t rank, const ExitInfo& exit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends `signal` to every rank of `running` that still runs, wherever it runs.
  void SignalRanks(Running& running, int signal) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishAttempt(const std::string& job_id, const ExitInfo& exit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status LaunchRank(const std::string& job_id, Running& running, RankProc& rank, const WorkerLaunch& launch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Nodes (job_agents.cc).
  struct Agent {
    std::string name, host;
    int32_t cpu_slots = 0, gpus = 0;
    Clock::time_point last_poll;
    std::vector<trainer::v1::StartRank> to_start;
    std::vector<trainer::v1::SignalRank> to_signal;
  };
  // Free slots on this machine and on every live agent.
  std::vector<NodeSlots> FreeSlotsByNode() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The most one job can ask for: every node's CPU slots together, and the GPUs of the
  // node that has most (a rank's GPUs are on its own machine).
  NodeSlots Capacity() ABSL_LOCKS_EXCLUDED(mu_);
  std::string NodeAddress(const std::string& node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `count` GPU indices on `node` that no running rank holds, nor a rank of `starting`
  // (the attempt being started); fewer if there are not.
  std::vector<int32_t> FreeGpus(const std::string& node, int32_t count, const Running& starting)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status StartRemoteRank(const std::string& job_id, Running& running, RankProc& rank,
                               const WorkerLaunch& launch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SignalRemoteRank(Running& running, RankProc& rank, int signal)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Declares agents that stopped polling lost and fails the attempts that had ranks there.
  void CheckAgents() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckAgentToken(const std::string& token) const;
  // The running attempt a worker call is for, if `secret` is its credential.
  absl::StatusOr<Running*> Authenticate(const std::string& secret, const std::string& job_id, int32_t attempt)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const JobManagerOptions options_;
  JobStore* const store_;
  const JobManagerHooks hooks_;
  std::mutex mu_;
  std::condition_variable changed_;
  uint64_t change_counter_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_supervisor_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, Running> running_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Agent> agents_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> jsonl_offsets_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> resume_requests_ ABSL_GUARDED_BY(mu_);  // job -> checkpoint dir
  // Jobs whose latest state is not saved yet: whether they finished (for the hook).
  std::map<std::string, bool> unsaved_ ABSL_GUARDED_BY(mu_);
  // Set when the queue or the free slots may have changed: Schedule() reads the queue
  // from the store only then, so thousands of queued jobs cost nothing per poll.
  bool schedule_needed_ ABSL_GUARDED_BY(mu_) = true;
  std::thread supervisor_;
  std::string worker_address_;  // set once, before the supervisor starts

  // Reads (GetJob, the streams) are served from this copy of the stored jobs, so they
  // never wait for the supervisor or the database. Written wherever a job is stored.
  std::shared_mutex cache_mu_;
  std::map<std::string, trainer::v1::Job> cache_ ABSL_GUARDED_BY(cache_mu_);
};

int64_t NowMs();

}  // namespace trainerd

#endif  // TRAINERD_SERVER_JOB_MANAGER_H_
