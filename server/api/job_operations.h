// JobOperations: what a caller may do with jobs, whatever the transport. Each operation
// authenticates the caller from its CallOrigin, applies the access rules (AccessControl),
// audits (changes always, refusals always, reads never), adds where a queued job stands,
// and answers with an absl::Status code that each front door maps to its own (gRPC's
// code, the HTTP status). The gRPC JobService and the HTTP API are thin adapters over it,
// so that a rule is written once.
//
// Threads: any; it keeps no state of its own.
#ifndef TRAINERD_SERVER_API_JOB_OPERATIONS_H_
#define TRAINERD_SERVER_API_JOB_OPERATIONS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/api/call_auditor.h"
#include "server/api/follow_pump.h"
#include "server/auth/access_control.h"
#include "server/auth/call_origin.h"
#include "server/jobs/attempt_supervisor.h"
#include "server/jobs/job_registry.h"
#include "storage/audit_log.h"
#include "storage/job_store.h"
#include "trainer/v1/job_service.pb.h"

namespace trainerd {

class JobOperations {
 public:
  // Every pointer outlives this object. Jobs are read from `registry` and changed by
  // `supervisor`; their logs and metrics are read from `output` (never written here).
  JobOperations(JobRegistry* registry, JobStore* output, AttemptSupervisor* supervisor, const AccessControl* access,
                AuditLog* audit)
      : registry_(registry),
        output_(output),
        supervisor_(supervisor),
        access_(access),
        audit_(audit),
        auditor_(audit) {}

  // The operations of the JobService (proto/trainer/v1/job_service.proto says what each
  // does); the audit log names them by their gRPC method.
  absl::StatusOr<trainer::v1::SubmitJobResponse> SubmitJob(const CallOrigin& origin,
                                                           const trainer::v1::SubmitJobRequest& request) const;
  absl::StatusOr<trainer::v1::Job> GetJob(const CallOrigin& origin, const trainer::v1::GetJobRequest& request) const;
  absl::StatusOr<trainer::v1::ListJobsResponse> ListJobs(const CallOrigin& origin,
                                                         const trainer::v1::ListJobsRequest& request) const;
  absl::StatusOr<trainer::v1::Job> CancelJob(const CallOrigin& origin,
                                             const trainer::v1::CancelJobRequest& request) const;
  absl::StatusOr<trainer::v1::Job> ResumeJob(const CallOrigin& origin,
                                             const trainer::v1::ResumeJobRequest& request) const;
  absl::Status DeleteJob(const CallOrigin& origin, const trainer::v1::DeleteJobRequest& request) const;
  absl::StatusOr<trainer::v1::ListCheckpointsResponse> ListCheckpoints(
      const CallOrigin& origin, const trainer::v1::ListCheckpointsRequest& request) const;
  absl::StatusOr<trainer::v1::GetMetricsResponse> GetMetrics(const CallOrigin& origin,
                                                             const trainer::v1::GetMetricsRequest& request) const;
  absl::StatusOr<trainer::v1::ListAuditEventsResponse> ListAuditEvents(
      const CallOrigin& origin, const trainer::v1::ListAuditEventsRequest& request) const;
  absl::StatusOr<trainer::v1::WhoAmIResponse> WhoAmI(const CallOrigin& origin) const;
  // Answers a call its front door could not read (a malformed body or parameter) as
  // `method`: UNAUTHENTICATED (audited) when the caller's credentials do not hold, so
  // that a stranger learns nothing, else `unreadable`.
  absl::Status RefuseUnreadable(const CallOrigin& origin, const char* method, absl::Status unreadable) const;

  // The follows: once the caller may read the job, how a stream finds what is new (run
  // by a FollowPump's stream of whichever transport). StreamLogs: the job's log lines
  // from `from_seq` (or its last `tail`), ending at the job's end when `follow`.
  // WatchJob: each change of the job, and each metric point as it is stored.
  absl::StatusOr<FollowFetch<trainer::v1::LogLine>> StreamLogs(const CallOrigin& origin,
                                                               const trainer::v1::StreamLogsRequest& request) const;
  absl::StatusOr<FollowFetch<trainer::v1::JobEvent>> WatchJob(const CallOrigin& origin,
                                                              const trainer::v1::WatchJobRequest& request) const;

 private:
  enum class Access { kRead, kChange };

  // RunAuthenticated (call_auditor.h) with this object's access control and auditor.
  template <typename Fn>
  auto Run(const char* method, bool audited, const CallOrigin& origin, const std::string& detail, Fn&& fn) const {
    return RunAuthenticated(*access_, auditor_, method, audited, origin, detail, std::forward<Fn>(fn));
  }
  // Adds where a queued job stands (queue_position, queue_reason) to what is sent.
  void ShowQueueSpot(trainer::v1::Job* job) const;
  // Job `id` when `caller` may read it (kRead) or change it (kChange).
  absl::StatusOr<trainer::v1::Job> JobFor(const Caller& caller, const std::string& id, Access access) const;

  JobRegistry* const registry_;
  JobStore* const output_;
  AttemptSupervisor* const supervisor_;
  const AccessControl* const access_;
  AuditLog* const audit_;
  const CallAuditor auditor_;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_API_JOB_OPERATIONS_H_
