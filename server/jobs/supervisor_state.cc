#include "server/jobs/supervisor_state.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "protocol/job_layout.h"

namespace trainerd {

RunningAttempt NewRunningAttempt(const trainer::v1::Job& job, int32_t number, const std::string& data_root) {
  RunningAttempt a;
  a.number = number;
  a.gpus_per_rank = job.resources().gpus_per_rank();
  a.time_limit_s = job.resources().time_limit_s();
  const std::string dir = AttemptDir(data_root, job.id(), number);
  for (int32_t k = 0; k < std::max(1, job.resources().ranks()); ++k) {
    RunningRank r;
    r.heartbeat_path = absl::StrCat(dir, "/", HeartbeatName(k));
    a.ranks.push_back(std::move(r));
  }
  return a;
}

void MoveJob(JobRegistry* registry, trainer::v1::Job& job, trainer::v1::JobState to) {
  if (absl::Status s = registry->Transition(job, to); !s.ok()) {
    spdlog::error("job={} not moved: {}", job.id(), std::string(s.message()));
  }
}

}  // namespace trainerd
