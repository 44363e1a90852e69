// JobStore: trainerd's durable state in one SQLite file (WAL mode, busy timeout).
//
// Tables: jobs (the Job message plus indexed columns), checkpoints, metrics, logs, and
// tails (how far each worker output file has been read, saved in the same transaction
// as the lines read from it, so a restarted daemon continues without gaps or
// duplicates). The schema lives in schema.cc; migrations run in Open().
//
// Thread-safe: one connection guarded by a mutex. Callers batch high-volume writes
// (AppendOutput takes many lines and metric points in one transaction).
#ifndef TRAINERD_STORAGE_JOB_STORE_H_
#define TRAINERD_STORAGE_JOB_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/v1/job_service.pb.h"

struct sqlite3;

namespace trainerd {

// New output read from one worker file: its lines and metric points, and the file
// offset reached. Written atomically.
struct OutputBatch {
  std::string job_id;
  std::string tail_key;       // identifies the file, e.g. "<job>/attempt-2/rank0.log"
  int64_t new_offset = 0;
  std::vector<trainer::v1::LogLine> lines;        // seq assigned by the store
  std::vector<trainer::v1::MetricPoint> metrics;
};

class JobStore {
 public:
  // Opens (creating if needed) the database at `path` and migrates it to the current
  // schema version.
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& path);
  ~JobStore();

  // The schema version of the open file (CurrentSchemaVersion() after Open).
  absl::StatusOr<int> schema_version();

  // Inserts or replaces a job.
  absl::Status PutJob(const trainer::v1::Job& job);
  absl::StatusOr<trainer::v1::Job> GetJob(const std::string& id);
  // Newest first. `states` empty = all; `owner_id` 0 = anybody's. `before_created_ms`/
  // `before_id` page from a previous page's last job (0/"" = from the newest).
  absl::StatusOr<std::vector<trainer::v1::Job>> ListJobs(const std::vector<trainer::v1::JobState>& states,
                                                         int64_t owner_id,
                                                         int limit, int64_t before_created_ms,
                                                         const std::string& before_id);
  // Jobs in any of `states`, oldest first (the daemon's recovery and queue).
  absl::StatusOr<std::vector<trainer::v1::Job>> JobsInStates(const std::vector<trainer::v1::JobState>& states);
  // Removes a job and everything recorded about it.
  absl::Status DeleteJob(const std::string& id);

  // Records a checkpoint, replacing any earlier record of the same (job, step).
  absl::Status PutCheckpoint(const std::string& job_id, const trainer::v1::Checkpoint& checkpoint);
  absl::StatusOr<std::vector<trainer::v1::Checkpoint>> ListCheckpoints(const std::string& job_id);
  // Forgets the checkpoint of (job, step), e.g. one that save_total_limit deleted.
  absl::Status DeleteCheckpoint(const std::string& job_id, int64_t step);

  // Appends a batch of output and moves the file's tail offset, atomically. Lines get
  // the job's next sequence numbers (returned in `batch->lines`).
  absl::Status AppendOutput(OutputBatch* batch);
  // The saved offset of a tailed file (0 if never read).
  absl::StatusOr<int64_t> TailOffset(const std::string& tail_key);

  // Log lines with seq >= from_seq, at most `limit`, filtered by rank (if set) and
  // minimum level.
  absl::StatusOr<std::vector<trainer::v1::LogLine>> ReadLogs(const std::string& job_id, int64_t from_seq,
                                                             int limit, std::optional<int32_t> rank,
                                                             const std::string& min_level);
  // The seq of the `n`-th last log line that passes the filters of ReadLogs (the first
  // line's, 1, when there are fewer).
  absl::StatusOr<int64_t> SeqOfLastLogs(const std::string& job_id, int64_t n, std::optional<int32_t> rank,
                                        const std::string& min_level);
  // How many metric points the job has stored (a follower's offset: see
  // ReadMetricsAfter).
  absl::StatusOr<int64_t> CountMetrics(const std::string& job_id);
  // For a follower: at most `limit` metric points recorded after the one at row
  // `*after_row`, in order, moving *after_row past them. A follower starts with
  // *after_row = -1 and `skip`, the points it already has (a CountMetrics): those are
  // found once, and every read after that costs only the new points.
  absl::StatusOr<std::vector<trainer::v1::MetricPoint>> ReadMetricsAfter(const std::string& job_id, int64_t skip,
                                                                          int64_t* after_row, int64_t limit);
  // Metric points in the order they were recorded (`name`, `split`: "" for all).
  absl::StatusOr<std::vector<trainer::v1::MetricPoint>> ReadMetrics(const std::string& job_id,
                                                                     const std::string& name,
                                                                     const std::string& split);

 private:
  explicit JobStore(sqlite3* db) : db_(db) {}

  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
};

// Numeric rank of a log level name (debug 0 ... error 3); unknown names rank as info.
int LogLevelRank(const std::string& level);

}  // namespace trainerd

#endif  // TRAINERD_STORAGE_JOB_STORE_H_
