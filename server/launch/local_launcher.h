// LocalLauncher: ranks as child processes of trainerd on its own machine (node "").
// Ranks a previous trainerd started are followed through /proc (their exit status is
// lost with the process that could wait for them).
#ifndef TRAINERD_SERVER_LAUNCH_LOCAL_LAUNCHER_H_
#define TRAINERD_SERVER_LAUNCH_LOCAL_LAUNCHER_H_

#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/launch/launcher.h"

namespace trainerd {

class LocalLauncher final : public Launcher {
 public:
  // This machine offers `cpu_slots` and `gpus`; other machines reach it at `host`.
  LocalLauncher(int32_t cpu_slots, int32_t gpus, std::string host);

  std::vector<NodeSlots> Nodes() override;
  std::string NodeAddress(const std::string& node) override;
  absl::StatusOr<StartedRanks> Start(const std::vector<RankStart>& ranks) override;
  void Signal(const std::string& job_id, int32_t attempt, int signal) override;
  bool Adopt(const RecordedRank& rank) override;
  std::vector<RankEvent> TakeEvents(bool* nodes_changed) override;

 private:
  struct Process {
    pid_t pid = 0;
    bool child = true;   // false: adopted, watched through /proc
    std::string marker;  // for adopted ones: guards against a reused pid
    int64_t oom_kills_at_start = -1;  // OomKillCount() when it started
  };

  const int32_t cpu_slots_, gpus_;
  const std::string host_;
  absl::Mutex mu_;
  std::map<RankId, Process> ranks_ ABSL_GUARDED_BY(mu_);  // the ones that still run
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_LAUNCH_LOCAL_LAUNCHER_H_
