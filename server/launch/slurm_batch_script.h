// The Slurm batch job that runs one attempt's gang: what SlurmLauncher submits. Pure
// logic (the launcher writes the files and runs sbatch).
//
// The batch script asks for one task per rank, one rank per node, with the rank's CPUs
// and GPUs, and starts the tasks with srun. Each task runs the rank script, which picks
// its rank's command line and environment (as PlanRankStarts made them) by
// SLURM_PROCID; MASTER_ADDR is the allocation's first host and LOCAL_RANK/
// LOCAL_WORLD_SIZE come from Slurm, since Slurm, not trainerd, places the ranks. Each
// rank appends to its log and records its exit status in rank<r>.exit beside it: there
// is no slurmdbd to ask.
#ifndef TRAINERD_SERVER_LAUNCH_SLURM_BATCH_SCRIPT_H_
#define TRAINERD_SERVER_LAUNCH_SLURM_BATCH_SCRIPT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "server/launch/launcher.h"

namespace trainerd {

struct SlurmJobOptions {
  std::string partition;                // "" : the cluster's default
  std::string account;                  // "" : the user's default
  std::vector<std::string> extra_args;  // more sbatch options, as given
  int32_t cpus_per_rank = 1;
  int32_t gpus_per_rank = 0;
  // --time, rounded up to whole minutes (0: the partition's limit), and how long before
  // it the ranks get SIGTERM (--signal) to save a checkpoint.
  int64_t time_limit_s = 0;
  int32_t signal_ahead_s = 30;
};

// The Slurm job name of attempt `attempt` of job `job_id` (unique: job ids are).
std::string SlurmJobName(const std::string& job_id, int32_t attempt);

// `text` in single quotes for /bin/sh.
std::string ShellQuote(const std::string& text);

// The file trainerd creates in the attempt's folder before it signals the ranks itself
// (cancel, shutdown), so that the rank script tells its SIGTERM from Slurm's (preemption).
inline constexpr char kSlurmStopRequestedName[] = "stop-requested";

// The file a rank's exit status and node ("137 n2") are written to, in the attempt's folder.
std::string RankExitName(int32_t rank);

// The batch script for `ranks` (one attempt, rank order), which must all share one
// working folder: the attempt's. `rank_script` is the rank script's path.
std::string SlurmBatchScript(const std::vector<RankStart>& ranks, const SlurmJobOptions& options,
                             const std::string& rank_script);
// The rank script: rank SLURM_PROCID's environment and command line.
std::string SlurmRankScript(const std::vector<RankStart>& ranks);

}  // namespace trainerd

#endif  // TRAINERD_SERVER_LAUNCH_SLURM_BATCH_SCRIPT_H_
