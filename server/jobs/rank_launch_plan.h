// The command line and environment of each rank of a new attempt: the spec, the resume
// point, the heartbeat file, the torchrun variables (RANK, WORLD_SIZE, MASTER_ADDR...),
// the rank's GPUs, the spec policy and the resource limits. Pure logic.
#ifndef TRAINERD_SERVER_JOBS_RANK_LAUNCH_PLAN_H_
#define TRAINERD_SERVER_JOBS_RANK_LAUNCH_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "server/jobs/job_options.h"
#include "server/launch/launcher.h"
#include "trainer/v1/job_service.pb.h"

namespace trainerd {

struct AttemptLaunchPlan {
  int32_t attempt = 0;
  std::string resume_from;               // "" none, "true" the latest checkpoint, or a folder
  std::vector<std::string> nodes;        // each rank's
  std::vector<std::vector<int32_t>> gpus;  // each rank's GPU indices on its node
  std::string worker_address;            // trainerd's WorkerService
  std::string secret;                    // the attempt's WorkerService credential
  std::string master_addr;               // rank 0's machine, where the rendezvous store runs
  int master_port = 0;
};

// What starts each rank of `plan` for `job`.
std::vector<RankStart> PlanRankStarts(const trainer::v1::Job& job, const AttemptLaunchPlan& plan,
                                      const JobOptions& options);

// The RLIMIT_AS every CPU rank runs under, from --max-job-memory (0: none).
int64_t WorkerAddressSpaceLimit(const JobOptions& options);

}  // namespace trainerd

#endif  // TRAINERD_SERVER_JOBS_RANK_LAUNCH_PLAN_H_
