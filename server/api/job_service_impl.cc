#include "server/api/job_service_impl.h"

#include <chrono>

#include "server/api/following_stream.h"
#include "server/api/status_util.h"

namespace trainerd {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

using namespace trainer::v1;

template <typename Call>
grpc::Status JobServiceImpl::Observe(const char* method, Call&& call) {
  return ObservedCall(observe_, method, std::forward<Call>(call));
}

grpc::Status JobServiceImpl::SubmitJob(grpc::ServerContext* context, const SubmitJobRequest* req,
                                       SubmitJobResponse* resp) {
  return Observe("SubmitJob", [&] { return Answer(operations_->SubmitJob(CallOriginOf(*context), *req), resp); });
}

grpc::Status JobServiceImpl::GetJob(grpc::ServerContext* context, const GetJobRequest* req, Job* resp) {
  return Observe("GetJob", [&] { return Answer(operations_->GetJob(CallOriginOf(*context), *req), resp); });
}

grpc::Status JobServiceImpl::ListJobs(grpc::ServerContext* context, const ListJobsRequest* req,
                                      ListJobsResponse* resp) {
  return Observe("ListJobs", [&] { return Answer(operations_->ListJobs(CallOriginOf(*context), *req), resp); });
}

grpc::Status JobServiceImpl::CancelJob(grpc::ServerContext* context, const CancelJobRequest* req, Job* resp) {
  return Observe("CancelJob", [&] { return Answer(operations_->CancelJob(CallOriginOf(*context), *req), resp); });
}

grpc::Status JobServiceImpl::ResumeJob(grpc::ServerContext* context, const ResumeJobRequest* req, Job* resp) {
  return Observe("ResumeJob", [&] { return Answer(operations_->ResumeJob(CallOriginOf(*context), *req), resp); });
}

grpc::Status JobServiceImpl::DeleteJob(grpc::ServerContext* context, const DeleteJobRequest* req, DeleteJobResponse*) {
  return Observe("DeleteJob", [&] { return operations_->DeleteJob(CallOriginOf(*context), *req); });
}

grpc::Status JobServiceImpl::ListCheckpoints(grpc::ServerContext* context, const ListCheckpointsRequest* req,
                                             ListCheckpointsResponse* resp) {
  return Observe("ListCheckpoints",
                 [&] { return Answer(operations_->ListCheckpoints(CallOriginOf(*context), *req), resp); });
}

grpc::Status JobServiceImpl::GetMetrics(grpc::ServerContext* context, const GetMetricsRequest* req,
                                        GetMetricsResponse* resp) {
  return Observe("GetMetrics", [&] { return Answer(operations_->GetMetrics(CallOriginOf(*context), *req), resp); });
}

grpc::Status JobServiceImpl::ListAuditEvents(grpc::ServerContext* context, const ListAuditEventsRequest* req,
                                             ListAuditEventsResponse* resp) {
  return Observe("ListAuditEvents",
                 [&] { return Answer(operations_->ListAuditEvents(CallOriginOf(*context), *req), resp); });
}

grpc::Status JobServiceImpl::WhoAmI(grpc::ServerContext* context, const WhoAmIRequest*, WhoAmIResponse* resp) {
  return Observe("WhoAmI", [&] { return Answer(operations_->WhoAmI(CallOriginOf(*context)), resp); });
}

template <typename Item>
grpc::ServerWriteReactor<Item>* JobServiceImpl::Follow(const char* method, absl::StatusOr<FollowFetch<Item>> fetch) {
  typename FollowingStream<Item>::OnEnd on_end =
      [this, method, start = std::chrono::steady_clock::now()](const grpc::Status& status) {
        if (observe_) observe_(method, status.error_code(), SecondsSince(start), /*streamed=*/true);
      };
  if (!fetch.ok()) return FollowingStream<Item>::Refuse(ToGrpcStatus(fetch.status()), std::move(on_end));
  return FollowingStream<Item>::Start(&followers_, std::move(*fetch), std::move(on_end));
}

grpc::ServerWriteReactor<LogLine>* JobServiceImpl::StreamLogs(grpc::CallbackServerContext* context,
                                                              const StreamLogsRequest* req) {
  return Follow<LogLine>("StreamLogs", operations_->StreamLogs(CallOriginOf(*context), *req));
}

grpc::ServerWriteReactor<JobEvent>* JobServiceImpl::WatchJob(grpc::CallbackServerContext* context,
                                                             const WatchJobRequest* req) {
  return Follow<JobEvent>("WatchJob", operations_->WatchJob(CallOriginOf(*context), *req));
}

}  // namespace trainerd
