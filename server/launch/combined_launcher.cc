#include "server/launch/combined_launcher.h"

#include <signal.h>

#include <map>

#include "absl/strings/str_cat.h"

namespace trainerd {

Launcher* CombinedLauncher::OwnerOf(const std::string& node) const {
  for (Launcher* launcher : launchers_) {
    for (const NodeSlots& n : launcher->Nodes()) {
      if (n.node == node) return launcher;
    }
  }
  return nullptr;
}

std::vector<NodeSlots> CombinedLauncher::Nodes() {
  std::vector<NodeSlots> out;
  for (Launcher* launcher : launchers_) {
    for (NodeSlots& n : launcher->Nodes()) out.push_back(std::move(n));
  }
  return out;
}

std::string CombinedLauncher::NodeAddress(const std::string& node) {
  Launcher* owner = OwnerOf(node);
  return owner == nullptr ? "" : owner->NodeAddress(node);
}

absl::StatusOr<std::vector<pid_t>> CombinedLauncher::Start(const std::vector<RankStart>& ranks) {
  // Each launcher starts its share; the ranks keep their order in the answer.
  std::map<Launcher*, std::vector<size_t>> shares;
  for (size_t k = 0; k < ranks.size(); ++k) {
    Launcher* owner = OwnerOf(ranks[k].node);
    if (owner == nullptr) return absl::UnavailableError(absl::StrCat("node ", ranks[k].node, " is gone"));
    shares[owner].push_back(k);
  }
  std::vector<pid_t> pids(ranks.size(), 0);
  std::vector<Launcher*> started;
  for (const auto& [launcher, indices] : shares) {
    std::vector<RankStart> share;
    for (size_t k : indices) share.push_back(ranks[k]);
    absl::StatusOr<std::vector<pid_t>> share_pids = launcher->Start(share);
    if (!share_pids.ok()) {
      const RankId& any = ranks.front().id;
      for (Launcher* other : started) other->Signal(any.job_id, any.attempt, SIGKILL);
      return share_pids.status();
    }
    for (size_t i = 0; i < indices.size(); ++i) pids[indices[i]] = (*share_pids)[i];
    started.push_back(launcher);
  }
  return pids;
}

void CombinedLauncher::Signal(const std::string& job_id, int32_t attempt, int signal) {
  for (Launcher* launcher : launchers_) launcher->Signal(job_id, attempt, signal);
}

bool CombinedLauncher::Adopt(const RankId& id, const std::string& node, pid_t pid, const std::string& marker) {
  Launcher* owner = OwnerOf(node);
  return owner != nullptr && owner->Adopt(id, node, pid, marker);
}

std::vector<RankEvent> CombinedLauncher::TakeEvents(bool* nodes_changed) {
  std::vector<RankEvent> out;
  for (Launcher* launcher : launchers_) {
    for (RankEvent& e : launcher->TakeEvents(nodes_changed)) out.push_back(std::move(e));
  }
  return out;
}

}  // namespace trainerd
