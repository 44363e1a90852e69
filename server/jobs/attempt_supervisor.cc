#include "server/jobs/attempt_supervisor.h"

#include <signal.h>
#include <sys/stat.h>

#include <ctime>
#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "protocol/job_layout.h"
#include "server/jobs/attempt_verdict.h"
#include "server/jobs/job_state.h"
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

AttemptSupervisor::AttemptSupervisor(JobOptions options, JobRegistry* registry, OutputTailer* tailer,
                                     Launcher* launcher, std::function<void()> on_restart)
    : options_(std::move(options)),
      registry_(registry),
      tailer_(tailer),
      launcher_(launcher),
      on_restart_(std::move(on_restart)) {}

AttemptSupervisor::~AttemptSupervisor() {
  {
    absl::MutexLock lock(&mu_);
    stop_thread_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void AttemptSupervisor::Start(const std::string& worker_address) {
  absl::MutexLock lock(&mu_);
  worker_address_ = worker_address;
  thread_ = std::thread([this] { Loop(); });
}

AttemptSupervisor::Attempt AttemptSupervisor::NewAttempt(const Job& job, int32_t number) const {
  Attempt a;
  a.number = number;
  a.gpus_per_rank = job.resources().gpus_per_rank();
  a.time_limit_s = job.resources().time_limit_s();
  const std::string dir = AttemptDir(options_.data_root, job.id(), number);
  for (int32_t k = 0; k < std::max(1, job.resources().ranks()); ++k) {
    Rank r;
    r.heartbeat_path = absl::StrCat(dir, "/", HeartbeatName(k));
    a.ranks.push_back(std::move(r));
  }
  return a;
}

absl::Status AttemptSupervisor::Recover() {
  absl::MutexLock lock(&mu_);
  auto active = registry_->store()->JobsInStates({trainer::v1::STARTING, trainer::v1::RUNNING, trainer::v1::CANCELLING});
  if (!active.ok()) return active.status();
  for (const Job& stored : *active) {
    absl::StatusOr<Job> job = registry_->Get(stored.id());
    if (job.ok()) RecoverJob(*std::move(job));
  }
  return absl::OkStatus();
}

void AttemptSupervisor::RecoverJob(Job job) {
  if (job.attempts_size() == 0) {
    job.set_state(trainer::v1::QUEUED);
    registry_->Put(job);
    return;
  }
  const trainer::v1::Attempt& record = job.attempts(job.attempts_size() - 1);
  Attempt a = NewAttempt(job, record.number());
  a.started_ms = record.started_unix_ms();
  a.queued = !record.slurm_job_id().empty();  // until the cluster says where it is
  const std::string marker = JobDir(options_.data_root, job.id());
  size_t adopted = 0;
  for (int k = 0; k < static_cast<int>(a.ranks.size()); ++k) {
    Rank& r = a.ranks[k];
    r.pid = k < record.rank_pids_size() ? record.rank_pids(k) : (k == 0 ? record.pid() : 0);
    if (k < record.rank_nodes_size()) r.node = record.rank_nodes(k);
    if (k < record.rank_gpus_size()) r.gpus = ParseGpus(record.rank_gpus(k));
    const RecordedRank recorded{RankId{job.id(), a.number, k}, r.node, r.pid, marker,
                                AttemptDir(options_.data_root, job.id(), a.number), record.slurm_job_id()};
    if (launcher_->Adopt(recorded)) ++adopted;
  }
  if (adopted == a.ranks.size()) {
    std::ifstream secret(absl::StrCat(AttemptDir(options_.data_root, job.id(), a.number), "/", kAttemptSecretFile));
    std::getline(secret, a.secret);
    if (job.state() == trainer::v1::CANCELLING) a.stop_reason = kStopCancelled;
    spdlog::info("job={} re-attached to {} rank(s) of attempt {}", job.id(), a.ranks.size(), a.number);
    running_[job.id()] = std::move(a);
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

void AttemptSupervisor::Loop() {
  const absl::Duration interval = absl::Seconds(options_.poll_interval_s);
  absl::MutexLock lock(&mu_);
  while (!stop_thread_) {
    PollOnce();
    mu_.AwaitWithTimeout(absl::Condition(&stop_thread_), interval);
  }
}

void AttemptSupervisor::PollOnce() {
  registry_->FlushUnsaved();
  HandleEvents();
  std::vector<std::string> ids;
  for (const auto& [id, a] : running_) ids.push_back(id);
  for (const std::string& id : ids) {
    auto it = running_.find(id);
    if (it == running_.end()) continue;
    Attempt& a = it->second;
    a.output_stored = tailer_->Tail(id, a.number, static_cast<int32_t>(a.ranks.size())).ok();
    CheckAttempt(id);
  }
  if (!shutting_down_) Schedule();
}

void AttemptSupervisor::HandleEvents() {
  bool nodes_changed = false;
  for (RankEvent& e : launcher_->TakeEvents(&nodes_changed)) {
    auto it = running_.find(e.id.job_id);
    if (it == running_.end() || it->second.number != e.id.attempt || e.id.rank < 0 ||
        e.id.rank >= static_cast<int32_t>(it->second.ranks.size())) {
      continue;  // an attempt that already ended
    }
    Attempt& a = it->second;
    if (e.kind == RankEvent::Kind::kStarted) {
      a.ranks[e.id.rank].pid = e.pid;
      RecordPid(e.id.job_id, a, e.id.rank, e.pid);
      continue;
    }
    if (e.kind == RankEvent::Kind::kClusterState) {
      OnClusterState(e.id.job_id, a, e);
      continue;
    }
    if (e.time_limit) {
      if (a.stop_reason.empty()) a.stop_reason = kStopTimeLimit;
    } else if (e.node_lost) {
      // The lost machine is the root cause even when a surviving rank failed first (its
      // collective broke when the peer vanished); a cancel or shutdown stays one.
      if (a.stop_reason != kStopCancelled && a.stop_reason != kStopShutdown) {
        a.stop_reason = a.stop_reason.empty() ? e.reason : absl::StrCat(e.reason, "; before that: ", a.stop_reason);
        a.node_lost = true;
      }
    } else if (!e.reason.empty() && a.stop_reason.empty()) {
      a.stop_reason = e.reason;
    }
    OnRankEnded(e.id.job_id, e.id.rank, e.exit, e.where);
  }
  if (nodes_changed) QueueChanged();
}

void AttemptSupervisor::RecordPid(const std::string& job_id, const Attempt& a, int32_t rank, pid_t pid) {
  absl::StatusOr<Job> job = registry_->Get(job_id);
  if (!job.ok() || job->attempts_size() == 0) return;
  trainer::v1::Attempt* record = job->mutable_attempts(job->attempts_size() - 1);
  if (record->number() != a.number || rank >= record->rank_pids_size()) return;
  record->set_rank_pids(rank, pid);
  if (rank == 0) record->set_pid(pid);
  registry_->Put(*job);
}

void AttemptSupervisor::OnClusterState(const std::string& job_id, Attempt& a, const RankEvent& e) {
  if (a.queued && !e.queued) a.alive_since_ms = NowMs();
  a.queued = e.queued;
  absl::StatusOr<Job> job = registry_->Get(job_id);
  if (!job.ok() || job->attempts_size() == 0) return;
  trainer::v1::Attempt* record = job->mutable_attempts(job->attempts_size() - 1);
  if (record->number() != a.number) return;
  record->set_slurm_state(e.reason);
  if (e.preempted) {
    // Not a failure and not a restart: the cluster took the nodes back, the ranks saved
    // a checkpoint, and the same Slurm job continues from it when it runs again.
    record->set_preemptions(record->preemptions() + 1);
    spdlog::warn("job={} attempt {} preempted by the cluster (Slurm job {} {}): it continues from its checkpoint "
                 "when it runs again (preemption {}, not counted as a restart)",
                 job_id, a.number, record->slurm_job_id(), e.reason, record->preemptions());
  } else {
    spdlog::info("job={} attempt {}: Slurm job {} {}", job_id, a.number, record->slurm_job_id(), e.reason);
  }
  if (job->state() == trainer::v1::STARTING && !e.queued) {
    MoveTo(*job, trainer::v1::RUNNING);  // the cluster runs the gang now
  } else {
    registry_->Put(*job);
  }
}

void AttemptSupervisor::OnRankEnded(const std::string& job_id, int32_t rank, ExitInfo exit,
                                    const std::string& where) {
  auto it = running_.find(job_id);
  if (it == running_.end()) return;
  Attempt& a = it->second;
  Rank& r = a.ranks[rank];
  if (r.exit) return;
  if (exit.status_unknown) {
    // A rank a previous trainerd started: the job's results tell how it went.
    absl::StatusOr<Job> job = registry_->Get(job_id);
    if (job.ok() && FinishedSuccessfully(*job, a.started_ms)) exit = ExitInfo{0, 0, false};
  }
  r.exit = exit;
  a.output_stored = tailer_->Tail(job_id, a.number, static_cast<int32_t>(a.ranks.size())).ok();
  const bool failed = exit.status_unknown || exit.exit_code != 0 || exit.signal != 0;
  if (failed && !a.failure) {
    a.failure = exit;
    a.failed_rank = rank;
    // A rank that fails on its own takes the attempt down: the others cannot go on
    // without it (they would only wait in a collective until ddp_timeout).
    if (a.stop_reason.empty() && a.ranks.size() > 1) {
      StopAttempt(job_id, a, SIGKILL,
                  absl::StrCat("rank ", rank, where.empty() ? "" : " on " + where, " ", DescribeExit(exit)));
      spdlog::warn("job={} {}: stopping the attempt's other ranks", job_id, a.stop_reason);
    }
  }
  for (const Rank& other : a.ranks) {
    if (!other.exit) return;
  }
  const ExitInfo ended = a.failure ? *a.failure : exit;
  if (!a.output_stored) {
    a.finish_pending = ended;  // CheckAttempt finishes it once its output is stored
    return;
  }
  FinishAttempt(job_id, ended);
}

void AttemptSupervisor::StopAttempt(const std::string& job_id, Attempt& a, int signal, const std::string& reason) {
  if (a.stop_reason.empty()) a.stop_reason = reason;
  if (signal == SIGTERM) a.term_sent = Clock::now();
  launcher_->Signal(job_id, a.number, signal);
}

void AttemptSupervisor::CheckAttempt(const std::string& job_id) {
  Attempt& a = running_.at(job_id);
  if (a.finish_pending) {
    if (a.output_stored) FinishAttempt(job_id, *a.finish_pending);
    return;
  }
  const auto now = Clock::now();
  if (a.term_sent && now - *a.term_sent > absl::ToChronoMilliseconds(absl::Seconds(options_.grace_period_s))) {
    spdlog::warn("job={} attempt {} ignored SIGTERM for {}s: SIGKILL", job_id, a.number, options_.grace_period_s);
    launcher_->Signal(job_id, a.number, SIGKILL);
    a.term_sent.reset();
  }
  if (!a.stop_reason.empty()) return;
  if (a.queued) return;  // ranks in the cluster's queue cannot send heartbeats
  // Time in the cluster's queue does not count; with Slurm, its own --time and --signal
  // stop the ranks the same way should trainerd be down then.
  const double ran_s = (NowMs() - std::max(a.started_ms, a.alive_since_ms)) / 1000.0;
  if (a.time_limit_s > 0 && ran_s >= a.time_limit_s - options_.grace_period_s) {
    spdlog::warn("job={} attempt {} has run {:.0f}s of its {}s time limit: SIGTERM, {}s before the end", job_id,
                 a.number, ran_s, a.time_limit_s, options_.grace_period_s);
    StopAttempt(job_id, a, SIGTERM, kStopTimeLimit);
    return;
  }
  for (size_t k = 0; k < a.ranks.size(); ++k) {
    const Rank& r = a.ranks[k];
    if (r.exit) continue;
    // Seconds since the newest sign of life: the attempt's start, the heartbeat file the
    // rank touches, or its last WorkerService heartbeat.
    double age = ran_s;
    struct stat st;
    if (::stat(r.heartbeat_path.c_str(), &st) == 0) age = std::min(age, std::difftime(std::time(nullptr), st.st_mtime));
    if (r.last_rpc_heartbeat) age = std::min(age, std::chrono::duration<double>(now - *r.last_rpc_heartbeat).count());
    if (age > options_.heartbeat_timeout_s) {
      spdlog::warn("job={} rank {} sent no heartbeat for {:.0f}s: killing the attempt", job_id, k, age);
      StopAttempt(job_id, a, SIGKILL,
                  absl::StrCat(a.ranks.size() > 1 ? absl::StrCat("rank ", k, ": ") : "",
                               "heartbeat lost (no progress for ", static_cast<int>(age), "s)"));
      return;
    }
  }
}

void AttemptSupervisor::FinishAttempt(const std::string& job_id, const ExitInfo& exit) {
  auto node = running_.extract(job_id);
  if (node.empty()) return;
  QueueChanged();  // slots are free, and the job may be queued again
  const Attempt& a = node.mapped();
  absl::StatusOr<Job> job = registry_->Get(job_id);
  if (!job.ok()) return;
  trainer::v1::Attempt* record = job->mutable_attempts(job->attempts_size() - 1);
  record->set_ended_unix_ms(NowMs());
  record->set_exit_code(exit.exit_code);
  record->set_signal(exit.signal);
  record->set_pid(0);
  record->clear_rank_pids();
  const int32_t failed_rank = StoppedByTrainerd(a.stop_reason) ? -1 : a.failed_rank;
  record->set_failed_rank(failed_rank);
  AttemptEnd end{a.number, exit, a.stop_reason, a.node_lost, failed_rank, ""};
  if (failed_rank >= 0 && !a.node_lost) {
    end.worker_error = LastErrorMessage(absl::StrCat(AttemptDir(options_.data_root, job_id, a.number), "/",
                                                     RankLogName(failed_rank)));
  }
  const AttemptVerdict verdict = JudgeAttempt(end, job->restarts(), job->max_restarts());
  record->set_reason(verdict.reason);
  if (!verdict.error.empty()) job->set_error(verdict.error);
  // A job that succeeded has no error; what earlier attempts met stays in their reasons.
  if (verdict.next_state == trainer::v1::SUCCEEDED) job->clear_error();
  if (verdict.next_state == trainer::v1::RESTARTING && a.stop_reason != kStopShutdown) {
    if (verdict.restart_counted) job->set_restarts(job->restarts() + 1);
    spdlog::warn("job={} attempt {} failed ({}); {}", job_id, a.number, verdict.reason,
                 verdict.restart_counted
                     ? absl::StrCat("restart ", job->restarts(), "/", job->max_restarts(), " from its latest checkpoint")
                     : std::string("restarting on the remaining nodes, uncounted"));
    if (on_restart_) on_restart_();
  } else if (verdict.next_state == trainer::v1::FAILED) {
    spdlog::error("job={} failed: {}", job_id, job->error());
  }
  MoveTo(*job, verdict.next_state);
}

void AttemptSupervisor::MoveTo(Job& job, trainer::v1::JobState to) {
  if (absl::Status s = registry_->Transition(job, to); !s.ok()) {
    spdlog::error("job={} not moved: {}", job.id(), std::string(s.message()));
  }
}

absl::StatusOr<Job> AttemptSupervisor::Cancel(const std::string& id) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Job> job = registry_->Get(id);
  if (!job.ok()) return job.status();
  if (IsTerminal(job->state()) || job->state() == trainer::v1::CANCELLING) return *job;
  auto it = running_.find(id);
  if (it == running_.end()) {
    if (absl::Status s = registry_->Transition(*job, trainer::v1::CANCELLED); !s.ok()) return s;
    QueueChanged();  // the jobs behind it move up
    return *job;
  }
  StopAttempt(id, it->second, SIGTERM, kStopCancelled);
  if (absl::Status s = registry_->Transition(*job, trainer::v1::CANCELLING); !s.ok()) return s;
  return *job;
}

absl::StatusOr<trainer::v1::HeartbeatResponse> AttemptSupervisor::WorkerHeartbeat(
    const std::string& secret, const trainer::v1::HeartbeatRequest& request) {
  if (secret.empty()) return absl::UnauthenticatedError("missing x-trainerd-worker-secret");
  absl::MutexLock lock(&mu_);
  auto it = running_.find(request.job_id());
  if (it == running_.end() || it->second.number != request.attempt()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", request.job_id(), " has no running attempt ", request.attempt()));
  }
  Attempt& a = it->second;
  // Equal-time comparison: the secret must not leak through timing.
  unsigned char diff = a.secret.size() != secret.size();
  for (size_t i = 0; i < std::min(a.secret.size(), secret.size()); ++i) diff |= a.secret[i] ^ secret[i];
  if (diff != 0) return absl::PermissionDeniedError("wrong worker secret for this attempt");
  if (request.rank() < 0 || request.rank() >= static_cast<int32_t>(a.ranks.size())) {
    return absl::InvalidArgumentError(absl::StrCat("rank: ", request.rank(), " is not a rank of this attempt"));
  }
  a.ranks[request.rank()].last_rpc_heartbeat = Clock::now();
  absl::StatusOr<Job> job = registry_->Get(request.job_id());
  if (job.ok() && job->attempts_size() > 0) {
    job->mutable_attempts(job->attempts_size() - 1)->set_last_heartbeat_unix_ms(NowMs());
    if (request.step() > job->progress().step()) job->mutable_progress()->set_step(request.step());
    registry_->Put(*job);
  }
  trainer::v1::HeartbeatResponse response;
  response.set_stop(!a.stop_reason.empty());
  response.set_reason(a.stop_reason);
  return response;
}

void AttemptSupervisor::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return;
  shutting_down_ = true;
  spdlog::info("shutting down: stopping {} worker(s) gracefully", running_.size());
  for (auto& [id, a] : running_) StopAttempt(id, a, SIGTERM, kStopShutdown);
  // The supervisor thread keeps following them; wait until every worker is gone.
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return running_.empty() || stop_thread_; };
  mu_.Await(absl::Condition(&done));
}

bool AttemptSupervisor::shutting_down() {
  absl::MutexLock lock(&mu_);
  return shutting_down_;
}

}  // namespace trainerd
