// JobRegistry: the jobs as trainerd knows them. It keeps the store's job records and an
// in-memory copy in step, applies the state table to every change, tells its subscribers
// (the metrics, and whoever else subscribes) about each saved change, and lets readers
// wait for the next one. It is the only writer of job records; a job's output (logs,
// metrics, checkpoints) is written by the OutputTailer and read by the API's operations.
//
// A change the store refuses (disk full, database locked) is not lost: the in-memory copy
// is the truth trainerd works from, so it is updated anyway, shown with the error as the
// job's store_error, and saved again by FlushUnsaved. Subscribers see a change only once
// it is saved, so that they never count what a restart would not find.
//
// Threads: any. Writes are serialised by write_mu_ (held across the store write);
// readers take only mu_, briefly, so a slow database never blocks GetJob or the streams.
#ifndef TRAINERD_SERVER_JOBS_JOB_REGISTRY_H_
#define TRAINERD_SERVER_JOBS_JOB_REGISTRY_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "storage/job_store.h"
#include "trainer/v1/job_service.pb.h"

namespace trainerd {

// Told of each saved change (called with the registry's write lock held: must be quick,
// and never call the registry). Either may be empty.
struct JobSubscriber {
  std::function<void(const trainer::v1::Job&)> on_job_changed;
  std::function<void(const trainer::v1::Job&)> on_job_finished;  // the change ended the job
};

class JobRegistry {
 public:
  // `store` outlives the registry.
  explicit JobRegistry(JobStore* store) : store_(store) {}

  // Adds a subscriber, told of every change saved from now on.
  void Subscribe(JobSubscriber subscriber) ABSL_LOCKS_EXCLUDED(write_mu_);

  // The job as last changed (saved or not). NOT_FOUND for an unknown id.
  absl::StatusOr<trainer::v1::Job> Get(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  // A page of jobs from the store, newest first; `owner_id` non-zero: only that
  // account's.
  absl::StatusOr<trainer::v1::ListJobsResponse> List(const trainer::v1::ListJobsRequest& request, int64_t owner_id);
  // Every stored job in one of `states` (the supervisor's queue, and the attempts to
  // recover after a restart), as the store has them.
  absl::StatusOr<std::vector<trainer::v1::Job>> JobsInStates(const std::vector<trainer::v1::JobState>& states);

  // Stores a new job. On error nothing of it is kept.
  absl::Status Add(const trainer::v1::Job& job) ABSL_LOCKS_EXCLUDED(write_mu_);
  // Saves a change to a known job, stamping updated_unix_ms. A change the store refuses
  // is not the caller's to handle: the registry keeps it, shows it as `job.store_error`
  // (and the cached copy's), logs it and saves it again (FlushUnsaved). `finishing`: the
  // change ends the job (on_job_finished fires once it is saved). A job deleted
  // meanwhile stays deleted (the change is dropped, logged).
  void Put(trainer::v1::Job& job, bool finishing = false) ABSL_LOCKS_EXCLUDED(write_mu_);
  // Changes the job's state and saves it (Put). FAILED_PRECONDITION for a move the state
  // table forbids, or when the job is no longer in the state `job` says (it changed
  // meanwhile); nothing changes then.
  absl::Status Transition(trainer::v1::Job& job, trainer::v1::JobState to) ABSL_LOCKS_EXCLUDED(write_mu_);
  // Deletes a finished job's records. FAILED_PRECONDITION while it is not finished.
  absl::Status Delete(const std::string& id) ABSL_LOCKS_EXCLUDED(write_mu_);

  // The job's checkpoints whose folders are still on disk, oldest first, with is_best
  // set on the job's one best checkpoint (none without metric_for_best_model). Records
  // of folders that are gone (save_total_limit rotated them, a person deleted them) are
  // dropped from the store, so that they are neither listed nor offered to resume.
  absl::StatusOr<std::vector<trainer::v1::Checkpoint>> Checkpoints(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);

  // Retries saving the jobs whose last write failed.
  void FlushUnsaved() ABSL_LOCKS_EXCLUDED(write_mu_);
  // Output of the job was stored (readers of logs and metrics wake), or could not be
  // (`error`, shown as its store_error until the next successful save).
  void NoteOutput(const std::string& job_id, const absl::Status& error) ABSL_LOCKS_EXCLUDED(mu_);

  // Blocks until something changed after `seen` (a value this returned before), the
  // timeout passes, or StopWaiting; returns the current change counter.
  uint64_t WaitForChange(uint64_t seen, std::chrono::milliseconds timeout) ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t change_counter() ABSL_LOCKS_EXCLUDED(mu_);
  // Wakes every waiter, now and from now on (shutdown).
  void StopWaiting() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Writes `job` to the store and the cache (with store_error on failure).
  absl::Status Save(const trainer::v1::Job& job, bool finishing) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  void PutLocked(trainer::v1::Job& job, bool finishing) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  bool Cached(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);

  JobStore* const store_;

  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::vector<JobSubscriber> subscribers_ ABSL_GUARDED_BY(write_mu_);
  // Jobs whose latest change is not saved yet: whether that change finished them.
  std::map<std::string, bool> unsaved_ ABSL_GUARDED_BY(write_mu_);

  absl::Mutex mu_;
  std::map<std::string, trainer::v1::Job> cache_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> deleted_ ABSL_GUARDED_BY(mu_);  // ids never reused: what Delete removed
  uint64_t change_counter_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_waiting_ ABSL_GUARDED_BY(mu_) = false;
};

// Milliseconds since the Unix epoch.
int64_t NowMs();

}  // namespace trainerd

#endif  // TRAINERD_SERVER_JOBS_JOB_REGISTRY_H_
