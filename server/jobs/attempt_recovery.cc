// AttemptRecovery: re-attaching to, or ending, the attempts a restart found running
// (attempt_recovery.h).
#include "server/jobs/attempt_recovery.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "protocol/job_layout.h"
#include "server/jobs/attempt_verdict.h"
#include "server/jobs/worker_log_parsing.h"

namespace trainerd {
namespace {

using trainer::v1::Job;

std::vector<int32_t> ParseGpus(const std::string& text) {
  std::vector<int32_t> gpus;
  for (absl::string_view g : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int32_t index = 0;
    if (absl::SimpleAtoi(g, &index)) gpus.push_back(index);
  }
  return gpus;
}

}  // namespace

absl::Status AttemptRecovery::Recover() {
  absl::MutexLock lock(&state_->mu);
  auto active = registry_->JobsInStates({trainer::v1::STARTING, trainer::v1::RUNNING, trainer::v1::CANCELLING});
  if (!active.ok()) return active.status();
  for (const Job& stored : *active) {
    absl::StatusOr<Job> job = registry_->Get(stored.id());
    if (job.ok()) RecoverJob(*std::move(job));
  }
  return absl::OkStatus();
}

void AttemptRecovery::RecoverJob(Job job) {
  if (job.attempts_size() == 0) {
    job.set_state(trainer::v1::QUEUED);
    registry_->Put(job);
    return;
  }
  const trainer::v1::Attempt& record = job.attempts(job.attempts_size() - 1);
  RunningAttempt a = NewRunningAttempt(job, record.number(), options_->data_root);
  a.started_ms = record.started_unix_ms();
  a.queued = !record.cluster_job_id().empty();  // until the cluster says where it is
  const std::string marker = JobDir(options_->data_root, job.id());
  size_t adopted = 0;
  for (int k = 0; k < static_cast<int>(a.ranks.size()); ++k) {
    RunningRank& r = a.ranks[k];
    r.pid = k < record.rank_pids_size() ? record.rank_pids(k) : (k == 0 ? record.pid() : 0);
    if (k < record.rank_nodes_size()) r.node = record.rank_nodes(k);
    if (k < record.rank_gpus_size()) r.gpus = ParseGpus(record.rank_gpus(k));
    const RecordedRank recorded{
        RankId{job.id(), a.number, k}, r.node, r.pid, marker, AttemptDir(options_->data_root, job.id(), a.number),
        record.cluster_job_id()};
    if (launcher_->Adopt(recorded)) ++adopted;
  }
  if (adopted == a.ranks.size()) {
    std::ifstream secret(absl::StrCat(AttemptDir(options_->data_root, job.id(), a.number), "/", kAttemptSecretFile));
    std::getline(secret, a.secret);
    if (job.state() == trainer::v1::CANCELLING) a.stop_reason = kStopCancelled;
    spdlog::info("job={} re-attached to {} rank(s) of attempt {}", job.id(), a.ranks.size(), a.number);
    state_->running[job.id()] = std::move(a);
    return;
  }
  // A gang that lost a rank cannot go on: its survivors stop too.
  if (adopted > 0) launcher_->Signal(job.id(), a.number, SIGKILL);
  // Whatever the workers wrote before they ended is still in their files: read it first.
  if (absl::Status s = tailer_->Tail(job.id(), a.number, static_cast<int32_t>(a.ranks.size())); !s.ok()) {
    spdlog::warn("job={} output of attempt {} not all stored: {}", job.id(), a.number, std::string(s.message()));
  }
  if (auto updated = registry_->Get(job.id()); updated.ok()) job = *updated;
  trainer::v1::Attempt* attempt = job.mutable_attempts(job.attempts_size() - 1);
  attempt->set_ended_unix_ms(NowMs());
  if (FinishedSuccessfully(job, attempt->started_unix_ms())) {
    attempt->set_reason("finished while trainerd was down");
    job.set_state(trainer::v1::SUCCEEDED);
  } else if (job.state() == trainer::v1::CANCELLING) {
    attempt->set_reason("cancelled");
    job.set_state(trainer::v1::CANCELLED);
  } else {
    attempt->set_reason("worker lost while trainerd was down");
    job.set_state(trainer::v1::RESTARTING);  // not counted against max_restarts
  }
  spdlog::info("job={} workers of attempt {} are gone: {}", job.id(), attempt->number(), attempt->reason());
  registry_->Put(job);
}

}  // namespace trainerd
