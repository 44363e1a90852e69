// The gRPC AgentService: reads the agent token from the call's metadata and hands the
// call to the AgentLauncher.
#ifndef TRAINERD_SERVER_AGENT_SERVICE_IMPL_H_
#define TRAINERD_SERVER_AGENT_SERVICE_IMPL_H_

#include "protocol/call_metadata.h"
#include "server/api/call_auditor.h"
#include "server/launch/agent_launcher.h"
#include "trainer/v1/job_service.grpc.pb.h"

namespace trainerd {

class AgentServiceImpl final : public trainer::v1::AgentService::Service {
 public:
  // Both outlive this object. Refused calls are audited.
  AgentServiceImpl(AgentLauncher* agents, AuditLog* audit) : agents_(agents), auditor_(audit) {}
  grpc::Status Register(grpc::ServerContext*, const trainer::v1::RegisterAgentRequest*,
                        trainer::v1::RegisterAgentResponse*) override;
  grpc::Status Poll(grpc::ServerContext*, const trainer::v1::AgentPollRequest*,
                    trainer::v1::AgentPollResponse*) override;

 private:
  AgentLauncher* agents_;
  CallAuditor auditor_;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_AGENT_SERVICE_IMPL_H_
