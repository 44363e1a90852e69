// SlurmLauncher: each attempt's gang is one Slurm batch job (slurm_batch_script.h),
// submitted with sbatch, followed with squeue and stopped with scancel, through Slurm's
// command line only (no slurmdbd, no agents on the nodes; SLURM_CONF is honoured). The ranks
// write to the job's folder on the shared file system as local ones do. Its one node,
// "slurm", offers the partition's CPUs and the GPUs of its largest node: Slurm, not
// trainerd, places the ranks.
//
// Threads: any; mu_ guards the jobs it follows. Slurm's commands run with mu_ held: they
// are quick, and the supervisor calls one at a time anyway.
#ifndef TRAINERD_SERVER_LAUNCH_SLURM_LAUNCHER_H_
#define TRAINERD_SERVER_LAUNCH_SLURM_LAUNCHER_H_

#include <chrono>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/launch/launcher.h"
#include "server/launch/slurm_batch_script.h"

namespace trainerd {

struct SlurmLauncherOptions {
  std::string partition;                // --slurm-partition
  std::string account;                  // --slurm-account
  std::vector<std::string> extra_args;  // --slurm-extra-args, split on spaces
  int32_t cpus_per_rank = 1;
  double grace_period_s = 30;           // trainerd's --grace-period: the ranks' time to save
  double poll_interval_s = 1;           // how often squeue is asked
};

class SlurmLauncher final : public Launcher {
 public:
  explicit SlurmLauncher(SlurmLauncherOptions options);

  std::vector<NodeSlots> Nodes() override;
  std::string NodeAddress(const std::string& node) override;
  absl::StatusOr<StartedRanks> Start(const std::vector<RankStart>& ranks) override;
  void Signal(const std::string& job_id, int32_t attempt, int signal) override;
  // Follows the attempt's Slurm job again by its id (queued, running or ended while
  // trainerd was down: its ranks' exit files tell how). An attempt recorded without an
  // id (trainerd stopped between sbatch and its record) has its Slurm job cancelled by
  // name, and restarts from its checkpoint.
  bool Adopt(const RecordedRank& rank) override;
  std::vector<RankEvent> TakeEvents(bool* nodes_changed) override;

 private:
  using Clock = std::chrono::steady_clock;
  using JobKey = std::pair<std::string, int32_t>;  // (job, attempt)
  struct SlurmJob {
    std::string slurm_id;
    std::string dir;  // the attempt's folder
    int32_t ranks = 0;
    std::string state;     // as last reported ("PENDING (Resources)")
    int32_t restarts = 0;  // Slurm's count of requeues (preemptions)
  };

  // Asks Slurm for the jobs followed (one squeue call for all of them), reports their
  // state changes, and their rank events once they ended.
  void PollJobs(std::vector<RankEvent>* events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The rank events of a job that ended in Slurm `state` (for `reason`).
  static void ReportEnd(const JobKey& key, const SlurmJob& job, const std::string& state, const std::string& reason,
                        std::vector<RankEvent>* events);
  // Cancels an attempt's Slurm job by its name and waits (at most a minute) until it is gone.
  static void CancelByName(const RankId& id);

  const SlurmLauncherOptions options_;
  absl::Mutex mu_;
  std::map<JobKey, SlurmJob> jobs_ ABSL_GUARDED_BY(mu_);
  std::vector<NodeSlots> nodes_ ABSL_GUARDED_BY(mu_);
  Clock::time_point nodes_read_ ABSL_GUARDED_BY(mu_);
  Clock::time_point last_poll_ ABSL_GUARDED_BY(mu_);
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_LAUNCH_SLURM_LAUNCHER_H_
