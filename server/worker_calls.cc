// JobManager: the WorkerService calls (heartbeats, checkpoints, output from workers).
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "server/job_manager.h"

namespace trainerd {
namespace fs = std::filesystem;

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

absl::Status JobManager::WorkerCheckpoint(const std::string& secret, const trainer::v1::CheckpointReport& report) {
  std::lock_guard<std::mutex> lock(mu_);
  auto running = Authenticate(secret, report.job_id(), report.attempt());
  if (!running.ok()) return running.status();
  if (report.step() < 0) return absl::InvalidArgumentError("step: must be >= 0");
  // A worker reports only its own checkpoints: a folder inside its job's output_dir.
  auto job = Get(report.job_id());
  if (!job.ok()) return job.status();
  std::error_code output_ec, path_ec;
  const fs::path output = fs::weakly_canonical(job->output_dir(), output_ec);
  const bool plausible = report.path().size() <= kMaxSpecStringBytes && fs::path(report.path()).is_absolute();
  const fs::path path = plausible ? fs::weakly_canonical(report.path(), path_ec) : fs::path();
  if (!plausible || output_ec || path_ec || path == output || !IsWithin(path, output)) {
    return absl::InvalidArgumentError("path: must be a folder inside the job's output_dir");
  }
  trainer::v1::Checkpoint c;
  c.set_step(report.step());
  c.set_path(report.path());
  c.set_size_bytes(report.size_bytes());
  c.set_created_unix_ms(NowMs());
  // The tail of trainer_log.jsonl records the same checkpoint again with its checksum and
  // metrics, and may get there first: this route only fills a gap, never replaces.
  return store_->AddCheckpointIfAbsent(report.job_id(), c);
}

absl::Status JobManager::WorkerOutput(const std::string& secret, const trainer::v1::OutputReport& report) {
  std::lock_guard<std::mutex> lock(mu_);
  auto running = Authenticate(secret, report.job_id(), report.attempt());
  if (!running.ok()) return running.status();
  OutputBatch batch;
  batch.job_id = report.job_id();
  batch.tail_key = absl::StrCat(report.job_id(), "/attempt-", report.attempt(), "/rank", report.rank(), "/reported");
  auto stored = store_->TailOffset(batch.tail_key);
  if (!stored.ok()) return stored.status();
  // A batch is stored whole or not at all; a resent batch (first_index below what is
  // stored) is already here.
  if (report.first_index() < *stored) return absl::OkStatus();
  if (report.first_index() > *stored) {
    return absl::FailedPreconditionError(absl::StrCat("output index ", report.first_index(),
                                                      " skips ahead of the ", *stored, " items stored"));
  }
  const int64_t now = NowMs();
  for (trainer::v1::LogLine line : report.lines()) {
    line.set_rank(report.rank());
    line.set_attempt(report.attempt());
    if (line.time_unix_ms() == 0) line.set_time_unix_ms(now);
    if (line.level().empty()) line.set_level("info");
    batch.lines.push_back(std::move(line));
  }
  batch.metrics.assign(report.metrics().begin(), report.metrics().end());
  batch.new_offset = report.first_index() + report.lines_size() + report.metrics_size();
  if (absl::Status s = store_->AppendOutput(&batch); !s.ok()) return s;
  ++change_counter_;
  changed_.notify_all();
  return absl::OkStatus();
}

}  // namespace trainerd
