// JobManager: the WorkerService call (the heartbeat) and the check of its secret.
#include "absl/strings/str_cat.h"
#include "server/job_manager.h"

namespace trainerd {

absl::StatusOr<JobManager::Running*> JobManager::Authenticate(const std::string& secret, const std::string& job_id,
                                                              int32_t attempt) {
  if (secret.empty()) return absl::UnauthenticatedError("missing x-trainerd-worker-secret");
  auto it = running_.find(job_id);
  if (it == running_.end() || it->second.attempt != attempt) {
    return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " has no running attempt ", attempt));
  }
  // Equal-time comparison: the secret must not leak through timing.
  const std::string& expected = it->second.secret;
  unsigned char diff = expected.size() != secret.size();
  for (size_t i = 0; i < std::min(expected.size(), secret.size()); ++i) diff |= expected[i] ^ secret[i];
  if (diff != 0) return absl::PermissionDeniedError("wrong worker secret for this attempt");
  return &it->second;
}

absl::StatusOr<trainer::v1::HeartbeatResponse> JobManager::WorkerHeartbeat(
    const std::string& secret, const trainer::v1::HeartbeatRequest& request) {
  std::lock_guard<std::mutex> lock(mu_);
  auto running = Authenticate(secret, request.job_id(), request.attempt());
  if (!running.ok()) return running.status();
  if (request.rank() < 0 || request.rank() >= static_cast<int32_t>((*running)->ranks.size())) {
    return absl::InvalidArgumentError(absl::StrCat("rank: ", request.rank(), " is not a rank of this attempt"));
  }
  (*running)->ranks[request.rank()].last_rpc_heartbeat = std::chrono::steady_clock::now();
  auto job = Get(request.job_id());
  if (job.ok() && job->attempts_size() > 0) {
    job->mutable_attempts(job->attempts_size() - 1)->set_last_heartbeat_unix_ms(NowMs());
    if (request.step() > job->progress().step()) job->mutable_progress()->set_step(request.step());
    PutJob(*job);
  }
  trainer::v1::HeartbeatResponse response;
  response.set_stop(!(*running)->stop_reason.empty());
  response.set_reason((*running)->stop_reason);
  return response;
}

}  // namespace trainerd
