#include "server/jobs/attempt_supervisor.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "protocol/job_layout.h"
#include "server/jobs/attempt_verdict.h"
#include "server/jobs/job_state.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using trainer::v1::Job;

}  // namespace

AttemptSupervisor::AttemptSupervisor(JobOptions options, JobRegistry* registry, OutputTailer* tailer,
                                     Launcher* launcher, std::function<void()> on_restart)
    : options_(std::move(options)),
      registry_(registry),
      tailer_(tailer),
      scheduler_(&options_, registry, launcher, &state_),
      monitor_(&options_, registry, tailer, launcher, &state_, std::move(on_restart)),
      recovery_(&options_, registry, tailer, launcher, &state_) {}

AttemptSupervisor::~AttemptSupervisor() {
  {
    absl::MutexLock lock(&state_.mu);
    state_.stop_thread = true;
  }
  if (thread_.joinable()) thread_.join();
}

void AttemptSupervisor::Start(const std::string& worker_address) {
  absl::MutexLock lock(&state_.mu);
  state_.worker_address = worker_address;
  thread_ = std::thread([this] { Loop(); });
}

void AttemptSupervisor::Loop() {
  const absl::Duration interval = absl::Seconds(options_.poll_interval_s);
  absl::MutexLock lock(&state_.mu);
  while (!state_.stop_thread) {
    PollOnce();
    state_.mu.AwaitWithTimeout(absl::Condition(&state_.stop_thread), interval);
  }
}

void AttemptSupervisor::PollOnce() {
  registry_->FlushUnsaved();
  monitor_.AssertLockHeld();
  monitor_.Poll();
  scheduler_.AssertLockHeld();
  if (!state_.shutting_down) scheduler_.Schedule();
}

absl::StatusOr<trainer::v1::SubmitJobResponse> AttemptSupervisor::Submit(const trainer::v1::SubmitJobRequest& request,
                                                                         const Submitter& submitter) {
  if (shutting_down()) return absl::UnavailableError("trainerd is shutting down; not accepting jobs");
  absl::StatusOr<trainer::v1::SubmitJobResponse> admitted = AdmitJob(request, submitter, Capacity(), options_);
  if (!admitted.ok() || request.validate_only()) return admitted;
  const Job& job = admitted->job();
  absl::MutexLock lock(&state_.mu);
  absl::Status s = state_.shutting_down ? absl::UnavailableError("trainerd is shutting down; not accepting jobs")
                                        : registry_->Add(job);
  if (!s.ok()) {
    std::error_code ec;
    fs::remove_all(JobDir(options_.data_root, job.id()), ec);  // nothing of it stays behind
    return s;
  }
  state_.QueueChanged();
  spdlog::info("job={} submitted by {} name={} priority={}", job.id(), submitter.user, job.name(), job.priority());
  return admitted;
}

absl::Status AttemptSupervisor::Delete(const std::string& id, bool delete_files) {
  absl::MutexLock lock(&state_.mu);
  absl::StatusOr<Job> job = registry_->Get(id);
  if (!job.ok()) return job.status();
  const std::string dir = JobDir(options_.data_root, id);
  // A folder kept without its record says whose it is, so that they can still delete it
  // (written first: a finished job only; the registry refuses the others below).
  if (!delete_files && IsTerminal(job->state()) && fs::exists(dir)) {
    if (absl::Status s = WriteFileAtomically(absl::StrCat(dir, "/", kDeletedOwnerFile),
                                             absl::StrCat(job->owner(), "\n", job->owner_id(), "\n"), 0600);
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = registry_->Delete(id); !s.ok()) return s;
  tailer_->Forget(id);
  state_.resume_requests.erase(id);
  return delete_files ? RemoveJobFolder(id) : absl::OkStatus();
}

absl::Status AttemptSupervisor::DeleteKeptFolder(const std::string& id,
                                                 const std::function<absl::Status(const Job&)>& may_delete) {
  const bool well_formed = IsJobId(id);  // anything else never names a folder
  const std::string marker = absl::StrCat(JobDir(options_.data_root, id), "/", kDeletedOwnerFile);
  std::ifstream in(marker);
  std::string owner, owner_id;
  if (!well_formed || !in || !std::getline(in, owner))
    return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  Job kept;
  kept.set_id(id);
  kept.set_owner(owner);
  int64_t account = 0;  // a marker written before accounts had ids: admins only
  if (std::getline(in, owner_id) && absl::SimpleAtoi(owner_id, &account)) kept.set_owner_id(account);
  if (absl::Status s = may_delete(kept); !s.ok()) return s;
  absl::MutexLock lock(&state_.mu);
  return RemoveJobFolder(id);
}

absl::Status AttemptSupervisor::RemoveJobFolder(const std::string& id) {
  std::error_code ec;
  fs::remove_all(JobDir(options_.data_root, id), ec);
  if (ec) return absl::InternalError(absl::StrCat("deleting ", JobDir(options_.data_root, id), ": ", ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<Job> AttemptSupervisor::Resume(const std::string& id, int64_t checkpoint_step, int64_t stop_at_step) {
  if (stop_at_step < 0) return absl::InvalidArgumentError("stop_at_step: must be 0 (run to the end) or a step");
  absl::MutexLock lock(&state_.mu);
  if (state_.shutting_down) return absl::UnavailableError("trainerd is shutting down");
  absl::StatusOr<Job> job = registry_->Get(id);
  if (!job.ok()) return job.status();
  if (!IsTerminal(job->state())) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " is ", StateName(job->state()), "; only a finished job can be resumed"));
  }
  std::string checkpoint;
  if (checkpoint_step > 0) {
    checkpoint = (fs::path(job->output_dir()) / CheckpointDirName(checkpoint_step)).string();
    if (!fs::exists(fs::path(checkpoint) / kManifestFile)) {
      return absl::NotFoundError(absl::StrCat("job ", id, " has no checkpoint at step ", checkpoint_step));
    }
  }
  job->set_restarts(0);
  job->clear_error();
  job->set_stop_at_step(stop_at_step);
  if (absl::Status s = registry_->Transition(*job, trainer::v1::QUEUED); !s.ok()) return s;
  if (!checkpoint.empty()) state_.resume_requests[id] = checkpoint;
  state_.QueueChanged();
  return *job;
}

absl::StatusOr<Job> AttemptSupervisor::Cancel(const std::string& id) {
  absl::MutexLock lock(&state_.mu);
  absl::StatusOr<Job> job = registry_->Get(id);
  if (!job.ok()) return job.status();
  if (IsTerminal(job->state()) || job->state() == trainer::v1::CANCELLING) return *job;
  auto it = state_.running.find(id);
  if (it == state_.running.end()) {
    if (absl::Status s = registry_->Transition(*job, trainer::v1::CANCELLED); !s.ok()) return s;
    state_.QueueChanged();  // the jobs behind it move up
    return *job;
  }
  monitor_.AssertLockHeld();
  monitor_.StopAttempt(id, it->second, SIGTERM, kStopCancelled);
  if (absl::Status s = registry_->Transition(*job, trainer::v1::CANCELLING); !s.ok()) return s;
  return *job;
}

void AttemptSupervisor::Shutdown() {
  absl::MutexLock lock(&state_.mu);
  if (state_.shutting_down) return;
  state_.shutting_down = true;
  spdlog::info("shutting down: stopping {} worker(s) gracefully", state_.running.size());
  monitor_.AssertLockHeld();
  for (auto& [id, a] : state_.running) monitor_.StopAttempt(id, a, SIGTERM, kStopShutdown);
  // The supervisor thread keeps following them; wait until every worker is gone.
  auto done = [this]()
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_.mu) { return state_.running.empty() || state_.stop_thread; };
  state_.mu.Await(absl::Condition(&done));
}

bool AttemptSupervisor::shutting_down() {
  absl::MutexLock lock(&state_.mu);
  return state_.shutting_down;
}

}  // namespace trainerd
