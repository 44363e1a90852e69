#include "server/api/call_auditor.h"

#include <spdlog/spdlog.h>

#include "server/api/status_util.h"

namespace trainerd {

void CallAuditor::Record(const char* method, const grpc::ServerContextBase& context, const std::string& user,
                         const std::string& job_id, const grpc::Status& status) const {
  trainer::v1::AuditEvent event;
  event.set_user(user);
  event.set_action(method);
  event.set_job_id(job_id.substr(0, 64));
  event.set_code(StatusCodeName(status.error_code()));
  const std::string& message = status.error_message();
  event.set_detail(message.substr(0, std::min<size_t>(512, message.find('\n'))));
  event.set_peer(context.peer());
  spdlog::info("audit user={} action={} job={} code={} peer={}", user.empty() ? "-" : user, method,
               event.job_id().empty() ? "-" : event.job_id(), event.code(), event.peer());
  if (absl::Status s = log_->Append(std::move(event)); !s.ok()) {
    spdlog::error("audit log: {}", std::string(s.message()));
  }
}

void CallAuditor::RecordIfRefused(const char* method, const grpc::ServerContextBase& context, const std::string& job_id,
                                  const grpc::Status& status) const {
  const grpc::StatusCode code = status.error_code();
  if (code == grpc::StatusCode::UNAUTHENTICATED || code == grpc::StatusCode::PERMISSION_DENIED ||
      code == grpc::StatusCode::FAILED_PRECONDITION) {
    Record(method, context, "", job_id, status);
  }
}

}  // namespace trainerd
