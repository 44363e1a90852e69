// JobManager: the machines ranks run on. trainerd's own machine is node ""; every
// `trainerd agent` that registered is a node named by its id. Agents are driven by
// their polls: starts and signals for an agent's ranks wait in its queue until it
// polls, and its reports of started and ended ranks come back with the next poll.
//
// Ranks on agents read the job's files (spec, checkpoints, logs) at the same paths as
// trainerd: the data root must be on a file system every machine shares.
#include <signal.h>

#include <random>
#include <set>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "server/job_manager.h"

namespace trainerd {
namespace {

using trainer::v1::RankRef;

RankRef MakeRef(const std::string& job_id, int32_t attempt, int32_t rank) {
  RankRef ref;
  ref.set_job_id(job_id);
  ref.set_attempt(attempt);
  ref.set_rank(rank);
  return ref;
}

std::string NewAgentId() {
  std::random_device rd;
  return absl::StrCat("agent-", absl::Hex(rd(), absl::kZeroPad8));
}

}  // namespace

std::vector<NodeSlots> JobManager::FreeSlotsByNode() {
  std::map<std::string, NodeSlots> by_node;
  by_node[""] = NodeSlots{"", options_.cpu_slots, options_.gpus};
  for (const auto& [id, agent] : agents_) by_node[id] = NodeSlots{id, agent.cpu_slots, agent.gpus};
  for (const auto& [job_id, r] : running_) {
    const int32_t gpus_per_rank = r.ranks.empty() ? 0 : r.gpus / static_cast<int32_t>(r.ranks.size());
    for (const RankProc& p : r.ranks) {
      auto it = by_node.find(p.node);
      if (it == by_node.end()) continue;  // its agent is gone
      it->second.cpu_slots -= 1;
      it->second.gpus -= gpus_per_rank;
    }
  }
  std::vector<NodeSlots> out;
  out.push_back(by_node[""]);  // trainerd's own machine first
  for (auto& [id, n] : by_node) {
    if (!id.empty()) out.push_back(n);
  }
  return out;
}

NodeSlots JobManager::Capacity() {
  std::lock_guard<std::mutex> lock(mu_);
  NodeSlots capacity{"", options_.cpu_slots, options_.gpus};
  for (const auto& [id, agent] : agents_) {
    capacity.cpu_slots += agent.cpu_slots;
    capacity.gpus = std::max(capacity.gpus, agent.gpus);
  }
  return capacity;
}

std::string JobManager::NodeAddress(const std::string& node) {
  auto it = agents_.find(node);
  return it == agents_.end() ? options_.advertise_host : it->second.host;
}

std::vector<int32_t> JobManager::FreeGpus(const std::string& node, int32_t count, const Running& starting) {
  auto agent = agents_.find(node);
  const int32_t total = node.empty() ? options_.gpus : (agent == agents_.end() ? 0 : agent->second.gpus);
  std::set<int32_t> used;
  auto add_used = [&](const Running& r) {
    for (const RankProc& p : r.ranks) {
      if (p.node == node && !p.exit) used.insert(p.gpus.begin(), p.gpus.end());
    }
  };
  for (const auto& [job_id, r] : running_) add_used(r);
  add_used(starting);
  std::vector<int32_t> out;
  for (int32_t g = 0; g < total && static_cast<int32_t>(out.size()) < count; ++g) {
    if (!used.count(g)) out.push_back(g);
  }
  return out;
}

absl::Status JobManager::StartRemoteRank(const std::string& job_id, Running& r, RankProc& p,
                                         const WorkerLaunch& launch) {
  auto it = agents_.find(p.node);
  if (it == agents_.end()) return absl::UnavailableError(absl::StrCat("agent ", p.node, " is gone"));
  trainer::v1::StartRank start;
  *start.mutable_rank() = MakeRef(job_id, r.attempt, p.rank);
  start.set_program(launch.program);
  for (const std::string& a : launch.args) start.add_args(a);
  start.set_working_dir(launch.working_dir);
  start.set_log_path(launch.log_path);
  for (const auto& [k, v] : launch.env) (*start.mutable_env())[k] = v;
  it->second.to_start.push_back(std::move(start));
  return absl::OkStatus();
}

void JobManager::SignalRemoteRank(Running& r, RankProc& p, int signal) {
  auto it = agents_.find(p.node);
  if (it == agents_.end()) return;  // the agent is gone, and its ranks with it
  trainer::v1::SignalRank s;
  *s.mutable_rank() = MakeRef(r.job_id, r.attempt, p.rank);
  s.set_signal(signal);
  it->second.to_signal.push_back(std::move(s));
}

void JobManager::CheckAgents() {
  const auto now = Clock::now();
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(options_.agent_timeout_s * 1000));
  for (auto agent = agents_.begin(); agent != agents_.end();) {
    if (now - agent->second.last_poll <= timeout) {
      ++agent;
      continue;
    }
    const std::string id = agent->first;
    const std::string what = absl::StrCat("agent ", agent->second.name, " (", agent->second.host, ") lost: no poll for ",
                                          static_cast<int>(options_.agent_timeout_s), "s");
    spdlog::warn("{}; its ranks count as dead", what);
    agent = agents_.erase(agent);
    schedule_needed_ = true;
    std::vector<std::string> affected;
    for (const auto& [job_id, r] : running_) {
      for (const RankProc& p : r.ranks) {
        if (p.node == id && !p.exit) affected.push_back(job_id);
      }
    }
    for (const std::string& job_id : affected) {
      auto it = running_.find(job_id);
      if (it == running_.end()) continue;
      Running& r = it->second;
      // The lost machine is the root cause even when a surviving rank failed first
      // (its collective broke when the peer vanished); a cancel or shutdown stays one.
      if (r.stop_reason != "cancelled" && r.stop_reason != "shutdown") {
        r.stop_reason = r.stop_reason.empty() ? what : absl::StrCat(what, "; before that: ", r.stop_reason);
        r.node_lost = true;
      }
      ExitInfo lost;
      lost.signal = SIGKILL;
      for (size_t k = 0; running_.count(job_id) && k < r.ranks.size(); ++k) {
        if (r.ranks[k].node == id && !r.ranks[k].exit) OnRankExit(job_id, r, k, lost);
      }
    }
  }
}

namespace {
constexpr int32_t kMaxAgentSlots = 4096;
constexpr int32_t kMaxAgentGpus = 256;
constexpr size_t kMaxAgents = 1024;
}  // namespace

absl::Status JobManager::CheckAgentToken(const std::string& token) const {
  // Without a token nobody may join: an open agent service would hand any caller the
  // jobs placed on it, with their worker secrets.
  if (options_.agent_token.empty()) {
    return absl::FailedPreconditionError(
        "the agent service is off: start trainerd with --agent-token (or TRAINERD_AGENT_TOKEN) to accept agents");
  }
  unsigned char diff = options_.agent_token.size() != token.size();
  for (size_t i = 0; i < std::min(token.size(), options_.agent_token.size()); ++i) {
    diff |= options_.agent_token[i] ^ token[i];
  }
  if (diff != 0) return absl::UnauthenticatedError("wrong or missing x-trainerd-agent-token");
  return absl::OkStatus();
}

absl::StatusOr<trainer::v1::RegisterAgentResponse> JobManager::AgentRegister(
    const std::string& token, const trainer::v1::RegisterAgentRequest& request) {
  if (absl::Status s = CheckAgentToken(token); !s.ok()) return s;
  // Bounded, so that the slot totals cannot overflow.
  if (request.cpu_slots() < 1 || request.cpu_slots() > kMaxAgentSlots) {
    return absl::InvalidArgumentError(absl::StrCat("cpu_slots: must be in [1, ", kMaxAgentSlots, "]"));
  }
  if (request.gpus() < 0 || request.gpus() > kMaxAgentGpus) {
    return absl::InvalidArgumentError(absl::StrCat("gpus: must be in [0, ", kMaxAgentGpus, "]"));
  }
  if (request.host().empty()) return absl::InvalidArgumentError("host: required (the address ranks are reached at)");
  if (request.host().size() > 255) return absl::InvalidArgumentError("host: longer than 255 bytes");
  if (request.name().size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat("name: longer than ", kMaxNameBytes, " bytes"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (agents_.size() >= kMaxAgents) {
    return absl::ResourceExhaustedError(absl::StrCat("this trainerd already has ", kMaxAgents, " agents"));
  }
  Agent agent;
  agent.name = request.name().empty() ? request.host() : request.name();
  agent.host = request.host();
  agent.cpu_slots = request.cpu_slots();
  agent.gpus = request.gpus();
  agent.last_poll = Clock::now();
  const std::string id = NewAgentId();
  agents_[id] = std::move(agent);
  schedule_needed_ = true;
  spdlog::info("agent {} registered: {} at {}, {} CPU slot(s), {} GPU(s)", id, agents_[id].name, request.host(),
               request.cpu_slots(), request.gpus());
  trainer::v1::RegisterAgentResponse response;
  response.set_agent_id(id);
  response.set_poll_interval_s(options_.agent_poll_interval_s);
  return response;
}

absl::StatusOr<trainer::v1::AgentPollResponse> JobManager::AgentPoll(const std::string& token,
                                                                     const trainer::v1::AgentPollRequest& request) {
  if (absl::Status s = CheckAgentToken(token); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  trainer::v1::AgentPollResponse response;
  auto agent = agents_.find(request.agent_id());
  if (agent == agents_.end()) {
    response.set_reregister(true);
    return response;
  }
  agent->second.last_poll = Clock::now();
  // Finds the rank a report is about, if its attempt still runs.
  auto find = [&](const RankRef& ref) -> std::pair<Running*, size_t> {
    auto it = running_.find(ref.job_id());
    if (it == running_.end() || it->second.attempt != ref.attempt() || ref.rank() < 0 ||
        ref.rank() >= static_cast<int32_t>(it->second.ranks.size()) ||
        it->second.ranks[ref.rank()].node != request.agent_id()) {
      return {nullptr, 0};
    }
    return {&it->second, static_cast<size_t>(ref.rank())};
  };
  for (const trainer::v1::RankStarted& started : request.started()) {
    auto [r, k] = find(started.rank());
    if (r == nullptr) continue;
    if (!started.error().empty()) {
      if (r->stop_reason.empty()) r->stop_reason = absl::StrCat("rank ", k, " could not start: ", started.error());
      ExitInfo failed;
      failed.exit_code = 127;
      OnRankExit(started.rank().job_id(), *r, k, failed);
      continue;
    }
    r->ranks[k].pid = started.pid();
    auto job = Get(started.rank().job_id());
    if (job.ok() && job->attempts_size() > 0) {
      auto* attempt = job->mutable_attempts(job->attempts_size() - 1);
      if (attempt->number() == r->attempt && static_cast<int>(k) < attempt->rank_pids_size()) {
        attempt->set_rank_pids(static_cast<int>(k), started.pid());
        if (k == 0) attempt->set_pid(started.pid());
        PutJob(*job);
      }
    }
  }
  for (const trainer::v1::RankExited& exited : request.exited()) {
    auto [r, k] = find(exited.rank());
    if (r == nullptr) continue;
    ExitInfo exit;
    exit.exit_code = exited.exit_code();
    exit.signal = exited.signal();
    OnRankExit(exited.rank().job_id(), *r, k, exit);
  }
  for (auto& s : agent->second.to_start) *response.add_start() = std::move(s);
  for (auto& s : agent->second.to_signal) *response.add_signal() = std::move(s);
  agent->second.to_start.clear();
  agent->second.to_signal.clear();
  return response;
}

std::map<std::string, std::string> JobManager::Agents() {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, std::string> out;
  for (const auto& [id, a] : agents_) {
    out[id] = absl::StrCat(a.name, " (", a.host, "), ", a.cpu_slots, " slot(s), ", a.gpus, " GPU(s)");
  }
  return out;
}

}  // namespace trainerd
