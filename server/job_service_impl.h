// The gRPC JobService: thin handlers over JobManager and JobStore.
#ifndef TRAINERD_SERVER_JOB_SERVICE_IMPL_H_
#define TRAINERD_SERVER_JOB_SERVICE_IMPL_H_

#include <functional>
#include <string>

#include "server/job_manager.h"
#include "trainer/v1/job_service.grpc.pb.h"

namespace trainerd {

class JobServiceImpl final : public trainer::v1::JobService::Service {
 public:
  // `observe` (optional) is told each RPC's method, status code and seconds.
  using Observer = std::function<void(const std::string& method, grpc::StatusCode code, double seconds)>;
  JobServiceImpl(JobManager* manager, Observer observe) : manager_(manager), observe_(std::move(observe)) {}

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
  grpc::Status StreamLogs(grpc::ServerContext*, const trainer::v1::StreamLogsRequest*,
                          grpc::ServerWriter<trainer::v1::LogLine>*) override;
  grpc::Status WatchJob(grpc::ServerContext*, const trainer::v1::WatchJobRequest*,
                        grpc::ServerWriter<trainer::v1::JobEvent>*) override;

 private:
  template <typename Fn>
  grpc::Status Observe(const std::string& method, Fn&& fn);

  JobManager* manager_;
  Observer observe_;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_JOB_SERVICE_IMPL_H_
