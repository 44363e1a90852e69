// CallAuditor: writes one gRPC call to the audit log (and trainerd's log): who, which
// call, which job, the answer's code and the peer. Shared by every service.
#ifndef TRAINERD_SERVER_CALL_AUDITOR_H_
#define TRAINERD_SERVER_CALL_AUDITOR_H_

#include <string>

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include "server/api/status_util.h"
#include "server/auth/access_control.h"
#include "storage/audit_log.h"

namespace trainerd {

class CallAuditor {
 public:
  // `log` outlives this object.
  explicit CallAuditor(AuditLog* log) : log_(log) {}

  // Records the call. `user` is "" for a caller who was not authenticated; `job_id` is
  // the caller's text (cut to 64 bytes), the detail the answer's first line.
  void Record(const char* method, const grpc::ServerContextBase& context, const std::string& user,
              const std::string& job_id, const grpc::Status& status) const;
  // Records the call only when it was refused (UNAUTHENTICATED, PERMISSION_DENIED or
  // FAILED_PRECONDITION): the internal service's callers are trainerd's own workers,
  // whose accepted calls would only fill the log.
  void RecordIfRefused(const char* method, const grpc::ServerContextBase& context, const std::string& job_id,
                       const grpc::Status& status) const;

 private:
  AuditLog* log_;
};

// Authenticates the caller of `context` and runs fn(caller), which returns the call's
// grpc::Status; records the call with `auditor` when `audited` (a change) or when it was
// refused (not authenticated, not allowed). `detail`: the job or file the call is about,
// read after fn ran (SubmitJob's is the id fn gives the job).
template <typename Fn>
grpc::Status RunAuthenticated(const AccessControl& access, const CallAuditor& auditor, const char* method,
                              bool audited, grpc::ServerContext& context, const std::string& detail, Fn&& fn) {
  grpc::Status status;
  std::string user;
  absl::StatusOr<Caller> caller = access.Authenticate(context);
  if (caller.ok()) {
    user = caller->user;
    status = fn(*caller);
  } else {
    status = ToGrpcStatus(caller.status());
  }
  const grpc::StatusCode code = status.error_code();
  if (audited || code == grpc::StatusCode::UNAUTHENTICATED || code == grpc::StatusCode::PERMISSION_DENIED) {
    auditor.Record(method, context, user, detail, status);
  }
  return status;
}

}  // namespace trainerd

#endif  // TRAINERD_SERVER_CALL_AUDITOR_H_
