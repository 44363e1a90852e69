#include "server/jobs/attempt_verdict.h"

#include <signal.h>

#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "protocol/worker_exit_codes.h"

namespace trainerd {

std::string DescribeExit(const ExitInfo& exit) {
  if (exit.status_unknown) return "ended (exit status unknown)";
  if (exit.signal == SIGKILL && exit.oom_killed) {
    return "killed by SIGKILL: out of memory (the kernel's OOM killer ran meanwhile)";
  }
  if (exit.signal == SIGKILL) return "killed by SIGKILL";
  if (exit.signal != 0) return absl::StrCat("killed by signal ", exit.signal, " (", strsignal(exit.signal), ")");
  if (exit.exit_code == kWorkerExitInvalidSpec) return "exited 2: the worker rejected the spec";
  if (exit.exit_code == kWorkerExitOutOfMemory) return "exited 4: out of memory (see the rank's log for the limit)";
  return absl::StrCat("exited ", exit.exit_code);
}

bool StoppedByTrainerd(const std::string& stop_reason) {
  return stop_reason == kStopCancelled || stop_reason == kStopShutdown || stop_reason == kStopTimeLimit;
}

AttemptVerdict JudgeAttempt(const AttemptEnd& end, int32_t restarts, int32_t max_restarts) {
  AttemptVerdict v;
  const bool succeeded = !end.exit.status_unknown && end.exit.exit_code == 0 && end.exit.signal == 0;
  if (end.stop_reason == kStopCancelled) {
    v.reason = succeeded ? "finished while cancelling" : "cancelled";
    v.next_state = succeeded ? trainer::v1::SUCCEEDED : trainer::v1::CANCELLED;
    return v;
  }
  if (end.stop_reason == kStopShutdown) {
    v.reason = "stopped by trainerd shutdown; resumes at the next start";
    v.next_state = succeeded ? trainer::v1::SUCCEEDED : trainer::v1::RESTARTING;
    return v;
  }
  if (end.stop_reason == kStopTimeLimit) {
    v.reason = succeeded ? "finished at its time limit" : "time limit reached (resources.time_limit_s): stopped after a checkpoint";
    v.next_state = succeeded ? trainer::v1::SUCCEEDED : trainer::v1::FAILED;
    if (!succeeded) {
      v.error = absl::StrCat("attempt ", end.attempt, ": ", v.reason, "; ResumeJob (trainer-cli resume) continues from it");
    }
    return v;
  }
  if (succeeded) {
    v.reason = "exited 0";
    v.next_state = trainer::v1::SUCCEEDED;
    return v;
  }
  v.reason = end.stop_reason.empty() ? DescribeExit(end.exit) : end.stop_reason;
  if (!end.worker_error.empty()) absl::StrAppend(&v.reason, ": ", end.worker_error);
  v.error = absl::StrCat("attempt ", end.attempt, ": ", v.reason);
  const bool hopeless = end.exit.exit_code == kWorkerExitInvalidSpec || end.exit.exit_code == kWorkerExitOutOfMemory;
  if (end.node_lost) {
    v.next_state = trainer::v1::RESTARTING;  // restarted elsewhere, uncounted
  } else if (!hopeless && restarts < max_restarts) {
    v.next_state = trainer::v1::RESTARTING;
    v.restart_counted = true;
  } else {
    v.next_state = trainer::v1::FAILED;
  }
  return v;
}

bool FinishedSuccessfully(const trainer::v1::Job& job, int64_t attempt_started_ms) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto t = fs::last_write_time(fs::path(job.output_dir()) / "all_results.json", ec);
  if (ec) return false;
  const auto written = std::chrono::duration_cast<std::chrono::milliseconds>(
      (t - fs::file_time_type::clock::now()) + std::chrono::system_clock::now().time_since_epoch());
  return written.count() >= attempt_started_ms;
}

}  // namespace trainerd
