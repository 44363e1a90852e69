#include "server/worker_service_impl.h"

#include "server/status_util.h"

namespace trainerd {

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext* context, const trainer::v1::HeartbeatRequest* request,
                                          trainer::v1::HeartbeatResponse* response) {
  return Reply(manager_->WorkerHeartbeat(MetadataValue(context, kWorkerSecretMetadata), *request), response);
}

grpc::Status WorkerServiceImpl::ReportCheckpoint(grpc::ServerContext* context,
                                                 const trainer::v1::CheckpointReport* report,
                                                 trainer::v1::ReportResponse*) {
  return ToGrpcStatus(manager_->WorkerCheckpoint(MetadataValue(context, kWorkerSecretMetadata), *report));
}

grpc::Status WorkerServiceImpl::ReportOutput(grpc::ServerContext* context, const trainer::v1::OutputReport* report,
                                             trainer::v1::ReportResponse*) {
  return ToGrpcStatus(manager_->WorkerOutput(MetadataValue(context, kWorkerSecretMetadata), *report));
}

}  // namespace trainerd
