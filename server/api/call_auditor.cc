#include "server/api/call_auditor.h"

#include <spdlog/spdlog.h>

namespace trainerd {

void CallAuditor::Record(const char* method, const std::string& peer, const std::string& user,
                         const std::string& detail, const absl::Status& status) const {
  trainer::v1::AuditEvent event;
  event.set_user(user);
  event.set_action(method);
  event.set_job_id(detail.substr(0, 64));
  event.set_code(absl::StatusCodeToString(status.code()));
  const std::string message(status.message());
  event.set_detail(message.substr(0, std::min<size_t>(512, message.find('\n'))));
  event.set_peer(peer);
  spdlog::info("audit user={} action={} job={} code={} peer={}", user.empty() ? "-" : user, method,
               event.job_id().empty() ? "-" : event.job_id(), event.code(), event.peer());
  if (absl::Status s = log_->Append(std::move(event)); !s.ok()) {
    spdlog::error("audit log: {}", std::string(s.message()));
  }
}

void CallAuditor::RecordIfRefused(const char* method, const std::string& peer, const std::string& detail,
                                  const absl::Status& status) const {
  if (absl::IsUnauthenticated(status) || absl::IsPermissionDenied(status) || absl::IsFailedPrecondition(status)) {
    Record(method, peer, "", detail, status);
  }
}

}  // namespace trainerd
