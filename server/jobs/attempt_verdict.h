// How an attempt ended, judged: what its record says and what becomes of the job (done,
// failed, or restarted from its latest checkpoint, counted or not). Pure logic.
#ifndef TRAINERD_SERVER_JOBS_ATTEMPT_VERDICT_H_
#define TRAINERD_SERVER_JOBS_ATTEMPT_VERDICT_H_

#include <cstdint>
#include <string>

#include "server/launch/worker_process.h"
#include "trainer/v1/job_service.pb.h"

namespace trainerd {

// Why trainerd stopped an attempt itself (AttemptEnd::stop_reason).
inline constexpr char kStopCancelled[] = "cancelled";
inline constexpr char kStopShutdown[] = "shutdown";
// The attempt ran for its job's resources.time_limit_s (trainerd's clock or the cluster's).
inline constexpr char kStopTimeLimit[] = "time limit reached";

// Whether `stop_reason` is trainerd stopping the attempt itself (cancel, shutdown, time
// limit): its ranks' exits are then no rank's failure.
bool StoppedByTrainerd(const std::string& stop_reason);

// What the supervisor saw of an attempt's end.
struct AttemptEnd {
  int32_t attempt = 0;
  ExitInfo exit;            // the first failing rank's, else the last rank's
  std::string stop_reason;  // kStopCancelled, kStopShutdown, "heartbeat lost ...", "rank 1 ..."; "" when none
  bool node_lost = false;   // a machine went away: not the job's fault
  int32_t failed_rank = -1;
  std::string worker_error;  // the failed rank's last error line (LastErrorMessage), if any
};

struct AttemptVerdict {
  std::string reason;  // the attempt's record
  trainer::v1::JobState next_state = trainer::v1::FAILED;
  std::string error;                // the job's error; "" leaves it as it is
  bool restart_counted = false;     // uses one of the job's max_restarts
};

// "exited 2: the worker rejected the spec", "killed by signal 9 ...".
std::string DescribeExit(const ExitInfo& exit);

// `restarts` of `max_restarts` are used so far. A bad spec (exit 2) or a job over its
// memory limit (exit 4) is not retried: it would fail the same way again, nor is one
// that reached its time limit (a restart would get round the limit; ResumeJob is the
// user's decision).
AttemptVerdict JudgeAttempt(const AttemptEnd& end, int32_t restarts, int32_t max_restarts);

// Whether the job's results show that it finished: trainer-worker writes
// all_results.json last, on success only (for workers whose exit status is unknown).
bool FinishedSuccessfully(const trainer::v1::Job& job, int64_t attempt_started_ms);

}  // namespace trainerd

#endif  // TRAINERD_SERVER_JOBS_ATTEMPT_VERDICT_H_
