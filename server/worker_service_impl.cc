#include "server/worker_service_impl.h"

#include "server/status_util.h"

namespace trainerd {
namespace {

std::string Secret(const grpc::ServerContext* context) {
  auto it = context->client_metadata().find(kWorkerSecretMetadata);
  return it == context->client_metadata().end() ? "" : std::string(it->second.data(), it->second.size());
}

}  // namespace

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext* context, const trainer::v1::HeartbeatRequest* request,
                                          trainer::v1::HeartbeatResponse* response) {
  auto result = manager_->WorkerHeartbeat(Secret(context), *request);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *result;
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::ReportCheckpoint(grpc::ServerContext* context,
                                                 const trainer::v1::CheckpointReport* report,
                                                 trainer::v1::ReportResponse*) {
  return ToGrpcStatus(manager_->WorkerCheckpoint(Secret(context), *report));
}

grpc::Status WorkerServiceImpl::ReportOutput(grpc::ServerContext* context, const trainer::v1::OutputReport* report,
                                             trainer::v1::ReportResponse*) {
  return ToGrpcStatus(manager_->WorkerOutput(Secret(context), *report));
}

}  // namespace trainerd
