#include "server/jobs/rank_launch_plan.h"

#include <limits>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "protocol/job_layout.h"
#include "protocol/worker_environment.h"
#include "spec/spec_policy.h"
#include "spec/user_files.h"

namespace trainerd {

int64_t WorkerAddressSpaceLimit(const JobOptions& options) {
  const int64_t memory = options.spec_policy.limits.max_job_memory_bytes;
  if (memory <= 0) return 0;
  // Address space, not resident memory: LibTorch and its ~290 libraries map about 1.2 GB
  // before training starts, and glibc reserves an arena of up to 64 MB per thread. Twice
  // the job's memory plus that room still stops a job that grows far past its estimate.
  const int64_t room = (int64_t{2} << 30) + options.threads_per_slot * (int64_t{128} << 20);
  return memory > (std::numeric_limits<int64_t>::max() - room) / 2 ? 0 : 2 * memory + room;
}

std::vector<RankStart> PlanRankStarts(const trainer::v1::Job& job, const AttemptLaunchPlan& plan,
                                      const JobOptions& options) {
  const std::string dir = JobDir(options.data_root, job.id());
  const std::string attempt_dir = AttemptDir(options.data_root, job.id(), plan.attempt);
  WorkerLaunch common;
  common.program = job.worker_program().empty() ? options.worker_program : job.worker_program();
  common.command.spec_path = absl::StrCat(dir, "/", kSpecFile);
  if (job.spec().training_args().torch_num_threads() == 0) {
    // A rank uses its slot's share of the CPUs, not all of them.
    common.command.overrides.push_back(absl::StrCat("training_args.torch_num_threads=", options.threads_per_slot));
  }
  common.command.resume_from = plan.resume_from;
  common.command.stop_at_step = job.stop_at_step();
  common.working_dir = attempt_dir;
  // CUDA maps tens of GB of address space for itself: GPU ranks run without RLIMIT_AS.
  if (job.resources().gpus_per_rank() == 0) common.address_space_limit_bytes = WorkerAddressSpaceLimit(options);
  // A worker needs a few dozen threads (its own, OpenMP's, gRPC's): 4096 more than the
  // user runs now leaves every job room and stops a runaway fork or thread loop.
  common.process_limit = ProcessLimitWithRoom(4096);
  // The worker checks the spec again against the same policy when it starts.
  SpecPolicy policy = options.spec_policy;
  policy.user_file_dirs = UserFileDirsOf(job.spec(), options.data_root);
  common.env = SpecPolicyToEnvironment(policy);
  if (!options.worker_tls_ca.empty()) common.env[kEnvTlsCa] = options.worker_tls_ca;
  common.env[kEnvJobId] = job.id();
  common.env[kEnvAttempt] = std::to_string(plan.attempt);
  common.env[kEnvAddress] = plan.worker_address;
  common.env[kEnvWorkerSecret] = plan.secret;
  common.env[kEnvWorldSize] = std::to_string(plan.nodes.size());
  common.env[kEnvMasterAddr] = plan.master_addr;
  common.env[kEnvMasterPort] = std::to_string(plan.master_port);

  std::map<std::string, int32_t> ranks_on_node, next_local_rank;
  for (const std::string& node : plan.nodes) ++ranks_on_node[node];
  std::vector<RankStart> starts;
  for (size_t k = 0; k < plan.nodes.size(); ++k) {
    RankStart start;
    start.id = RankId{job.id(), plan.attempt, static_cast<int32_t>(k)};
    start.node = plan.nodes[k];
    start.gpus_per_rank = job.resources().gpus_per_rank();
    start.time_limit_s = job.resources().time_limit_s();
    start.launch = common;
    start.launch.command.heartbeat_file = absl::StrCat(attempt_dir, "/", HeartbeatName(static_cast<int32_t>(k)));
    start.launch.log_path = absl::StrCat(attempt_dir, "/", RankLogName(static_cast<int32_t>(k)));
    start.launch.env[kEnvRank] = std::to_string(k);
    start.launch.env[kEnvLocalRank] = std::to_string(next_local_rank[start.node]++);
    start.launch.env[kEnvLocalWorldSize] = std::to_string(ranks_on_node[start.node]);
    // A rank sees only its own GPUs (none for a CPU rank, which then trains on the CPU).
    start.launch.env["CUDA_VISIBLE_DEVICES"] = k < plan.gpus.size() ? absl::StrJoin(plan.gpus[k], ",") : "";
    starts.push_back(std::move(start));
  }
  return starts;
}

}  // namespace trainerd
