// The gRPC WorkerService: reads the worker's secret from the call's metadata and hands
// the heartbeat to the AttemptSupervisor. Refused calls (a wrong secret) are audited.
#ifndef TRAINERD_SERVER_WORKER_SERVICE_IMPL_H_
#define TRAINERD_SERVER_WORKER_SERVICE_IMPL_H_

#include "protocol/call_metadata.h"
#include "server/api/call_auditor.h"
#include "server/jobs/attempt_supervisor.h"
#include "trainer/v1/job_service.grpc.pb.h"

namespace trainerd {

class WorkerServiceImpl final : public trainer::v1::WorkerService::Service {
 public:
  // Both outlive this object.
  WorkerServiceImpl(AttemptSupervisor* supervisor, AuditLog* audit) : supervisor_(supervisor), auditor_(audit) {}
  grpc::Status Heartbeat(grpc::ServerContext*, const trainer::v1::HeartbeatRequest*,
                         trainer::v1::HeartbeatResponse*) override;

 private:
  AttemptSupervisor* supervisor_;
  CallAuditor auditor_;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_WORKER_SERVICE_IMPL_H_
