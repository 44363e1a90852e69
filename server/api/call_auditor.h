// CallAuditor: writes one call to the audit log (and trainerd's log): who, which call,
// which job or file, the answer's code and the peer. Shared by every service and
// transport; RunAuthenticated is the one place a call is authenticated and audited.
#ifndef TRAINERD_SERVER_CALL_AUDITOR_H_
#define TRAINERD_SERVER_CALL_AUDITOR_H_

#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/auth/access_control.h"
#include "server/auth/call_origin.h"
#include "storage/audit_log.h"

namespace trainerd {

class CallAuditor {
 public:
  // `log` outlives this object.
  explicit CallAuditor(AuditLog* log) : log_(log) {}

  // Records the call. `user` is "" for a caller who was not authenticated; `detail` is
  // the job id or file name the call was about (cut to 64 bytes), the event's detail the
  // answer's first line.
  void Record(const char* method, const std::string& peer, const std::string& user, const std::string& detail,
              const absl::Status& status) const;
  // Records the call only when it was refused (UNAUTHENTICATED, PERMISSION_DENIED or
  // FAILED_PRECONDITION): the internal service's callers are trainerd's own workers,
  // whose accepted calls would only fill the log.
  void RecordIfRefused(const char* method, const std::string& peer, const std::string& detail,
                       const absl::Status& status) const;

 private:
  AuditLog* log_;
};

// The status of an operation's answer, whether it is a Status or a StatusOr.
inline const absl::Status& StatusOf(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& result) {
  return result.status();
}

// Authenticates the caller `origin` names and runs fn(caller), which returns the call's
// absl::Status or StatusOr (returned as it is; UNAUTHENTICATED without running fn when
// the credentials do not hold). Records the call with `auditor` when `audited` (a
// change) or when it was refused (not authenticated, not allowed). `detail`: the job or
// file the call is about, read after fn ran (SubmitJob's is the id fn gives the job).
template <typename Fn>
auto RunAuthenticated(const AccessControl& access, const CallAuditor& auditor, const char* method, bool audited,
                      const CallOrigin& origin, const std::string& detail, Fn&& fn)
    -> std::invoke_result_t<Fn, const Caller&> {
  using Result = std::invoke_result_t<Fn, const Caller&>;
  std::string user;
  absl::StatusOr<Caller> caller = access.Authenticate(origin);
  Result result = caller.ok() ? fn(*caller) : Result(caller.status());
  if (caller.ok()) user = caller->user;
  const absl::Status& status = StatusOf(result);
  if (audited || absl::IsUnauthenticated(status) || absl::IsPermissionDenied(status)) {
    auditor.Record(method, origin.peer, user, detail, status);
  }
  return result;
}

}  // namespace trainerd

#endif  // TRAINERD_SERVER_CALL_AUDITOR_H_
