#include "server/agent_service_impl.h"

#include "server/status_util.h"

namespace trainerd {

grpc::Status AgentServiceImpl::Register(grpc::ServerContext* context, const trainer::v1::RegisterAgentRequest* request,
                                        trainer::v1::RegisterAgentResponse* response) {
  auto result = manager_->AgentRegister(MetadataValue(context, kAgentTokenMetadata), *request);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *result;
  return grpc::Status::OK;
}

grpc::Status AgentServiceImpl::Poll(grpc::ServerContext* context, const trainer::v1::AgentPollRequest* request,
                                    trainer::v1::AgentPollResponse* response) {
  auto result = manager_->AgentPoll(MetadataValue(context, kAgentTokenMetadata), *request);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *result;
  return grpc::Status::OK;
}

}  // namespace trainerd
