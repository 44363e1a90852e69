#include "server/api/agent_service_impl.h"

#include "server/api/status_util.h"

namespace trainerd {

grpc::Status AgentServiceImpl::Register(grpc::ServerContext* context, const trainer::v1::RegisterAgentRequest* request,
                                        trainer::v1::RegisterAgentResponse* response) {
  grpc::Status status = Reply(agents_->Register(MetadataValue(context, kAgentTokenMetadata), *request), response);
  auditor_.RecordIfRefused("Register", *context, "", status);
  return status;
}

grpc::Status AgentServiceImpl::Poll(grpc::ServerContext* context, const trainer::v1::AgentPollRequest* request,
                                    trainer::v1::AgentPollResponse* response) {
  grpc::Status status = Reply(agents_->Poll(MetadataValue(context, kAgentTokenMetadata), *request), response);
  auditor_.RecordIfRefused("Poll", *context, "", status);
  return status;
}

}  // namespace trainerd
