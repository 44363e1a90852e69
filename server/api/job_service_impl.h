// The gRPC JobService: each handler hands its call to JobOperations (which
// authenticates, checks the job's owner, audits and does it) and maps the answer to
// gRPC; the streams run on the FollowPump without holding a thread.
#ifndef TRAINERD_SERVER_JOB_SERVICE_IMPL_H_
#define TRAINERD_SERVER_JOB_SERVICE_IMPL_H_

#include <functional>
#include <string>

#include "server/api/follow_pump.h"
#include "server/api/job_operations.h"
#include "server/api/status_util.h"
#include "server/jobs/job_registry.h"
#include "trainer/v1/job_service.grpc.pb.h"

namespace trainerd {

// StreamLogs and WatchJob use gRPC's callback API (following_stream.h): a follower
// holds no server thread; the others are synchronous.
using JobServiceBase = trainer::v1::JobService::WithCallbackMethod_StreamLogs<
    trainer::v1::JobService::WithCallbackMethod_WatchJob<trainer::v1::JobService::Service>>;

class JobServiceImpl final : public JobServiceBase {
 public:
  // `observe` (optional) is told each RPC's method, status code and seconds, and whether
  // it streamed (then the seconds are how long the client followed, not a latency).
  using Observer = RpcObserver;
  // Both pointers outlive this object.
  JobServiceImpl(const JobOperations* operations, JobRegistry* registry, Observer observe)
      : operations_(operations), observe_(std::move(observe)), followers_(registry) {}

  // Ends every log and watch stream (UNAVAILABLE: clients reconnect); for shutdown.
  void StopFollowers() { followers_.Stop(); }
  // Streams following jobs now.
  size_t follower_count() { return followers_.size(); }

  grpc::Status SubmitJob(grpc::ServerContext*, const trainer::v1::SubmitJobRequest*,
                         trainer::v1::SubmitJobResponse*) override;
  grpc::Status GetJob(grpc::ServerContext*, const trainer::v1::GetJobRequest*, trainer::v1::Job*) override;
  grpc::Status ListJobs(grpc::ServerContext*, const trainer::v1::ListJobsRequest*,
                        trainer::v1::ListJobsResponse*) override;
  grpc::Status CancelJob(grpc::ServerContext*, const trainer::v1::CancelJobRequest*, trainer::v1::Job*) override;
  grpc::Status ResumeJob(grpc::ServerContext*, const trainer::v1::ResumeJobRequest*, trainer::v1::Job*) override;
  grpc::Status DeleteJob(grpc::ServerContext*, const trainer::v1::DeleteJobRequest*,
                         trainer::v1::DeleteJobResponse*) override;
  grpc::Status ListCheckpoints(grpc::ServerContext*, const trainer::v1::ListCheckpointsRequest*,
                               trainer::v1::ListCheckpointsResponse*) override;
  grpc::Status GetMetrics(grpc::ServerContext*, const trainer::v1::GetMetricsRequest*,
                          trainer::v1::GetMetricsResponse*) override;
  grpc::ServerWriteReactor<trainer::v1::LogLine>* StreamLogs(grpc::CallbackServerContext*,
                                                             const trainer::v1::StreamLogsRequest*) override;
  grpc::ServerWriteReactor<trainer::v1::JobEvent>* WatchJob(grpc::CallbackServerContext*,
                                                            const trainer::v1::WatchJobRequest*) override;
  grpc::Status ListAuditEvents(grpc::ServerContext*, const trainer::v1::ListAuditEventsRequest*,
                               trainer::v1::ListAuditEventsResponse*) override;
  grpc::Status WhoAmI(grpc::ServerContext*, const trainer::v1::WhoAmIRequest*, trainer::v1::WhoAmIResponse*) override;

 private:
  // Runs the operation `call` (which returns the call's absl::Status), and tells the
  // observer how it ended and how long it took.
  template <typename Call>
  grpc::Status Observe(const char* method, Call&& call);
  // Starts the stream whose fetch `fetch` is (or refuses the call with its error); the
  // observer is told when the stream ends.
  template <typename Item>
  grpc::ServerWriteReactor<Item>* Follow(const char* method, absl::StatusOr<FollowFetch<Item>> fetch);

  const JobOperations* const operations_;
  const Observer observe_;
  FollowPump followers_;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_JOB_SERVICE_IMPL_H_
