#include "server/agent_service_impl.h"

#include "server/status_util.h"

namespace trainerd {

grpc::Status AgentServiceImpl::Register(grpc::ServerContext* context, const trainer::v1::RegisterAgentRequest* request,
                                        trainer::v1::RegisterAgentResponse* response) {
  return Reply(manager_->AgentRegister(MetadataValue(context, kAgentTokenMetadata), *request), response);
}

grpc::Status AgentServiceImpl::Poll(grpc::ServerContext* context, const trainer::v1::AgentPollRequest* request,
                                    trainer::v1::AgentPollResponse* response) {
  return Reply(manager_->AgentPoll(MetadataValue(context, kAgentTokenMetadata), *request), response);
}

}  // namespace trainerd
