#include "server/launch/agent_launcher.h"

#include <signal.h>

#include <random>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "spec/spec_policy.h"

namespace trainerd {
namespace {

using trainer::v1::RankRef;

// Bounded, so that the slot totals cannot overflow.
constexpr int32_t kMaxAgentSlots = 4096;
constexpr int32_t kMaxAgentGpus = 256;
constexpr size_t kMaxAgents = 1024;

RankRef MakeRef(const RankId& id) {
  RankRef ref;
  ref.set_job_id(id.job_id);
  ref.set_attempt(id.attempt);
  ref.set_rank(id.rank);
  return ref;
}

RankId FromRef(const RankRef& ref) { return RankId{ref.job_id(), ref.attempt(), ref.rank()}; }

std::string NewAgentId() {
  std::random_device rd;
  return absl::StrCat("agent-", absl::Hex(rd(), absl::kZeroPad8));
}

}  // namespace

AgentLauncher::AgentLauncher(AgentLauncherOptions options) : options_(std::move(options)) {}

std::vector<NodeSlots> AgentLauncher::Nodes() {
  absl::MutexLock lock(&mu_);
  std::vector<NodeSlots> out;
  for (const auto& [id, agent] : agents_) out.push_back(NodeSlots{id, agent.cpu_slots, agent.gpus});
  return out;
}

std::string AgentLauncher::NodeAddress(const std::string& node) {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(node);
  return it == agents_.end() ? "" : it->second.host;
}

absl::StatusOr<std::vector<pid_t>> AgentLauncher::Start(const std::vector<RankStart>& ranks) {
  absl::MutexLock lock(&mu_);
  for (const RankStart& start : ranks) {
    if (!agents_.count(start.node)) return absl::UnavailableError(absl::StrCat("agent ", start.node, " is gone"));
  }
  for (const RankStart& start : ranks) {
    trainer::v1::StartRank message;
    *message.mutable_rank() = MakeRef(start.id);
    message.set_program(start.launch.program);
    for (const std::string& a : start.launch.args) message.add_args(a);
    message.set_working_dir(start.launch.working_dir);
    message.set_log_path(start.launch.log_path);
    for (const auto& [k, v] : start.launch.env) (*message.mutable_env())[k] = v;
    agents_[start.node].to_start.push_back(std::move(message));
    rank_agents_[start.id] = start.node;
  }
  return std::vector<pid_t>(ranks.size(), 0);  // each agent reports its pids
}

void AgentLauncher::Signal(const std::string& job_id, int32_t attempt, int signal) {
  absl::MutexLock lock(&mu_);
  for (auto it = rank_agents_.lower_bound(RankId{job_id, attempt, 0});
       it != rank_agents_.end() && it->first.job_id == job_id && it->first.attempt == attempt; ++it) {
    auto agent = agents_.find(it->second);
    if (agent == agents_.end()) continue;  // the agent is gone, and its ranks with it
    trainer::v1::SignalRank s;
    *s.mutable_rank() = MakeRef(it->first);
    s.set_signal(signal);
    agent->second.to_signal.push_back(std::move(s));
  }
}

bool AgentLauncher::Adopt(const RankId&, const std::string&, pid_t, const std::string&) { return false; }

std::vector<RankEvent> AgentLauncher::TakeEvents(bool* nodes_changed) {
  absl::MutexLock lock(&mu_);
  DropSilentAgents();
  if (nodes_changed_) *nodes_changed = true;
  nodes_changed_ = false;
  std::vector<RankEvent> out;
  out.swap(events_);
  return out;
}

void AgentLauncher::DropSilentAgents() {
  const auto now = Clock::now();
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(options_.timeout_s * 1000));
  for (auto agent = agents_.begin(); agent != agents_.end();) {
    if (now - agent->second.last_poll <= timeout) {
      ++agent;
      continue;
    }
    const std::string what = absl::StrCat("agent ", agent->second.name, " (", agent->second.host,
                                          ") lost: no poll for ", static_cast<int>(options_.timeout_s), "s");
    spdlog::warn("{}; its ranks count as dead", what);
    for (auto rank = rank_agents_.begin(); rank != rank_agents_.end();) {
      if (rank->second != agent->first) {
        ++rank;
        continue;
      }
      RankEvent lost;
      lost.id = rank->first;
      lost.exit.signal = SIGKILL;
      lost.reason = what;
      lost.node_lost = true;
      events_.push_back(std::move(lost));
      rank = rank_agents_.erase(rank);
    }
    agent = agents_.erase(agent);
    nodes_changed_ = true;
  }
}

absl::Status AgentLauncher::CheckToken(const std::string& token) const {
  // Without a token nobody may join: an open agent service would hand any caller the
  // jobs placed on it, with their worker secrets.
  if (options_.token.empty()) {
    return absl::FailedPreconditionError(
        "the agent service is off: start trainerd with --agent-token (or TRAINERD_AGENT_TOKEN) to accept agents");
  }
  // Equal-time comparison: the token must not leak through timing.
  unsigned char diff = options_.token.size() != token.size();
  for (size_t i = 0; i < std::min(token.size(), options_.token.size()); ++i) diff |= options_.token[i] ^ token[i];
  if (diff != 0) return absl::UnauthenticatedError("wrong or missing x-trainerd-agent-token");
  return absl::OkStatus();
}

absl::StatusOr<trainer::v1::RegisterAgentResponse> AgentLauncher::Register(
    const std::string& token, const trainer::v1::RegisterAgentRequest& request) {
  if (absl::Status s = CheckToken(token); !s.ok()) return s;
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
  absl::MutexLock lock(&mu_);
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
  spdlog::info("agent {} registered: {} at {}, {} CPU slot(s), {} GPU(s)", id, agent.name, agent.host,
               agent.cpu_slots, agent.gpus);
  agents_[id] = std::move(agent);
  nodes_changed_ = true;
  trainer::v1::RegisterAgentResponse response;
  response.set_agent_id(id);
  response.set_poll_interval_s(options_.poll_interval_s);
  return response;
}

absl::StatusOr<trainer::v1::AgentPollResponse> AgentLauncher::Poll(const std::string& token,
                                                                   const trainer::v1::AgentPollRequest& request) {
  if (absl::Status s = CheckToken(token); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  trainer::v1::AgentPollResponse response;
  auto agent = agents_.find(request.agent_id());
  if (agent == agents_.end()) {
    response.set_reregister(true);
    return response;
  }
  agent->second.last_poll = Clock::now();
  // A report counts only for a rank placed on this agent that still runs.
  auto placed_here = [&](const RankRef& ref) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = rank_agents_.find(FromRef(ref));
    return it != rank_agents_.end() && it->second == request.agent_id() ? it : rank_agents_.end();
  };
  for (const trainer::v1::RankStarted& started : request.started()) {
    auto it = placed_here(started.rank());
    if (it == rank_agents_.end()) continue;
    RankEvent event;
    event.id = it->first;
    if (started.error().empty()) {
      event.kind = RankEvent::Kind::kStarted;
      event.pid = started.pid();
    } else {
      event.exit.exit_code = 127;
      event.reason = absl::StrCat("rank ", event.id.rank, " could not start: ", started.error());
      rank_agents_.erase(it);
    }
    events_.push_back(std::move(event));
  }
  for (const trainer::v1::RankExited& exited : request.exited()) {
    auto it = placed_here(exited.rank());
    if (it == rank_agents_.end()) continue;
    RankEvent event;
    event.id = it->first;
    event.exit.exit_code = exited.exit_code();
    event.exit.signal = exited.signal();
    events_.push_back(std::move(event));
    rank_agents_.erase(it);
  }
  for (auto& s : agent->second.to_start) *response.add_start() = std::move(s);
  for (auto& s : agent->second.to_signal) *response.add_signal() = std::move(s);
  agent->second.to_start.clear();
  agent->second.to_signal.clear();
  return response;
}

}  // namespace trainerd
