// Launcher: where the ranks of an attempt run. The supervisor decides what runs (which
// job, how many ranks, on which node, with which arguments and environment); a launcher
// starts those ranks, signals them and reports how they ended. trainerd's own machine
// (LocalLauncher) and `trainerd agent` machines (AgentLauncher) are two launchers; a
// cluster scheduler is added as a third without touching the supervisor.
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
};

// Something that happened to a rank, reported by TakeEvents.
struct RankEvent {
  enum class Kind {
    kStarted,  // `pid` is known now (for ranks whose pid Start could not return)
    kEnded,    // the rank ended as `exit` says
  };
  Kind kind = Kind::kEnded;
  RankId id;
  pid_t pid = 0;
  ExitInfo exit;
  // Set when the launcher knows more than the exit status ("could not start: ...",
  // "agent m1 lost: ..."), for the attempt's record.
  std::string reason;
  // The rank's machine went away: not the job's fault, so its restart is not counted.
  bool node_lost = false;
  // The machine it ran on, when the launcher knows it (for the attempt's record).
  std::string where;
};

class Launcher {
 public:
  virtual ~Launcher() = default;

  // The machines ranks can run on now, with all their slots (used or not).
  virtual std::vector<NodeSlots> Nodes() = 0;
  // The address ranks on `node` are reached at by ranks elsewhere (MASTER_ADDR).
  virtual std::string NodeAddress(const std::string& node) = 0;
  // Starts `ranks` (each on a node of this launcher). Returns each rank's pid, or 0 where
  // the launcher learns it later (a kStarted event). On error none of them is left
  // running: a gang starts whole or not at all.
  virtual absl::StatusOr<std::vector<pid_t>> Start(const std::vector<RankStart>& ranks) = 0;
  // Sends `signal` to every rank of the attempt that still runs.
  virtual void Signal(const std::string& job_id, int32_t attempt, int signal) = 0;
  // Follows a rank that a previous trainerd started (`pid` on `node`, its command line
  // mentioning `marker`). False when it no longer runs or cannot be followed.
  virtual bool Adopt(const RankId& id, const std::string& node, pid_t pid, const std::string& marker) = 0;
  // What happened since the last call, oldest first. `*nodes_changed` is set when
  // machines came or went (the free slots changed).
  virtual std::vector<RankEvent> TakeEvents(bool* nodes_changed) = 0;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_LAUNCH_LAUNCHER_H_
