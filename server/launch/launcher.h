// Launcher: where the ranks of an attempt run. The supervisor decides what runs (which
// job, how many ranks, on which node, with which arguments and environment); a launcher
// starts those ranks, signals them and reports how they ended. trainerd's own machine
// (LocalLauncher) and a Slurm cluster (SlurmLauncher) are the two launchers; another
// cluster scheduler (Kubernetes) would be a third, without touching the supervisor.
//
// Threads: every method may be called from any thread; implementations guard their own
// state. The supervisor calls them with its lock held, so a launcher never calls back.
#ifndef TRAINERD_SERVER_LAUNCH_LAUNCHER_H_
#define TRAINERD_SERVER_LAUNCH_LAUNCHER_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "server/launch/node_slots.h"
#include "server/launch/worker_process.h"

namespace trainerd {

// One rank of one attempt of a job.
struct RankId {
  std::string job_id;
  int32_t attempt = 0;
  int32_t rank = 0;
  bool operator<(const RankId& o) const {
    return std::tie(job_id, attempt, rank) < std::tie(o.job_id, o.attempt, o.rank);
  }
  bool operator==(const RankId& o) const {
    return job_id == o.job_id && attempt == o.attempt && rank == o.rank;
  }
};

// A rank to start: on `node` (one of Nodes()), as `launch` says.
struct RankStart {
  RankId id;
  std::string node;
  WorkerLaunch launch;
  // The job's resources.gpus_per_rank: a cluster launcher asks the cluster for them (the
  // local one is given the GPUs in CUDA_VISIBLE_DEVICES).
  int32_t gpus_per_rank = 0;
  // The job's resources.time_limit_s (0: none). The supervisor enforces it; a cluster
  // launcher hands it to the cluster as well, which enforces it while trainerd is down.
  int64_t time_limit_s = 0;
};

// What Start returns.
struct StartedRanks {
  std::vector<pid_t> pids;     // each rank's, or 0 where a kStarted event tells it later
  std::string cluster_job_id;  // the cluster's id for the gang (Slurm's job id); "" locally
};

// A rank that a previous trainerd started, as its attempt's record has it.
struct RecordedRank {
  RankId id;
  std::string node;
  pid_t pid = 0;
  std::string marker;          // in its command line: guards against a reused pid
  std::string working_dir;     // the attempt's folder
  std::string cluster_job_id;  // StartedRanks::cluster_job_id
};

// Something that happened to a rank, reported by TakeEvents.
struct RankEvent {
  enum class Kind {
    kStarted,  // `pid` is known now (for ranks whose pid Start could not return)
    kEnded,    // the rank ended as `exit` says
    // The gang's state in the cluster's queue changed (reported for rank 0): `reason`
    // says it ("PENDING (Resources)", "RUNNING on n[1-3]"); `queued` while it waits
    // there; `preempted` when the cluster preempted it (its ranks saved a checkpoint and
    // exited) and queued it again: it resumes from that checkpoint when it runs again.
    kClusterState,
  };
  Kind kind = Kind::kEnded;
  RankId id;
  pid_t pid = 0;
  ExitInfo exit;
  // Set when the launcher knows more than the exit status ("could not start: ...",
  // "rank 1: Slurm job 12 ended NODE_FAIL"), for the attempt's record.
  std::string reason;
  // The rank's machine went away: not the job's fault, so its restart is not counted.
  bool node_lost = false;
  // The cluster ended it at the job's time limit (Slurm's TIMEOUT).
  bool time_limit = false;
  // The machine it ran on, when the launcher knows it (for the attempt's record).
  std::string where;
  bool queued = false;     // kClusterState
  bool preempted = false;  // kClusterState
};

class Launcher {
 public:
  virtual ~Launcher() = default;

  // The machines ranks can run on now, with all their slots (used or not).
  virtual std::vector<NodeSlots> Nodes() = 0;
  // The address ranks on `node` are reached at by ranks elsewhere (MASTER_ADDR).
  virtual std::string NodeAddress(const std::string& node) = 0;
  // Starts `ranks` (each on a node of this launcher). On error none of them is left
  // running: a gang starts whole or not at all.
  virtual absl::StatusOr<StartedRanks> Start(const std::vector<RankStart>& ranks) = 0;
  // Sends `signal` to every rank of the attempt that still runs.
  virtual void Signal(const std::string& job_id, int32_t attempt, int signal) = 0;
  // Follows a rank that a previous trainerd started. False when it no longer runs and
  // the launcher cannot tell how it ended; true when its end (past or future) will be
  // reported by TakeEvents.
  virtual bool Adopt(const RecordedRank& rank) = 0;
  // What happened since the last call, oldest first. `*nodes_changed` is set when
  // machines came or went (the free slots changed).
  virtual std::vector<RankEvent> TakeEvents(bool* nodes_changed) = 0;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_LAUNCH_LAUNCHER_H_
