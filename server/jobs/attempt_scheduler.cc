// AttemptScheduler: planning the queue and starting attempts (attempt_scheduler.h).
#include "server/jobs/attempt_scheduler.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/atomic_file.h"
#include "protocol/job_layout.h"
#include "protocol/worker_command_line.h"
#include "server/jobs/job_admission.h"
#include "server/jobs/rank_launch_plan.h"

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

NodeSlots AttemptScheduler::Capacity() {
  NodeSlots capacity;
  for (const NodeSlots& n : launcher_->Nodes()) {
    capacity.cpu_slots += n.cpu_slots;
    capacity.gpus = std::max(capacity.gpus, n.gpus);
  }
  return capacity;
}

std::vector<NodeSlots> AttemptScheduler::FreeSlotsByNode() {
  std::vector<NodeSlots> nodes = launcher_->Nodes();
  for (const auto& [job_id, a] : state_->running) {
    for (const RunningRank& r : a.ranks) {
      for (NodeSlots& n : nodes) {
        if (n.node != r.node) continue;  // none matches when the node is gone
        n.cpu_slots -= 1;
        n.gpus -= a.gpus_per_rank;
      }
    }
  }
  return nodes;
}

std::vector<int32_t> AttemptScheduler::FreeGpus(const std::string& node, int32_t count,
                                                const std::vector<std::vector<int32_t>>& taken) {
  int32_t total = 0;
  for (const NodeSlots& n : launcher_->Nodes()) {
    if (n.node == node) total = n.gpus;
  }
  std::set<int32_t> used;
  for (const auto& [job_id, a] : state_->running) {
    for (const RunningRank& r : a.ranks) {
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

std::optional<QueueSpot> AttemptScheduler::QueueSpotOf(const std::string& id) {
  absl::MutexLock lock(&spots_mu_);
  auto it = queue_spots_.find(id);
  if (it == queue_spots_.end()) return std::nullopt;
  return it->second;
}

void AttemptScheduler::Schedule() {
  if (!state_->schedule_needed) return;
  std::vector<NodeSlots> nodes = FreeSlotsByNode();
  FreeSlots total;
  for (const NodeSlots& n : nodes) {
    total.cpu_slots += n.cpu_slots;
    total.gpus += n.gpus;
  }
  // Nothing can start until a slot frees; the queue is read then only to say where each
  // job stands (when it changed, at most once a second: thousands may wait).
  const bool can_start = total.cpu_slots > 0;
  const auto now = SupervisorClock::now();
  if (!can_start && (!state_->queue_changed || now - queue_planned_ < std::chrono::seconds(1))) return;
  if (can_start) state_->schedule_needed = false;
  state_->queue_changed = false;
  queue_planned_ = now;
  auto queued = registry_->JobsInStates({trainer::v1::QUEUED, trainer::v1::RESTARTING});
  if (!queued.ok()) return;
  std::vector<QueuedJob> queue;
  for (const Job& job : *queued) {
    if (state_->running.count(job.id())) continue;
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
      state_->QueueChanged();
      continue;
    }
    std::string resume;
    auto it = state_->resume_requests.find(id);
    if (it != state_->resume_requests.end()) {
      resume = it->second;
      state_->resume_requests.erase(it);
    } else if (HasCheckpoint(job->output_dir())) {
      resume = kResumeFromLatest;
    }
    StartAttempt(*job, resume, *placement);
  }
}

void AttemptScheduler::StartAttempt(Job& job, const std::string& resume_from, const std::vector<std::string>& nodes) {
  if (absl::Status s = registry_->Transition(job, trainer::v1::STARTING); !s.ok()) {
    spdlog::error("{}", std::string(s.message()));
    return;
  }
  if (absl::Status s = CheckWorkerProgram(job, options_->allowed_worker_dirs); !s.ok()) {
    // Not the job's fault to retry: the program it named is gone or replaced.
    spdlog::error("job={} {}", job.id(), std::string(s.message()));
    job.set_error(std::string(s.message()));
    MoveJob(registry_, job, trainer::v1::FAILED);
    state_->QueueChanged();  // its slots stayed free for the next job
    return;
  }
  RunningAttempt a = NewRunningAttempt(job, job.attempts_size() + 1, options_->data_root);
  a.started_ms = NowMs();
  a.secret = NewSecret();
  AttemptLaunchPlan plan;
  plan.attempt = a.number;
  plan.resume_from = resume_from;
  plan.nodes = nodes;
  plan.worker_address = state_->worker_address;
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
  record->set_resumed_from(resume_from == kResumeFromLatest ? "" : resume_from);
  record->set_failed_rank(-1);

  // The attempt's folder and secret first (kept beside the attempt, owner-only, so that a
  // restarted trainerd still knows it): without them nothing may start.
  const std::string attempt_dir = AttemptDir(options_->data_root, job.id(), a.number);
  std::error_code ec;
  fs::create_directories(attempt_dir, ec);
  absl::Status launched =
      ec ? absl::InternalError(absl::StrCat("cannot create ", attempt_dir, ": ", ec.message()))
         : WriteFileAtomically(absl::StrCat(attempt_dir, "/", kAttemptSecretFile), a.secret + "\n", 0600);
  absl::StatusOr<int> port = PickFreePort();
  if (launched.ok()) launched = port.status();
  if (launched.ok()) {
    plan.master_port = *port;
    absl::StatusOr<StartedRanks> started = launcher_->Start(PlanRankStarts(job, plan, *options_));
    launched = started.status();
    for (size_t k = 0; started.ok() && k < a.ranks.size(); ++k) a.ranks[k].pid = started->pids[k];
    if (started.ok()) {
      record->set_cluster_job_id(started->cluster_job_id);
      a.queued = !started->cluster_job_id.empty();  // a cluster's job starts in its queue
    }
  }
  for (const RunningRank& r : a.ranks) {
    record->add_rank_pids(r.pid);
    record->add_rank_nodes(r.node);
    record->add_rank_gpus(absl::StrJoin(r.gpus, ","));
  }
  record->set_pid(a.ranks[0].pid);
  if (!launched.ok()) {
    record->set_ended_unix_ms(NowMs());
    record->set_reason(absl::StrCat("cannot start the workers: ", launched.message()));
    job.set_error(record->reason());
    MoveJob(registry_, job, trainer::v1::FAILED);
    return;
  }
  spdlog::info("job={} attempt {} started: {} rank(s), {} {}", job.id(), a.number, a.ranks.size(),
               record->cluster_job_id().empty() ? absl::StrCat("rank 0 pid ", a.ranks[0].pid)
                                                : "Slurm job " + record->cluster_job_id(),
               resume_from.empty()                ? ""
               : resume_from == kResumeFromLatest ? "resuming from its latest checkpoint"
                                                  : "resuming from " + resume_from);
  // A gang in the cluster's queue is STARTING until the cluster runs it (OnClusterState).
  const bool queued = a.queued;
  state_->running[job.id()] = std::move(a);
  if (queued) {
    registry_->Put(job);
  } else {
    MoveJob(registry_, job, trainer::v1::RUNNING);
  }
}

}  // namespace trainerd
