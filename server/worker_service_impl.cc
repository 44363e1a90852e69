#include "server/worker_service_impl.h"

#include "server/status_util.h"

namespace trainerd {

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext* context, const trainer::v1::HeartbeatRequest* request,
                                          trainer::v1::HeartbeatResponse* response) {
  grpc::Status status =
      Reply(manager_->WorkerHeartbeat(MetadataValue(context, kWorkerSecretMetadata), *request), response);
  auditor_.RecordIfRefused("Heartbeat", *context, request->job_id(), status);
  return status;
}

grpc::Status WorkerServiceImpl::ReportCheckpoint(grpc::ServerContext* context,
                                                 const trainer::v1::CheckpointReport* report,
                                                 trainer::v1::ReportResponse*) {
  grpc::Status status = ToGrpcStatus(manager_->WorkerCheckpoint(MetadataValue(context, kWorkerSecretMetadata), *report));
  // A report of a folder outside the job's output_dir is a forgery, not a worker's slip.
  if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
    auditor_.Record("ReportCheckpoint", *context, "", report->job_id(), status);
  } else {
    auditor_.RecordIfRefused("ReportCheckpoint", *context, report->job_id(), status);
  }
  return status;
}

grpc::Status WorkerServiceImpl::ReportOutput(grpc::ServerContext* context, const trainer::v1::OutputReport* report,
                                             trainer::v1::ReportResponse*) {
  grpc::Status status = ToGrpcStatus(manager_->WorkerOutput(MetadataValue(context, kWorkerSecretMetadata), *report));
  auditor_.RecordIfRefused("ReportOutput", *context, report->job_id(), status);
  return status;
}

}  // namespace trainerd
