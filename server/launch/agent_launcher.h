// AgentLauncher: ranks on other machines, each run by a `trainerd agent` (NodeAgent)
// that registered with this trainerd; the node is named by the agent's id. Agents are
// driven by their polls: starts and signals for an agent's ranks wait in its queue until
// it polls, and its reports of started and ended ranks come back with the next poll.
// An agent that stops polling is lost, and its ranks with it.
//
// Ranks on agents read the job's files (spec, checkpoints, logs) at the same paths as
// trainerd: the data root must be on a file system every machine shares.
#ifndef TRAINERD_SERVER_LAUNCH_AGENT_LAUNCHER_H_
#define TRAINERD_SERVER_LAUNCH_AGENT_LAUNCHER_H_

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/launch/launcher.h"
#include "trainer/v1/job_service.pb.h"

namespace trainerd {

struct AgentLauncherOptions {
  double poll_interval_s = 0.5;  // told to agents
  double timeout_s = 10;         // silence after which an agent is lost
  std::string token;             // agents must present it; empty: the service is off
};

class AgentLauncher final : public Launcher {
 public:
  explicit AgentLauncher(AgentLauncherOptions options);

  std::vector<NodeSlots> Nodes() override;
  std::string NodeAddress(const std::string& node) override;
  absl::StatusOr<std::vector<pid_t>> Start(const std::vector<RankStart>& ranks) override;
  void Signal(const std::string& job_id, int32_t attempt, int signal) override;
  // Ranks on agents die when their agent learns that trainerd restarted: never adopted.
  bool Adopt(const RankId& id, const std::string& node, pid_t pid, const std::string& marker) override;
  std::vector<RankEvent> TakeEvents(bool* nodes_changed) override;

  // The AgentService calls, authenticated by the agent token.
  absl::StatusOr<trainer::v1::RegisterAgentResponse> Register(const std::string& token,
                                                              const trainer::v1::RegisterAgentRequest& request);
  absl::StatusOr<trainer::v1::AgentPollResponse> Poll(const std::string& token,
                                                      const trainer::v1::AgentPollRequest& request);

 private:
  using Clock = std::chrono::steady_clock;
  struct Agent {
    std::string name, host;
    int32_t cpu_slots = 0, gpus = 0;
    Clock::time_point last_poll;
    std::vector<trainer::v1::StartRank> to_start;
    std::vector<trainer::v1::SignalRank> to_signal;
  };

  absl::Status CheckToken(const std::string& token) const;
  // Declares agents that stopped polling lost: their ranks end as killed.
  void DropSilentAgents() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const AgentLauncherOptions options_;
  absl::Mutex mu_;
  std::map<std::string, Agent> agents_ ABSL_GUARDED_BY(mu_);
  std::map<RankId, std::string> rank_agents_ ABSL_GUARDED_BY(mu_);  // running ranks -> agent id
  std::vector<RankEvent> events_ ABSL_GUARDED_BY(mu_);
  bool nodes_changed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_LAUNCH_AGENT_LAUNCHER_H_
