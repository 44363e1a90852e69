// JobManager's supervisor: following, stopping and recovering the ranks of attempts.
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "protocol/job_layout.h"
#include "protocol/worker_exit_codes.h"
#include "absl/strings/str_split.h"
#include "server/job_manager.h"
#include "server/job_state.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using trainer::v1::Job;

std::string DescribeExit(const ExitInfo& exit) {
  if (exit.signal == SIGKILL) return "killed by SIGKILL (out of memory?)";
  if (exit.signal != 0) return absl::StrCat("killed by signal ", exit.signal, " (", strsignal(exit.signal), ")");
  if (exit.exit_code == kWorkerExitInvalidSpec) return "exited 2: the worker rejected the spec";
  if (exit.exit_code == kWorkerExitOutOfMemory) return "exited 4: out of memory (see the rank's log for the limit)";
  return absl::StrCat("exited ", exit.exit_code);
}

// Whether a worker we could not wait for (re-attached after a restart) finished its job:
// trainer-worker writes all_results.json last, on success only.
bool FinishedSuccessfully(const Job& job, int64_t attempt_started_ms) {
  std::error_code ec;
  auto t = fs::last_write_time(fs::path(job.output_dir()) / "all_results.json", ec);
  if (ec) return false;
  const auto written = std::chrono::duration_cast<std::chrono::milliseconds>(
      (t - fs::file_time_type::clock::now()) + std::chrono::system_clock::now().time_since_epoch());
  return written.count() >= attempt_started_ms;
}

// 128 random bits, hex.
}  // namespace

JobManager::Running JobManager::AttemptFiles(const Job& job, int32_t attempt) const {
  Running r;
  r.job_id = job.id();
  r.attempt = attempt;
  const std::string attempt_dir = JobDir(job.id()) + "/" + AttemptDirName(attempt);
  const int32_t ranks = std::max(1, job.resources().ranks());
  for (int32_t k = 0; k < ranks; ++k) {
    RankProc p;
    p.rank = k;
    p.log_path = absl::StrCat(attempt_dir, "/", RankLogName(k));
    p.log_key = absl::StrCat(job.id(), "/", AttemptDirName(attempt), "/", RankLogName(k));
    p.heartbeat_path = absl::StrCat(attempt_dir, "/", HeartbeatName(k));
    r.ranks.push_back(std::move(p));
  }
  r.cpu_slots = ranks;
  r.gpus = ranks * job.resources().gpus_per_rank();
  return r;
}

absl::Status JobManager::Recover() {
  std::lock_guard<std::mutex> lock(mu_);
  auto active = store_->JobsInStates({trainer::v1::STARTING, trainer::v1::RUNNING, trainer::v1::CANCELLING});
  if (!active.ok()) return active.status();
  for (Job& job : *active) {
    if (job.attempts_size() == 0) {
      job.set_state(trainer::v1::QUEUED);
      PutJob(job);
      continue;
    }
    auto* attempt = job.mutable_attempts(job.attempts_size() - 1);
    const std::string dir = JobDir(job.id());
    Running r = AttemptFiles(job, attempt->number());
    r.child = false;
    bool any_alive = false, remote = false;
    for (RankProc& p : r.ranks) {
      p.pid = p.rank < attempt->rank_pids_size() ? attempt->rank_pids(p.rank) : (p.rank == 0 ? attempt->pid() : 0);
      if (p.rank < attempt->rank_nodes_size()) p.node = attempt->rank_nodes(p.rank);
      if (p.rank < attempt->rank_gpus_size()) {
        for (absl::string_view g : absl::StrSplit(attempt->rank_gpus(p.rank), ',', absl::SkipEmpty())) {
          int32_t index = 0;
          if (absl::SimpleAtoi(g, &index)) p.gpus.push_back(index);
        }
      }
      remote = remote || !p.node.empty();
      p.log_offset = store_->TailOffset(p.log_key).value_or(0);
      if (p.node.empty() && WorkerAlive(p.pid, dir)) any_alive = true;
    }
    std::ifstream secret(absl::StrCat(dir, "/", AttemptDirName(r.attempt), "/", kAttemptSecretFile));
    std::getline(secret, r.secret);
    r.started_ms = attempt->started_unix_ms();
    // Ranks on agents die with their agent's connection to the old trainerd: an
    // attempt with remote ranks restarts.
    if (any_alive && !remote) {
      if (job.state() == trainer::v1::CANCELLING) r.stop_reason = "cancelled";
      running_[job.id()] = r;
      spdlog::info("job={} re-attached to {} rank(s) of attempt {}", job.id(), r.ranks.size(), r.attempt);
      continue;
    }
    if (any_alive) {
      for (RankProc& p : r.ranks) {
        if (p.node.empty()) SignalWorker(p.pid, SIGKILL);
      }
    }
    // Whatever the workers wrote before they ended is still in their files: read it first.
    TailOutput(job.id(), r);
    if (auto updated = Get(job.id()); updated.ok()) job = *updated;
    attempt = job.mutable_attempts(job.attempts_size() - 1);
    // Its workers are gone too: judge the attempt, then restart or finish the job.
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
    PutJob(job);
  }
  return absl::OkStatus();
}

void JobManager::SupervisorLoop() {
  const auto interval = std::chrono::milliseconds(static_cast<int64_t>(options_.poll_interval_s * 1000));
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_supervisor_) {
    PollOnce();
    if (shutting_down_ && running_.empty()) {
      changed_.notify_all();
    }
    changed_.wait_for(lock, interval, [&] { return stop_supervisor_; });
  }
}

void JobManager::PollOnce() {
  FlushUnsaved();
  ExitInfo exit;
  while (pid_t pid = ReapChild(&exit)) {
    for (auto& [id, r] : running_) {
      auto rank = std::find_if(r.ranks.begin(), r.ranks.end(),
                               [&](const RankProc& p) { return p.pid == pid && p.node.empty(); });
      if (r.child && rank != r.ranks.end()) {
        const std::string job_id = id;  // OnRankExit may erase the entry
        OnRankExit(job_id, r, static_cast<size_t>(rank - r.ranks.begin()), exit);
        break;
      }
    }
  }
  CheckAgents();
  for (auto it = running_.begin(); it != running_.end();) {
    const std::string id = it->first;
    ++it;  // CheckWorker may finish (erase) this entry
    TailOutput(id, running_[id]);
    CheckWorker(id, running_[id]);
  }
  if (!shutting_down_) Schedule();
}

void JobManager::SignalRanks(Running& r, int signal) {
  for (RankProc& p : r.ranks) {
    if (p.exit) continue;
    if (p.node.empty()) {
      SignalWorker(p.pid, signal);
    } else {
      SignalRemoteRank(r, p, signal);
    }
  }
}

void JobManager::OnRankExit(const std::string& job_id, Running& r, size_t rank, const ExitInfo& exit) {
  RankProc& p = r.ranks[rank];
  if (p.exit) return;
  p.exit = exit;
  TailOutput(job_id, r);
  const bool failed = exit.exit_code != 0 || exit.signal != 0;
  if (failed && !r.failure) {
    r.failure = exit;
    r.failed_rank = p.rank;
    // A rank that fails on its own takes the attempt down: the others cannot go on
    // without it (they would only wait in a collective until ddp_timeout).
    if (r.stop_reason.empty() && r.ranks.size() > 1) {
      r.stop_reason = absl::StrCat("rank ", p.rank, " ", DescribeExit(exit));
      spdlog::warn("job={} {}: stopping the attempt's other ranks", job_id, r.stop_reason);
      SignalRanks(r, SIGKILL);
    }
  }
  for (const RankProc& other : r.ranks) {
    if (!other.exit) return;
  }
  if (!r.output_stored) {
    r.finish_pending = r.failure ? *r.failure : exit;  // CheckWorker finishes it once stored
    return;
  }
  FinishAttempt(job_id, r.failure ? *r.failure : exit);
}

void JobManager::CheckWorker(const std::string& job_id, Running& r) {
  const auto now = Clock::now();
  if (r.finish_pending) {
    // Every rank ended; PollOnce tailed their output again just before this.
    if (r.output_stored) FinishAttempt(job_id, *r.finish_pending);
    return;
  }
  if (!r.child) {
    // Re-attached ranks cannot be waited for: look for them in /proc instead.
    const RankProc* vanished = nullptr;
    bool all_gone = true;
    for (const RankProc& p : r.ranks) {
      const bool alive = WorkerAlive(p.pid, JobDir(job_id));
      all_gone = all_gone && !alive;
      if (!alive && vanished == nullptr) vanished = &p;
    }
    if (!all_gone) {
      // One that vanished ends the attempt.
      if (vanished != nullptr && r.stop_reason.empty()) {
        r.stop_reason = absl::StrCat("rank ", vanished->rank, " ended (exit status unknown)");
        SignalRanks(r, SIGKILL);
      }
    } else {
      if (!r.output_stored) return;  // finished once its output is stored
      auto job = Get(job_id);
      ExitInfo unknown;  // not our child: no exit status, judge by its results
      unknown.exit_code = job.ok() && FinishedSuccessfully(*job, r.started_ms) ? 0 : -1;
      if (unknown.exit_code != 0 && r.stop_reason.empty()) r.stop_reason = "worker ended (exit status unknown)";
      FinishAttempt(job_id, unknown);
      return;
    }
  }
  if (r.term_sent && now - *r.term_sent > std::chrono::milliseconds(static_cast<int64_t>(options_.grace_period_s * 1000))) {
    spdlog::warn("job={} attempt {} ignored SIGTERM for {}s: SIGKILL", job_id, r.attempt, options_.grace_period_s);
    SignalRanks(r, SIGKILL);
    r.term_sent.reset();
  }
  if (!r.stop_reason.empty()) return;
  for (RankProc& p : r.ranks) {
    if (p.exit) continue;
    // Seconds since the newest sign of life: the attempt's start, the heartbeat file the
    // rank touches, or its last WorkerService heartbeat.
    double age = (NowMs() - r.started_ms) / 1000.0;
    struct stat st;
    if (::stat(p.heartbeat_path.c_str(), &st) == 0) age = std::min(age, std::difftime(std::time(nullptr), st.st_mtime));
    if (p.last_rpc_heartbeat) age = std::min(age, std::chrono::duration<double>(now - *p.last_rpc_heartbeat).count());
    if (age > options_.heartbeat_timeout_s) {
      spdlog::warn("job={} rank {} sent no heartbeat for {:.0f}s: killing the attempt", job_id, p.rank, age);
      r.stop_reason = absl::StrCat(r.ranks.size() > 1 ? absl::StrCat("rank ", p.rank, ": ") : "",
                                   "heartbeat lost (no progress for ", static_cast<int>(age), "s)");
      SignalRanks(r, SIGKILL);
      return;
    }
  }
}

void JobManager::FinishAttempt(const std::string& job_id, const ExitInfo& exit) {
  auto node = running_.extract(job_id);
  if (node.empty()) return;
  schedule_needed_ = true;  // a slot is free, and the job may be queued again
  Running& r = node.mapped();
  auto job = Get(job_id);
  if (!job.ok()) return;
  auto* attempt = job->mutable_attempts(job->attempts_size() - 1);
  attempt->set_ended_unix_ms(NowMs());
  attempt->set_exit_code(exit.exit_code);
  attempt->set_signal(exit.signal);
  attempt->set_pid(0);
  attempt->clear_rank_pids();
  attempt->set_failed_rank(r.failed_rank);
  const bool succeeded = exit.exit_code == 0 && exit.signal == 0;
  if (r.stop_reason == "cancelled") {
    attempt->set_reason(succeeded ? "finished while cancelling" : "cancelled");
    MoveTo(*job, succeeded ? trainer::v1::SUCCEEDED : trainer::v1::CANCELLED);
  } else if (r.stop_reason == "shutdown") {
    attempt->set_reason("stopped by trainerd shutdown; resumes at the next start");
    MoveTo(*job, succeeded ? trainer::v1::SUCCEEDED : trainer::v1::RESTARTING);
  } else if (succeeded) {
    attempt->set_reason("exited 0");
    MoveTo(*job, trainer::v1::SUCCEEDED);
  } else {
    attempt->set_reason(r.stop_reason.empty() ? DescribeExit(exit) : r.stop_reason);
    job->set_error(absl::StrCat("attempt ", r.attempt, ": ", attempt->reason()));
    // A bad spec or a job over its memory limit would fail the same way again.
    const bool hopeless = exit.exit_code == kWorkerExitInvalidSpec || exit.exit_code == kWorkerExitOutOfMemory;
    const bool retry = !hopeless && job->restarts() < job->max_restarts();
    if (r.node_lost) {
      // The machine went away, not the job's fault: restart elsewhere, uncounted.
      spdlog::warn("job={} attempt {} lost its node ({}); restarting on the remaining nodes", job_id, r.attempt,
                   attempt->reason());
      if (hooks_.on_restart) hooks_.on_restart();
      MoveTo(*job, trainer::v1::RESTARTING);
    } else if (retry) {
      job->set_restarts(job->restarts() + 1);
      spdlog::warn("job={} attempt {} failed ({}); restart {}/{} from its latest checkpoint", job_id, r.attempt,
                   attempt->reason(), job->restarts(), job->max_restarts());
      if (hooks_.on_restart) hooks_.on_restart();
      MoveTo(*job, trainer::v1::RESTARTING);
    } else {
      spdlog::error("job={} failed: {}", job_id, job->error());
      MoveTo(*job, trainer::v1::FAILED);
    }
  }
}

void JobManager::Shutdown() {
  std::unique_lock<std::mutex> lock(mu_);
  if (shutting_down_) return;
  shutting_down_ = true;
  spdlog::info("shutting down: stopping {} worker(s) gracefully", running_.size());
  for (auto& [id, r] : running_) {
    if (r.stop_reason.empty()) r.stop_reason = "shutdown";
    r.term_sent = Clock::now();
    SignalRanks(r, SIGTERM);
  }
  // The supervisor keeps reaping and tailing; wait until every worker is gone.
  changed_.wait(lock, [&] { return running_.empty() || stop_supervisor_; });
}

}  // namespace trainerd
