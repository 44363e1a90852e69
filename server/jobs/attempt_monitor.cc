// AttemptMonitor: following running attempts and judging how they ended (attempt_monitor.h).
#include "server/jobs/attempt_monitor.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <ctime>

#include "absl/strings/str_cat.h"
#include "protocol/job_layout.h"
#include "server/jobs/attempt_verdict.h"
#include "server/jobs/worker_log_parsing.h"

namespace trainerd {

using trainer::v1::Job;

void AttemptMonitor::Poll() {
  HandleEvents();
  std::vector<std::string> ids;
  for (const auto& [id, a] : state_->running) ids.push_back(id);
  for (const std::string& id : ids) {
    auto it = state_->running.find(id);
    if (it == state_->running.end()) continue;
    RunningAttempt& a = it->second;
    a.output_stored = tailer_->Tail(id, a.number, static_cast<int32_t>(a.ranks.size())).ok();
    CheckAttempt(id);
  }
}

void AttemptMonitor::HandleEvents() {
  bool nodes_changed = false;
  for (RankEvent& e : launcher_->TakeEvents(&nodes_changed)) {
    auto it = state_->running.find(e.id.job_id);
    if (it == state_->running.end() || it->second.number != e.id.attempt || e.id.rank < 0 ||
        e.id.rank >= static_cast<int32_t>(it->second.ranks.size())) {
      continue;  // an attempt that already ended
    }
    RunningAttempt& a = it->second;
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
  if (nodes_changed) state_->QueueChanged();
}

void AttemptMonitor::RecordPid(const std::string& job_id, const RunningAttempt& a, int32_t rank, pid_t pid) {
  absl::StatusOr<Job> job = registry_->Get(job_id);
  if (!job.ok() || job->attempts_size() == 0) return;
  trainer::v1::Attempt* record = job->mutable_attempts(job->attempts_size() - 1);
  if (record->number() != a.number || rank >= record->rank_pids_size()) return;
  record->set_rank_pids(rank, pid);
  if (rank == 0) record->set_pid(pid);
  registry_->Put(*job);
}

void AttemptMonitor::OnClusterState(const std::string& job_id, RunningAttempt& a, const RankEvent& e) {
  if (a.queued && !e.queued) a.alive_since_ms = NowMs();
  a.queued = e.queued;
  absl::StatusOr<Job> job = registry_->Get(job_id);
  if (!job.ok() || job->attempts_size() == 0) return;
  trainer::v1::Attempt* record = job->mutable_attempts(job->attempts_size() - 1);
  if (record->number() != a.number) return;
  record->set_cluster_state(e.reason);
  if (e.preempted) {
    // Not a failure and not a restart: the cluster took the nodes back, the ranks saved
    // a checkpoint, and the same Slurm job continues from it when it runs again.
    record->set_preemptions(record->preemptions() + 1);
    spdlog::warn(
        "job={} attempt {} preempted by the cluster (Slurm job {} {}): it continues from its checkpoint "
        "when it runs again (preemption {}, not counted as a restart)",
        job_id, a.number, record->cluster_job_id(), e.reason, record->preemptions());
  } else {
    spdlog::info("job={} attempt {}: Slurm job {} {}", job_id, a.number, record->cluster_job_id(), e.reason);
  }
  if (job->state() == trainer::v1::STARTING && !e.queued) {
    MoveJob(registry_, *job, trainer::v1::RUNNING);  // the cluster runs the gang now
  } else {
    registry_->Put(*job);
  }
}

void AttemptMonitor::OnRankEnded(const std::string& job_id, int32_t rank, ExitInfo exit, const std::string& where) {
  auto it = state_->running.find(job_id);
  if (it == state_->running.end()) return;
  RunningAttempt& a = it->second;
  RunningRank& r = a.ranks[rank];
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
  for (const RunningRank& other : a.ranks) {
    if (!other.exit) return;
  }
  const ExitInfo ended = a.failure ? *a.failure : exit;
  if (!a.output_stored) {
    a.finish_pending = ended;  // CheckAttempt finishes it once its output is stored
    return;
  }
  FinishAttempt(job_id, ended);
}

void AttemptMonitor::StopAttempt(const std::string& job_id, RunningAttempt& a, int signal, const std::string& reason) {
  if (a.stop_reason.empty()) a.stop_reason = reason;
  if (signal == SIGTERM) a.term_sent = SupervisorClock::now();
  launcher_->Signal(job_id, a.number, signal);
}

void AttemptMonitor::CheckAttempt(const std::string& job_id) {
  RunningAttempt& a = state_->running.at(job_id);
  if (a.finish_pending) {
    if (a.output_stored) FinishAttempt(job_id, *a.finish_pending);
    return;
  }
  const auto now = SupervisorClock::now();
  if (a.term_sent && now - *a.term_sent > absl::ToChronoMilliseconds(absl::Seconds(options_->grace_period_s))) {
    spdlog::warn("job={} attempt {} ignored SIGTERM for {}s: SIGKILL", job_id, a.number, options_->grace_period_s);
    launcher_->Signal(job_id, a.number, SIGKILL);
    a.term_sent.reset();
  }
  if (!a.stop_reason.empty()) return;
  if (a.queued) return;  // ranks in the cluster's queue cannot send heartbeats
  // Time in the cluster's queue does not count; with Slurm, its own --time and --signal
  // stop the ranks the same way should trainerd be down then.
  const double ran_s = (NowMs() - std::max(a.started_ms, a.alive_since_ms)) / 1000.0;
  if (a.time_limit_s > 0 && ran_s >= a.time_limit_s - options_->grace_period_s) {
    spdlog::warn("job={} attempt {} has run {:.0f}s of its {}s time limit: SIGTERM, {}s before the end", job_id,
                 a.number, ran_s, a.time_limit_s, options_->grace_period_s);
    StopAttempt(job_id, a, SIGTERM, kStopTimeLimit);
    return;
  }
  for (size_t k = 0; k < a.ranks.size(); ++k) {
    const RunningRank& r = a.ranks[k];
    if (r.exit) continue;
    // Seconds since the newest sign of life: the attempt's start, the heartbeat file the
    // rank touches, or its last WorkerService heartbeat.
    double age = ran_s;
    struct stat st;
    if (::stat(r.heartbeat_path.c_str(), &st) == 0) age = std::min(age, std::difftime(std::time(nullptr), st.st_mtime));
    if (r.last_rpc_heartbeat) age = std::min(age, std::chrono::duration<double>(now - *r.last_rpc_heartbeat).count());
    if (age > options_->heartbeat_timeout_s) {
      spdlog::warn("job={} rank {} sent no heartbeat for {:.0f}s: killing the attempt", job_id, k, age);
      StopAttempt(job_id, a, SIGKILL,
                  absl::StrCat(a.ranks.size() > 1 ? absl::StrCat("rank ", k, ": ") : "",
                               "heartbeat lost (no progress for ", static_cast<int>(age), "s)"));
      return;
    }
  }
}

void AttemptMonitor::FinishAttempt(const std::string& job_id, const ExitInfo& exit) {
  auto node = state_->running.extract(job_id);
  if (node.empty()) return;
  state_->QueueChanged();  // slots are free, and the job may be queued again
  const RunningAttempt& a = node.mapped();
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
    end.worker_error = LastErrorMessage(
        absl::StrCat(AttemptDir(options_->data_root, job_id, a.number), "/", RankLogName(failed_rank)));
  }
  const AttemptVerdict verdict = JudgeAttempt(end, job->restarts(), job->max_restarts());
  record->set_reason(verdict.reason);
  if (!verdict.error.empty()) job->set_error(verdict.error);
  // A job that succeeded has no error; what earlier attempts met stays in their reasons.
  if (verdict.next_state == trainer::v1::SUCCEEDED) job->clear_error();
  if (verdict.next_state == trainer::v1::RESTARTING && a.stop_reason != kStopShutdown) {
    if (verdict.restart_counted) job->set_restarts(job->restarts() + 1);
    spdlog::warn("job={} attempt {} failed ({}); {}", job_id, a.number, verdict.reason,
                 verdict.restart_counted ? absl::StrCat("restart ", job->restarts(), "/", job->max_restarts(),
                                                        " from its latest checkpoint")
                                         : std::string("restarting on the remaining nodes, uncounted"));
    if (on_restart_) on_restart_();
  } else if (verdict.next_state == trainer::v1::FAILED) {
    spdlog::error("job={} failed: {}", job_id, job->error());
  }
  MoveJob(registry_, *job, verdict.next_state);
}

absl::StatusOr<trainer::v1::HeartbeatResponse> AttemptMonitor::WorkerHeartbeat(
    const std::string& secret, const trainer::v1::HeartbeatRequest& request) {
  if (secret.empty()) return absl::UnauthenticatedError("missing x-trainerd-worker-secret");
  absl::MutexLock lock(&state_->mu);
  auto it = state_->running.find(request.job_id());
  if (it == state_->running.end() || it->second.number != request.attempt()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", request.job_id(), " has no running attempt ", request.attempt()));
  }
  RunningAttempt& a = it->second;
  // Equal-time comparison: the secret must not leak through timing.
  unsigned char diff = a.secret.size() != secret.size();
  for (size_t i = 0; i < std::min(a.secret.size(), secret.size()); ++i) diff |= a.secret[i] ^ secret[i];
  if (diff != 0) return absl::PermissionDeniedError("wrong worker secret for this attempt");
  if (request.rank() < 0 || request.rank() >= static_cast<int32_t>(a.ranks.size())) {
    return absl::InvalidArgumentError(absl::StrCat("rank: ", request.rank(), " is not a rank of this attempt"));
  }
  a.ranks[request.rank()].last_rpc_heartbeat = SupervisorClock::now();
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

}  // namespace trainerd
