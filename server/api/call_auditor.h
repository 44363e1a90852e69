// CallAuditor: writes one gRPC call to the audit log (and trainerd's log): who, which
// call, which job, the answer's code and the peer. Shared by every service.
#ifndef TRAINERD_SERVER_CALL_AUDITOR_H_
#define TRAINERD_SERVER_CALL_AUDITOR_H_

#include <string>

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

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

}  // namespace trainerd

#endif  // TRAINERD_SERVER_CALL_AUDITOR_H_
