#include "server/agent_service_impl.h"

#include "server/status_util.h"

namespace trainerd {
namespace {

std::string Token(const grpc::ServerContext* context) {
  auto it = context->client_metadata().find(kAgentTokenMetadata);
  return it == context->client_metadata().end() ? "" : std::string(it->second.data(), it->second.size());
}

}  // namespace

grpc::Status AgentServiceImpl::Register(grpc::ServerContext* context, const trainer::v1::RegisterAgentRequest* request,
                                        trainer::v1::RegisterAgentResponse* response) {
  auto result = manager_->AgentRegister(Token(context), *request);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *result;
  return grpc::Status::OK;
}

grpc::Status AgentServiceImpl::Poll(grpc::ServerContext* context, const trainer::v1::AgentPollRequest* request,
                                    trainer::v1::AgentPollResponse* response) {
  auto result = manager_->AgentPoll(Token(context), *request);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *result;
  return grpc::Status::OK;
}

}  // namespace trainerd
