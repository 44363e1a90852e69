// CombinedLauncher: several launchers as one, each rank going to the launcher whose
// node it is placed on (trainerd's own machine and its agents today). A gang may span
// them; it still starts whole or not at all.
#ifndef TRAINERD_SERVER_LAUNCH_COMBINED_LAUNCHER_H_
#define TRAINERD_SERVER_LAUNCH_COMBINED_LAUNCHER_H_

#include <vector>

#include "server/launch/launcher.h"

namespace trainerd {

class CombinedLauncher final : public Launcher {
 public:
  // The launchers outlive this object; their node names must not overlap.
  explicit CombinedLauncher(std::vector<Launcher*> launchers) : launchers_(std::move(launchers)) {}

  std::vector<NodeSlots> Nodes() override;
  std::string NodeAddress(const std::string& node) override;
  absl::StatusOr<std::vector<pid_t>> Start(const std::vector<RankStart>& ranks) override;
  void Signal(const std::string& job_id, int32_t attempt, int signal) override;
  bool Adopt(const RankId& id, const std::string& node, pid_t pid, const std::string& marker) override;
  std::vector<RankEvent> TakeEvents(bool* nodes_changed) override;

 private:
  // The launcher that offers `node`, or null when none does (any more).
  Launcher* OwnerOf(const std::string& node) const;

  const std::vector<Launcher*> launchers_;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_LAUNCH_COMBINED_LAUNCHER_H_
