#include "server/launch/local_launcher.h"

#include <signal.h>

#include <algorithm>
#include <utility>

namespace trainerd {

LocalLauncher::LocalLauncher(int32_t cpu_slots, int32_t gpus, std::string host)
    : cpu_slots_(cpu_slots), gpus_(gpus), host_(std::move(host)) {}

std::vector<NodeSlots> LocalLauncher::Nodes() { return {NodeSlots{"", cpu_slots_, gpus_}}; }

std::string LocalLauncher::NodeAddress(const std::string& /*node*/) { return host_; }

absl::StatusOr<StartedRanks> LocalLauncher::Start(const std::vector<RankStart>& ranks) {
  absl::MutexLock lock(&mu_);
  StartedRanks started;
  std::vector<pid_t>& pids = started.pids;
  for (const RankStart& start : ranks) {
    absl::StatusOr<pid_t> pid = SpawnWorker(start.launch);
    if (!pid.ok()) {
      for (size_t k = 0; k < pids.size(); ++k) SignalWorker(pids[k], SIGKILL);  // reaped by TakeEvents
      return pid.status();
    }
    pids.push_back(*pid);
    ranks_[start.id] = Process{*pid, true, "", OomKillCount()};
  }
  return started;
}

void LocalLauncher::Signal(const std::string& job_id, int32_t attempt, int signal) {
  absl::MutexLock lock(&mu_);
  for (auto it = ranks_.lower_bound(RankId{job_id, attempt, 0});
       it != ranks_.end() && it->first.job_id == job_id && it->first.attempt == attempt; ++it) {
    SignalWorker(it->second.pid, signal);
  }
}

bool LocalLauncher::Adopt(const RecordedRank& rank) {
  if (!WorkerAlive(rank.pid, rank.marker)) return false;
  absl::MutexLock lock(&mu_);
  ranks_[rank.id] = Process{rank.pid, false, rank.marker};
  return true;
}

std::vector<RankEvent> LocalLauncher::TakeEvents(bool* /*nodes_changed*/) {
  absl::MutexLock lock(&mu_);
  std::vector<RankEvent> events;
  for (auto it = ranks_.begin(); it != ranks_.end();) {
    RankEvent ended;
    ended.id = it->first;
    if (it->second.child) {
      std::optional<ExitInfo> exit = ReapWorker(it->second.pid);
      if (!exit) {
        ++it;
        continue;
      }
      ended.exit = *exit;
      // The kernel's OOM killer sends SIGKILL: name it only when it ran meanwhile.
      const int64_t at_start = it->second.oom_kills_at_start;
      ended.exit.oom_killed = exit->signal == SIGKILL && at_start >= 0 && OomKillCount() > at_start;
    } else {
      if (WorkerAlive(it->second.pid, it->second.marker)) {
        ++it;
        continue;
      }
      ended.exit.status_unknown = true;
    }
    events.push_back(std::move(ended));
    it = ranks_.erase(it);
  }
  // Ranks of one gang that ended within one poll: the one a signal killed goes first. A
  // rank whose peer died exits with an error from its broken collective a moment later,
  // and the supervisor blames the first failure it is told of.
  std::stable_sort(events.begin(), events.end(), [](const RankEvent& a, const RankEvent& b) {
    return a.exit.signal != 0 && b.exit.signal == 0;
  });
  return events;
}

}  // namespace trainerd
