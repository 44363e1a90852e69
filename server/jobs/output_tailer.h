// OutputTailer: follows what the ranks of an attempt write — each rank's log and rank
// 0's JSON training log — into the store: log lines, metric points, the job's progress,
// and checkpoint records. How far each file was read is saved in the same transaction as
// what was read from it, so that a restarted trainerd goes on without gaps or repeats.
//
// Threads: the supervisor's; mu_ guards the offsets.
#ifndef TRAINERD_SERVER_JOBS_OUTPUT_TAILER_H_
#define TRAINERD_SERVER_JOBS_OUTPUT_TAILER_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/jobs/job_registry.h"

namespace trainerd {

class OutputTailer {
 public:
  // Jobs' folders are under `data_root`. The tailer is the one writer of jobs' output
  // (logs, metrics, checkpoint records) to `store`; `registry` is told when output was
  // stored. Both outlive the tailer.
  OutputTailer(std::string data_root, JobRegistry* registry, JobStore* store);

  // Stores what the `ranks` ranks of attempt `attempt` of job `job_id` wrote since the
  // last call. An error says that some of it could not be stored: that part is read
  // again by the next call, never skipped.
  absl::Status Tail(const std::string& job_id, int32_t attempt, int32_t ranks) ABSL_LOCKS_EXCLUDED(mu_);
  // Drops what the tailer remembers of a job (it was deleted).
  void Forget(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Status TailRankLog(const std::string& job_id, int32_t attempt, int32_t rank, int64_t now_ms)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status TailTrainingLog(const std::string& job_id, int64_t now_ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Where the file known by `tail_key` was read up to.
  int64_t& Offset(const std::string& tail_key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string data_root_;
  JobRegistry* const registry_;
  JobStore* const store_;
  absl::Mutex mu_;
  std::map<std::string, int64_t> offsets_ ABSL_GUARDED_BY(mu_);  // tail key -> offset
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_JOBS_OUTPUT_TAILER_H_
