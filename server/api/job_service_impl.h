// The gRPC JobService: thin handlers; reads go to the JobRegistry (and its store),
// changes to the AttemptSupervisor. Every call is
// authenticated and checked against the job's owner (AccessControl); changes and
// refused calls go to the audit log.
#ifndef TRAINERD_SERVER_JOB_SERVICE_IMPL_H_
#define TRAINERD_SERVER_JOB_SERVICE_IMPL_H_

#include <functional>
#include <string>

#include "server/auth/access_control.h"
#include "server/jobs/attempt_supervisor.h"
#include "server/jobs/job_registry.h"
#include "server/api/call_auditor.h"
#include "server/api/follow_pump.h"
#include "storage/audit_log.h"
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
  using Observer =
      std::function<void(const std::string& method, grpc::StatusCode code, double seconds, bool streamed)>;
  // Every pointer outlives this object.
  JobServiceImpl(JobRegistry* registry, AttemptSupervisor* supervisor, const AccessControl* access, AuditLog* audit,
                 Observer observe)
      : registry_(registry),
        supervisor_(supervisor),
        access_(access),
        audit_(audit),
        auditor_(audit),
        observe_(std::move(observe)),
        followers_(registry) {}

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
  // Whether a call changes something: changes are audited whatever their outcome;
  // reads only when refused. kFollow: a read that streams (logs, state changes).
  enum class Kind { kRead, kFollow, kChange };

  // Authenticates the caller, runs fn(caller), audits, and tells the observer. `job_id`
  // is read after fn ran (SubmitJob passes its response's field).
  template <typename Fn>
  grpc::Status Observe(const char* method, Kind kind, grpc::ServerContext* context, const std::string& job_id,
                       Fn&& fn);
  // Observe for a following stream: authenticates, and starts the stream that
  // make_fetch(caller) returns the Fetch of (or refuses the call with its error).
  template <typename Item, typename MakeFetch>
  grpc::ServerWriteReactor<Item>* Follow(const char* method, grpc::CallbackServerContext* context,
                                         const std::string& job_id, MakeFetch&& make_fetch);
  // Adds where a queued job stands (queue_position, queue_reason) to what is sent.
  void ShowQueueSpot(trainer::v1::Job* job) const;
  // Job `id` when `caller` may read it (kRead) or change it (kChange).
  absl::StatusOr<trainer::v1::Job> JobFor(const Caller& caller, const std::string& id, Kind kind) const;

  JobRegistry* registry_;
  AttemptSupervisor* supervisor_;
  const AccessControl* access_;
  AuditLog* audit_;
  CallAuditor auditor_;
  Observer observe_;
  FollowPump followers_;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_JOB_SERVICE_IMPL_H_
