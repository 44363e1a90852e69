#include "server/launch/node_agent.h"

#include <signal.h>

#include <chrono>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/tls_credentials.h"
#include "protocol/call_metadata.h"
#include "protocol/worker_environment.h"
#include "trainer/v1/job_service.grpc.pb.h"
#include "server/launch/worker_process.h"

namespace trainerd {

NodeAgent::NodeAgent(NodeAgentOptions options) : options_(std::move(options)) {}

NodeAgent::~NodeAgent() = default;

std::unique_ptr<grpc::ClientContext> NodeAgent::NewContext(double deadline_s) const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(deadline_s * 1000)));
  if (!options_.token.empty()) context->AddMetadata(kAgentTokenMetadata, options_.token);
  return context;
}

void NodeAgent::Stop() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
}

bool NodeAgent::WaitFor(double seconds) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Seconds(seconds));
  return !stopping_;
}

bool NodeAgent::Register() {
  trainer::v1::RegisterAgentRequest request;
  request.set_name(options_.name);
  request.set_host(options_.host);
  request.set_cpu_slots(options_.cpu_slots);
  request.set_gpus(options_.gpus);
  trainer::v1::RegisterAgentResponse response;
  auto context = NewContext(5);
  grpc::Status s = stub_->Register(context.get(), request, &response);
  if (!s.ok()) {
    spdlog::warn("cannot register with the coordinator at {}: {}", options_.coordinator, s.error_message());
    return false;
  }
  agent_id_ = response.agent_id();
  poll_interval_s_ = response.poll_interval_s() > 0 ? response.poll_interval_s() : 0.5;
  spdlog::info("registered with {} as {}: {} CPU slot(s), {} GPU(s), reachable at {}", options_.coordinator, agent_id_,
               options_.cpu_slots, options_.gpus, options_.host);
  return true;
}

absl::Status NodeAgent::Run() {
  // The token goes only to a coordinator whose certificate --tls-ca verifies, when given.
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials = MakeChannelCredentials({options_.tls_ca});
  if (!credentials.ok()) return credentials.status();
  if (options_.tls_ca.empty()) {
    spdlog::warn("no --tls-ca: the agent token and job secrets cross the network in clear text");
  }
  channel_ = grpc::CreateChannel(options_.coordinator, *credentials);
  stub_ = trainer::v1::AgentService::NewStub(channel_);
  while (WaitFor(0)) {
    if (agent_id_.empty()) {
      if (!Register()) WaitFor(1);
      continue;
    }
    ReapRanks();
    PollOnce();
    WaitFor(poll_interval_s_);
  }
  StopAllRanks(options_.grace_period_s);
  // Best effort: tell the coordinator now rather than after its timeout.
  if (!agent_id_.empty()) {
    pending_.set_agent_id(agent_id_);
    trainer::v1::AgentPollResponse ignored;
    auto context = NewContext(2);
    (void)stub_->Poll(context.get(), pending_, &ignored);
  }
  return absl::OkStatus();
}

void NodeAgent::ReapRanks() {
  for (auto it = ranks_.begin(); it != ranks_.end();) {
    std::optional<ExitInfo> exit = ReapWorker(it->second);
    if (!exit) {
      ++it;
      continue;
    }
    trainer::v1::RankExited* e = pending_.add_exited();
    e->mutable_rank()->set_job_id(it->first.job_id);
    e->mutable_rank()->set_attempt(it->first.attempt);
    e->mutable_rank()->set_rank(it->first.rank);
    e->set_exit_code(exit->exit_code);
    e->set_signal(exit->signal);
    spdlog::info("job={} rank {} ended: exit {} signal {}", it->first.job_id, it->first.rank, exit->exit_code,
                 exit->signal);
    it = ranks_.erase(it);
  }
}

void NodeAgent::PollOnce() {
  pending_.set_agent_id(agent_id_);
  trainer::v1::AgentPollResponse response;
  auto context = NewContext(5);
  grpc::Status s = stub_->Poll(context.get(), pending_, &response);
  if (!s.ok()) {
    // The reports stay pending; the coordinator declares us lost if this goes on.
    spdlog::warn("poll of {} failed: {}", options_.coordinator, s.error_message());
    return;
  }
  pending_.Clear();
  if (response.reregister()) {
    // The coordinator no longer counts on our ranks: they must not run on unsupervised.
    spdlog::warn("the coordinator does not know this agent (restarted, or it declared us lost): stopping {} rank(s)"
                 " and registering again",
                 ranks_.size());
    StopAllRanks(0);
    pending_.Clear();
    agent_id_.clear();
    return;
  }
  for (const trainer::v1::SignalRank& sig : response.signal()) {
    auto it = ranks_.find({sig.rank().job_id(), sig.rank().attempt(), sig.rank().rank()});
    if (it != ranks_.end()) SignalWorker(it->second, sig.signal());
  }
  for (const trainer::v1::StartRank& start : response.start()) StartRank(start);
}

void NodeAgent::StartRank(const trainer::v1::StartRank& start) {
  WorkerLaunch launch;
  launch.program = start.program();
  launch.args.assign(start.args().begin(), start.args().end());
  launch.working_dir = start.working_dir();
  launch.log_path = start.log_path();
  for (const auto& [k, v] : start.env()) launch.env[k] = v;
  // The coordinator's CA file is a path on its machine; ranks here use this agent's.
  launch.env.erase(kEnvTlsCa);
  if (!options_.tls_ca.empty()) launch.env[kEnvTlsCa] = options_.tls_ca;
  launch.die_with_parent = true;
  trainer::v1::RankStarted* started = pending_.add_started();
  *started->mutable_rank() = start.rank();
  absl::StatusOr<pid_t> pid = SpawnWorker(launch);
  if (!pid.ok()) {
    started->set_error(std::string(pid.status().message()));
    spdlog::error("job={} rank {}: cannot start: {}", start.rank().job_id(), start.rank().rank(),
                  std::string(pid.status().message()));
    return;
  }
  started->set_pid(*pid);
  ranks_[{start.rank().job_id(), start.rank().attempt(), start.rank().rank()}] = *pid;
  spdlog::info("job={} attempt {} rank {} started: pid {}", start.rank().job_id(), start.rank().attempt(),
               start.rank().rank(), *pid);
}

void NodeAgent::StopAllRanks(double grace_s) {
  if (ranks_.empty()) return;
  for (const auto& [key, pid] : ranks_) SignalWorker(pid, grace_s > 0 ? SIGTERM : SIGKILL);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(grace_s * 1000));
  while (!ranks_.empty() && std::chrono::steady_clock::now() < deadline) {
    ReapRanks();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (const auto& [key, pid] : ranks_) SignalWorker(pid, SIGKILL);
  while (!ranks_.empty()) {
    ReapRanks();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace trainerd
