#include "server/api/worker_service_impl.h"

#include "server/api/status_util.h"

namespace trainerd {

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext* context, const trainer::v1::HeartbeatRequest* request,
                                          trainer::v1::HeartbeatResponse* response) {
  grpc::Status status =
      Reply(supervisor_->WorkerHeartbeat(MetadataValue(context, kWorkerSecretMetadata), *request), response);
  auditor_.RecordIfRefused("Heartbeat", context->peer(), request->job_id(), FromGrpcStatus(status));
  return status;
}

}  // namespace trainerd
