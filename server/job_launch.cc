// JobManager: placing queued jobs and starting their attempts' ranks.
#include <signal.h>

#include <filesystem>
#include <limits>
#include <random>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/atomic_file.h"
#include "protocol/job_layout.h"
#include "protocol/worker_environment.h"
#include "server/job_manager.h"
#include "server/scheduler.h"

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

std::string NewSecret() {
  std::random_device rd;
  std::string out;
  for (int i = 0; i < 4; ++i) out += absl::StrCat(absl::Hex(rd(), absl::kZeroPad8));
  return out;
}

}  // namespace

void JobManager::Schedule() {
  if (!schedule_needed_) return;
  std::vector<NodeSlots> nodes = FreeSlotsByNode();
  NodeSlots total;
  for (const NodeSlots& n : nodes) {
    total.cpu_slots += n.cpu_slots;
    total.gpus += n.gpus;
  }
  if (total.cpu_slots <= 0) return;  // nothing can start until a slot frees
  schedule_needed_ = false;
  auto queued = store_->JobsInStates({trainer::v1::QUEUED, trainer::v1::RESTARTING});
  if (!queued.ok() || queued->empty()) return;
  std::vector<QueuedJob> queue;
  std::map<std::string, Job> by_id;
  for (Job& job : *queued) {
    if (running_.count(job.id())) continue;
    queue.push_back({job.id(), job.priority(), job.created_unix_ms(), job.resources().ranks(),
                     job.resources().ranks() * job.resources().gpus_per_rank()});
    by_id[job.id()] = std::move(job);
  }
  for (const std::string& id : PickJobsToStart(queue, {total.cpu_slots, total.gpus})) {
    Job& job = by_id[id];
    std::optional<std::vector<std::string>> placement =
        PlaceRanks(std::max(1, job.resources().ranks()), job.resources().gpus_per_rank(), &nodes);
    if (!placement) {
      // Enough slots in all, but not where the GPUs are: try again when something frees.
      schedule_needed_ = true;
      continue;
    }
    std::string resume;
    auto it = resume_requests_.find(id);
    if (it != resume_requests_.end()) {
      resume = it->second;
      resume_requests_.erase(it);
    } else if (HasCheckpoint(job.output_dir())) {
      resume = "true";
    }
    StartAttempt(job, resume, *placement);
  }
}

int64_t JobManager::WorkerAddressSpaceLimit() const {
  const int64_t memory = options_.spec_policy.limits.max_job_memory_bytes;
  if (memory <= 0) return 0;
  // Address space, not resident memory: LibTorch and its ~290 libraries map about 1.2 GB
  // before training starts, and glibc reserves an arena of up to 64 MB per thread. Twice
  // the job's memory plus that room still stops a job that grows far past its estimate.
  const int64_t room = (int64_t{2} << 30) + options_.threads_per_slot * (int64_t{128} << 20);
  return memory > (std::numeric_limits<int64_t>::max() - room) / 2 ? 0 : 2 * memory + room;
}

void JobManager::StartAttempt(Job& job, const std::string& resume_from, const std::vector<std::string>& nodes) {
  if (absl::Status s = Transition(job, trainer::v1::STARTING); !s.ok()) {
    spdlog::error("{}", std::string(s.message()));
    return;
  }
  if (absl::Status s = CheckWorkerProgram(job); !s.ok()) {
    // Not the job's fault to retry: the program it named is gone or replaced.
    spdlog::error("job={} {}", job.id(), std::string(s.message()));
    job.set_error(std::string(s.message()));
    MoveTo(job, trainer::v1::FAILED);
    schedule_needed_ = true;  // its slots stayed free for the next job
    return;
  }
  const std::string dir = JobDir(job.id());
  Running r = AttemptFiles(job, job.attempts_size() + 1);
  const std::string attempt_dir = absl::StrCat(dir, "/", AttemptDirName(r.attempt));
  std::error_code ec;
  fs::create_directories(attempt_dir, ec);
  r.started_ms = NowMs();

  WorkerLaunch launch;
  launch.program = job.worker_program().empty() ? options_.worker_program : job.worker_program();
  launch.args = {"--spec", absl::StrCat(dir, "/", kSpecFile)};
  if (job.spec().training_args().torch_num_threads() == 0) {
    // A rank uses its slot's share of the CPUs, not all of them.
    launch.args.push_back("--set");
    launch.args.push_back(absl::StrCat("training_args.torch_num_threads=", options_.threads_per_slot));
  }
  if (!resume_from.empty()) {
    launch.args.push_back("--resume-from-checkpoint");
    launch.args.push_back(resume_from);
  }
  launch.working_dir = attempt_dir;
  // CUDA maps tens of GB of address space for itself: GPU ranks run without RLIMIT_AS.
  if (job.resources().gpus_per_rank() == 0) launch.address_space_limit_bytes = WorkerAddressSpaceLimit();
  // A worker needs a few dozen threads (its own, OpenMP's, gRPC's): 4096 more than the
  // user runs now leaves every job room and stops a runaway fork or thread loop.
  launch.process_limit = ProcessLimitWithRoom(4096);
  r.secret = NewSecret();
  // Kept beside the attempt (owner-only) so that a restarted trainerd still knows it.
  const absl::Status secret_written =
      WriteFileAtomically(absl::StrCat(attempt_dir, "/", kAttemptSecretFile), r.secret + "\n", 0600);
  auto* attempt = job.add_attempts();
  attempt->set_number(r.attempt);
  attempt->set_started_unix_ms(r.started_ms);
  attempt->set_resumed_from(resume_from == "true" ? "latest checkpoint" : resume_from);
  attempt->set_failed_rank(-1);

  // The torchrun variables: rank 0 hosts the rendezvous store on a port picked here.
  absl::StatusOr<int> port = PickFreePort();
  const std::string store_host = NodeAddress(nodes[0]);
  std::map<std::string, int32_t> ranks_on_node;
  for (const std::string& node : nodes) ++ranks_on_node[node];
  std::map<std::string, int32_t> next_local_rank;
  // The attempt's folder and secret first: without them nothing may start.
  absl::Status launched = ec ? absl::InternalError(absl::StrCat("cannot create ", attempt_dir, ": ", ec.message()))
                             : secret_written;
  if (launched.ok()) launched = port.status();
  for (size_t k = 0; k < r.ranks.size() && launched.ok(); ++k) {
    RankProc& p = r.ranks[k];
    p.node = nodes[k];
    WorkerLaunch rank_launch = launch;
    rank_launch.args.push_back("--heartbeat-file");
    rank_launch.args.push_back(p.heartbeat_path);
    rank_launch.log_path = p.log_path;
    rank_launch.env = {{kEnvJobId, job.id()}, {kEnvAttempt, std::to_string(r.attempt)},
                       {kEnvAddress, worker_address_}, {kEnvWorkerSecret, r.secret},
                       {kEnvRank, std::to_string(k)}, {kEnvLocalRank, std::to_string(next_local_rank[p.node]++)},
                       {kEnvWorldSize, std::to_string(r.ranks.size())},
                       {kEnvLocalWorldSize, std::to_string(ranks_on_node[p.node])},
                       {kEnvMasterAddr, store_host}, {kEnvMasterPort, std::to_string(*port)}};
    // A rank sees only its own GPUs (none for a CPU rank, which then trains on the CPU).
    p.gpus = FreeGpus(p.node, job.resources().gpus_per_rank(), r);
    rank_launch.env["CUDA_VISIBLE_DEVICES"] = absl::StrJoin(p.gpus, ",");
    // The worker checks the spec again against the same policy when it starts.
    rank_launch.env.merge(SpecPolicyToEnvironment(options_.spec_policy));
    if (!options_.worker_tls_ca.empty()) rank_launch.env[kEnvTlsCa] = options_.worker_tls_ca;
    launched = LaunchRank(job.id(), r, p, rank_launch);
  }
  for (const RankProc& p : r.ranks) {
    attempt->add_rank_pids(p.pid);
    attempt->add_rank_nodes(p.node);
    attempt->add_rank_gpus(absl::StrJoin(p.gpus, ","));
  }
  attempt->set_pid(r.ranks[0].pid);
  if (!launched.ok()) {
    SignalRanks(r, SIGKILL);  // a gang starts whole or not at all
    attempt->set_ended_unix_ms(NowMs());
    attempt->set_reason(absl::StrCat("cannot start the workers: ", launched.message()));
    job.set_error(attempt->reason());
    MoveTo(job, trainer::v1::FAILED);
    return;
  }
  spdlog::info("job={} attempt {} started: {} rank(s), rank 0 pid {} {}", job.id(), r.attempt, r.ranks.size(),
               r.ranks[0].pid, resume_from.empty() ? "" : "resuming from " + attempt->resumed_from());
  running_[job.id()] = std::move(r);
  MoveTo(job, trainer::v1::RUNNING);
}

absl::Status JobManager::LaunchRank(const std::string& job_id, Running& r, RankProc& p, const WorkerLaunch& launch) {
  if (!p.node.empty()) return StartRemoteRank(job_id, r, p, launch);
  absl::StatusOr<pid_t> pid = SpawnWorker(launch);
  if (!pid.ok()) return pid.status();
  p.pid = *pid;
  return absl::OkStatus();
}

}  // namespace trainerd
