// NodeAgent: `trainerd agent --coordinator ADDR`, run on each extra machine of a multi-node
// setup. It registers this machine's slots with the coordinator, then polls it: starts
// the ranks the coordinator placed here, forwards signals to them, and reports when
// they start and end. Ranks die with the agent (they cannot be supervised without it);
// the coordinator notices the silence and restarts their jobs elsewhere.
//
// Threads: Run() does all the work on the caller's thread; Stop() may be called from
// any thread and makes Run() stop every rank and return.
#ifndef TRAINERD_SERVER_LAUNCH_NODE_AGENT_H_
#define TRAINERD_SERVER_LAUNCH_NODE_AGENT_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "trainer/v1/job_service.grpc.pb.h"

namespace trainerd {

struct NodeAgentOptions {
  std::string coordinator;  // host:port of trainerd
  std::string name;         // default: the host name
  std::string host;         // the address other machines reach this one at
  int32_t cpu_slots = 1;
  int32_t gpus = 0;
  std::string token;        // the coordinator's --agent-token, if it has one
  std::string tls_ca;       // the CA that verifies the coordinator (when it serves TLS)
  double grace_period_s = 30;
};

class NodeAgent {
 public:
  explicit NodeAgent(NodeAgentOptions options);
  ~NodeAgent();

  // Serves until Stop(); then stops every rank (SIGTERM, SIGKILL after the grace
  // period) and returns. Registration retries while the coordinator is unreachable.
  absl::Status Run();
  void Stop();

 private:
  struct RankKey {
    std::string job_id;
    int32_t attempt, rank;
    bool operator<(const RankKey& o) const {
      return std::tie(job_id, attempt, rank) < std::tie(o.job_id, o.attempt, o.rank);
    }
  };

  bool Register();
  // One poll: sends the reports gathered since the last one and carries out the answer.
  void PollOnce();
  void ReapRanks();
  void StartRank(const trainer::v1::StartRank& start);
  void StopAllRanks(double grace_s);
  bool WaitFor(double seconds);  // false once stopping
  std::unique_ptr<grpc::ClientContext> NewContext(double deadline_s) const;

  const NodeAgentOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<trainer::v1::AgentService::Stub> stub_;
  std::string agent_id_;
  double poll_interval_s_ = 0.5;
  std::map<RankKey, pid_t> ranks_;
  trainer::v1::AgentPollRequest pending_;  // reports not yet delivered

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_LAUNCH_NODE_AGENT_H_
