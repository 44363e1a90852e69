// AttemptSupervisor: queueing jobs and starting their attempts (attempt_supervisor.cc
// follows them once they run).
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include <spdlog/spdlog.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/atomic_file.h"
#include "protocol/job_layout.h"
#include "server/jobs/attempt_supervisor.h"
#include "server/jobs/job_admission.h"
#include "server/jobs/job_state.h"
#include "server/jobs/rank_launch_plan.h"
#include "server/jobs/scheduler.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using trainer::v1::Job;

bool HasCheckpoint(const std::string& output_dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(output_dir, ec)) {
    if (e.path().filename().string().rfind(kCheckpointPrefix, 0) == 0 && fs::exists(e.path() / kManifestFile)) {
      return true;
    }
  }
  return false;
}

// 128 random bits, hex.
std::string NewSecret() {
  std::random_device rd;
  std::string out;
  for (int i = 0; i < 4; ++i) out += absl::StrCat(absl::Hex(rd(), absl::kZeroPad8));
  return out;
}

}  // namespace

absl::StatusOr<trainer::v1::SubmitJobResponse> AttemptSupervisor::Submit(const trainer::v1::SubmitJobRequest& request,
                                                                         const Submitter& submitter) {
  if (shutting_down()) return absl::UnavailableError("trainerd is shutting down; not accepting jobs");
  absl::StatusOr<trainer::v1::SubmitJobResponse> admitted = AdmitJob(request, submitter, Capacity(), options_);
  if (!admitted.ok() || request.validate_only()) return admitted;
  const Job& job = admitted->job();
  absl::MutexLock lock(&mu_);
  absl::Status s = shutting_down_ ? absl::UnavailableError("trainerd is shutting down; not accepting jobs")
                                  : registry_->Add(job);
  if (!s.ok()) {
    std::error_code ec;
    fs::remove_all(JobDir(options_.data_root, job.id()), ec);  // nothing of it stays behind
    return s;
  }
  QueueChanged();
  spdlog::info("job={} submitted by {} name={} priority={}", job.id(), submitter.user, job.name(), job.priority());
  return admitted;
}

absl::Status AttemptSupervisor::Delete(const std::string& id, bool delete_files) {
  absl::MutexLock lock(&mu_);
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
  resume_requests_.erase(id);
  return delete_files ? RemoveJobFolder(id) : absl::OkStatus();
}

absl::Status AttemptSupervisor::DeleteKeptFolder(const std::string& id,
                                                 const std::function<absl::Status(const Job&)>& may_delete) {
  const bool well_formed = IsJobId(id);  // anything else never names a folder
  const std::string marker = absl::StrCat(JobDir(options_.data_root, id), "/", kDeletedOwnerFile);
  std::ifstream in(marker);
  std::string owner, owner_id;
  if (!well_formed || !in || !std::getline(in, owner)) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  Job kept;
  kept.set_id(id);
  kept.set_owner(owner);
  int64_t account = 0;  // a marker written before accounts had ids: admins only
  if (std::getline(in, owner_id) && absl::SimpleAtoi(owner_id, &account)) kept.set_owner_id(account);
  if (absl::Status s = may_delete(kept); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  return RemoveJobFolder(id);
}

absl::Status AttemptSupervisor::RemoveJobFolder(const std::string& id) {
  std::error_code ec;
  fs::remove_all(JobDir(options_.data_root, id), ec);
  if (ec) return absl::InternalError(absl::StrCat("deleting ", JobDir(options_.data_root, id), ": ", ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<Job> AttemptSupervisor::Resume(const std::string& id, int64_t checkpoint_step) {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return absl::UnavailableError("trainerd is shutting down");
  absl::StatusOr<Job> job = registry_->Get(id);
  if (!job.ok()) return job.status();
  if (!IsTerminal(job->state())) {
    return absl::FailedPreconditionError(absl::StrCat("job ", id, " is ", StateName(job->state()),
                                                      "; only a finished job can be resumed"));
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
  if (absl::Status s = registry_->Transition(*job, trainer::v1::QUEUED); !s.ok()) return s;
  if (!checkpoint.empty()) resume_requests_[id] = checkpoint;
  QueueChanged();
  return *job;
}

NodeSlots AttemptSupervisor::Capacity() {
  NodeSlots capacity;
  for (const NodeSlots& n : launcher_->Nodes()) {
    capacity.cpu_slots += n.cpu_slots;
    capacity.gpus = std::max(capacity.gpus, n.gpus);
  }
  return capacity;
}

std::vector<NodeSlots> AttemptSupervisor::FreeSlotsByNode() {
  std::vector<NodeSlots> nodes = launcher_->Nodes();
  for (const auto& [job_id, a] : running_) {
    for (const Rank& r : a.ranks) {
      for (NodeSlots& n : nodes) {
        if (n.node != r.node) continue;  // none matches when the node is gone
        n.cpu_slots -= 1;
        n.gpus -= a.gpus_per_rank;
      }
    }
  }
  return nodes;
}

std::vector<int32_t> AttemptSupervisor::FreeGpus(const std::string& node, int32_t count,
                                                 const std::vector<std::vector<int32_t>>& taken) {
  int32_t total = 0;
  for (const NodeSlots& n : launcher_->Nodes()) {
    if (n.node == node) total = n.gpus;
  }
  std::set<int32_t> used;
  for (const auto& [job_id, a] : running_) {
    for (const Rank& r : a.ranks) {
      if (r.node == node && !r.exit) used.insert(r.gpus.begin(), r.gpus.end());
    }
  }
  for (const std::vector<int32_t>& gpus : taken) used.insert(gpus.begin(), gpus.end());
  std::vector<int32_t> out;
  for (int32_t g = 0; g < total && static_cast<int32_t>(out.size()) < count; ++g) {
    if (!used.count(g)) out.push_back(g);
  }
  return out;
}

std::optional<QueueSpot> AttemptSupervisor::QueueSpotOf(const std::string& id) {
  absl::MutexLock lock(&spots_mu_);
  auto it = queue_spots_.find(id);
  if (it == queue_spots_.end()) return std::nullopt;
  return it->second;
}

void AttemptSupervisor::Schedule() {
  if (!schedule_needed_) return;
  std::vector<NodeSlots> nodes = FreeSlotsByNode();
  FreeSlots total;
  for (const NodeSlots& n : nodes) {
    total.cpu_slots += n.cpu_slots;
    total.gpus += n.gpus;
  }
  // Nothing can start until a slot frees; the queue is read then only to say where each
  // job stands (when it changed, at most once a second: thousands may wait).
  const bool can_start = total.cpu_slots > 0;
  const auto now = Clock::now();
  if (!can_start && (!queue_changed_ || now - queue_planned_ < std::chrono::seconds(1))) return;
  if (can_start) schedule_needed_ = false;
  queue_changed_ = false;
  queue_planned_ = now;
  auto queued = registry_->store()->JobsInStates({trainer::v1::QUEUED, trainer::v1::RESTARTING});
  if (!queued.ok()) return;
  std::vector<QueuedJob> queue;
  for (const Job& job : *queued) {
    if (running_.count(job.id())) continue;
    queue.push_back({job.id(), job.priority(), job.created_unix_ms(), job.resources().ranks(),
                     job.resources().ranks() * job.resources().gpus_per_rank()});
  }
  std::vector<std::string> starts;
  {
    absl::MutexLock lock(&spots_mu_);
    queue_spots_.clear();
    for (QueueSpot& spot : PlanQueue(std::move(queue), total)) {
      if (spot.reason.empty()) {
        starts.push_back(spot.id);
      } else {
        queue_spots_[spot.id] = std::move(spot);
      }
    }
  }
  for (const std::string& id : starts) {
    absl::StatusOr<Job> job = registry_->Get(id);  // the latest copy, saved or not
    if (!job.ok()) continue;
    std::optional<std::vector<std::string>> placement =
        PlaceRanks(std::max(1, job->resources().ranks()), job->resources().gpus_per_rank(), &nodes);
    if (!placement) {
      // Enough slots in all, but not where the GPUs are: try again when something frees.
      QueueChanged();
      continue;
    }
    std::string resume;
    auto it = resume_requests_.find(id);
    if (it != resume_requests_.end()) {
      resume = it->second;
      resume_requests_.erase(it);
    } else if (HasCheckpoint(job->output_dir())) {
      resume = "true";
    }
    StartAttempt(*job, resume, *placement);
  }
}

void AttemptSupervisor::StartAttempt(Job& job, const std::string& resume_from, const std::vector<std::string>& nodes) {
  if (absl::Status s = registry_->Transition(job, trainer::v1::STARTING); !s.ok()) {
    spdlog::error("{}", std::string(s.message()));
    return;
  }
  if (absl::Status s = CheckWorkerProgram(job, options_.allowed_worker_dirs); !s.ok()) {
    // Not the job's fault to retry: the program it named is gone or replaced.
    spdlog::error("job={} {}", job.id(), std::string(s.message()));
    job.set_error(std::string(s.message()));
    MoveTo(job, trainer::v1::FAILED);
    QueueChanged();  // its slots stayed free for the next job
    return;
  }
  Attempt a = NewAttempt(job, job.attempts_size() + 1);
  a.started_ms = NowMs();
  a.secret = NewSecret();
  AttemptLaunchPlan plan;
  plan.attempt = a.number;
  plan.resume_from = resume_from;
  plan.nodes = nodes;
  plan.worker_address = worker_address_;
  plan.secret = a.secret;
  plan.master_addr = launcher_->NodeAddress(nodes[0]);  // rank 0 hosts the rendezvous store
  for (size_t k = 0; k < a.ranks.size(); ++k) {
    a.ranks[k].node = nodes[k];
    a.ranks[k].gpus = FreeGpus(nodes[k], a.gpus_per_rank, plan.gpus);
    plan.gpus.push_back(a.ranks[k].gpus);
  }
  trainer::v1::Attempt* record = job.add_attempts();
  record->set_number(a.number);
  record->set_started_unix_ms(a.started_ms);
  // "true" (the latest valid checkpoint) becomes the folder the worker reports it used.
  record->set_resumed_from(resume_from == "true" ? "" : resume_from);
  record->set_failed_rank(-1);

  // The attempt's folder and secret first (kept beside the attempt, owner-only, so that a
  // restarted trainerd still knows it): without them nothing may start.
  const std::string attempt_dir = AttemptDir(options_.data_root, job.id(), a.number);
  std::error_code ec;
  fs::create_directories(attempt_dir, ec);
  absl::Status launched = ec ? absl::InternalError(absl::StrCat("cannot create ", attempt_dir, ": ", ec.message()))
                             : WriteFileAtomically(absl::StrCat(attempt_dir, "/", kAttemptSecretFile),
                                                   a.secret + "\n", 0600);
  absl::StatusOr<int> port = PickFreePort();
  if (launched.ok()) launched = port.status();
  if (launched.ok()) {
    plan.master_port = *port;
    absl::StatusOr<StartedRanks> started = launcher_->Start(PlanRankStarts(job, plan, options_));
    launched = started.status();
    for (size_t k = 0; started.ok() && k < a.ranks.size(); ++k) a.ranks[k].pid = started->pids[k];
    if (started.ok()) {
      record->set_slurm_job_id(started->cluster_job_id);
      a.queued = !started->cluster_job_id.empty();  // a cluster's job starts in its queue
    }
  }
  for (const Rank& r : a.ranks) {
    record->add_rank_pids(r.pid);
    record->add_rank_nodes(r.node);
    record->add_rank_gpus(absl::StrJoin(r.gpus, ","));
  }
  record->set_pid(a.ranks[0].pid);
  if (!launched.ok()) {
    record->set_ended_unix_ms(NowMs());
    record->set_reason(absl::StrCat("cannot start the workers: ", launched.message()));
    job.set_error(record->reason());
    MoveTo(job, trainer::v1::FAILED);
    return;
  }
  spdlog::info("job={} attempt {} started: {} rank(s), {} {}", job.id(), a.number, a.ranks.size(),
               record->slurm_job_id().empty() ? absl::StrCat("rank 0 pid ", a.ranks[0].pid)
                                              : "Slurm job " + record->slurm_job_id(),
               resume_from.empty()      ? ""
               : resume_from == "true" ? "resuming from its latest checkpoint"
                                       : "resuming from " + resume_from);
  // A gang in the cluster's queue is STARTING until the cluster runs it (OnClusterState).
  const bool queued = a.queued;
  running_[job.id()] = std::move(a);
  if (queued) {
    registry_->Put(job);
  } else {
    MoveTo(job, trainer::v1::RUNNING);
  }
}

}  // namespace trainerd
