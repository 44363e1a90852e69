#include "server/auth/user_admin.h"

#include <pwd.h>
#include <unistd.h>

#include <cctype>
#include <ctime>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/atomic_file.h"
#include "common/token_file.h"
#include "server/auth/access_token.h"

namespace trainerd {
namespace {

// Who ran a user command, for the audit log: the local account (the database file's
// permissions decide who can; there is no token).
std::string LocalOperator() {
  const struct passwd* pw = ::getpwuid(::geteuid());
  return absl::StrCat("local:", pw != nullptr ? pw->pw_name : std::to_string(::geteuid()));
}

void AuditUserChange(AuditLog* audit, const std::string& action, const std::string& name, const absl::Status& s) {
  trainer::v1::AuditEvent event;
  event.set_user(LocalOperator());
  event.set_action(action);
  event.set_code(absl::StatusCodeToString(s.code()));
  event.set_detail(s.ok() ? absl::StrCat("user ", name) : std::string(s.message()));
  event.set_peer("local");
  // The change itself is done (or refused) and reported by the caller; a lost audit
  // entry is said here.
  if (absl::Status a = audit->Append(std::move(event)); !a.ok()) {
    spdlog::warn("audit log: {} of {} not recorded: {}", action, name, std::string(a.message()));
  }
}

std::string FormatTime(int64_t unix_ms) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

absl::Status CheckUserName(const std::string& name) {
  if (name.empty() || name.size() > 64) return absl::InvalidArgumentError("user name: must be 1 to 64 characters");
  if (name[0] == '-' || name[0] == '.') return absl::InvalidArgumentError("user name: must not start with - or .");
  for (unsigned char c : name) {
    if (!(std::isalnum(c) || c == '.' || c == '_' || c == '-')) {
      return absl::InvalidArgumentError("user name: only letters, digits, '.', '_' and '-' are allowed");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> AddUser(UserStore* users, AuditLog* audit, const std::string& name, bool admin) {
  if (absl::Status s = CheckUserName(name); !s.ok()) return s;
  absl::StatusOr<std::string> token = NewAccessToken();
  if (!token.ok()) return token.status();
  absl::Status s = users->AddUser(name, admin, TokenSha256(*token));
  AuditUserChange(audit, admin ? "user add --admin" : "user add", name, s);
  if (!s.ok()) return s;
  return token;
}

absl::StatusOr<std::string> RotateToken(UserStore* users, AuditLog* audit, const std::string& name) {
  if (absl::Status s = CheckUserName(name); !s.ok()) return s;
  absl::StatusOr<std::string> token = NewAccessToken();
  if (!token.ok()) return token.status();
  absl::Status s = users->ReplaceTokens(name, TokenSha256(*token));
  AuditUserChange(audit, "user rotate", name, s);
  if (!s.ok()) return s;
  return token;
}

absl::Status RevokeUser(UserStore* users, AuditLog* audit, const std::string& name) {
  absl::Status s = users->RevokeUser(name);
  AuditUserChange(audit, "user revoke", name, s);
  return s;
}

absl::Status SetUserQuota(UserStore* users, AuditLog* audit, const std::string& name, int64_t quota_bytes) {
  absl::Status s = users->SetQuota(name, quota_bytes);
  AuditUserChange(audit, "user quota", name, s);
  return s;
}

absl::Status ListUsers(UserStore* users, std::ostream& out) {
  absl::StatusOr<std::vector<UserRecord>> list = users->ListUsers();
  if (!list.ok()) return list.status();
  out << absl::StrFormat("%-24s %-6s %-21s %-10s %s\n", "NAME", "ROLE", "CREATED", "QUOTA", "STATE");
  for (const UserRecord& u : *list) {
    const std::string quota = u.quota_bytes == 0 ? "default" : absl::StrFormat("%.1fG", u.quota_bytes / 1e9);
    out << absl::StrFormat("%-24s %-6s %-21s %-10s %s\n", u.name, u.admin ? "admin" : "user",
                           FormatTime(u.created_unix_ms), quota,
                           u.revoked_unix_ms == 0 ? "active" : "revoked " + FormatTime(u.revoked_unix_ms));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> EnsureFirstAdmin(UserStore* users, AuditLog* audit, const std::string& data_root,
                                      const std::string& admin_token_file) {
  absl::StatusOr<std::vector<UserRecord>> list = users->ListUsers();
  if (!list.ok()) return list.status();
  if (!list->empty()) return false;
  absl::StatusOr<std::string> token;
  if (!admin_token_file.empty()) {
    token = ReadTokenFile(admin_token_file, TokenFileReaders::kGroup);
    if (absl::IsNotFound(token.status())) return absl::NotFoundError(absl::StrCat(admin_token_file, ": cannot read"));
    if (!token.ok()) return token.status();
  } else {
    token = NewAccessToken();
    if (!token.ok()) return token.status();
    // The file first: a token stored without its file would leave nobody able to log in.
    if (absl::Status s = WriteFileAtomically(AdminTokenPath(data_root), *token + "\n", 0600); !s.ok()) return s;
  }
  absl::Status s = users->AddUser(kFirstAdminName, /*admin=*/true, TokenSha256(*token));
  AuditUserChange(audit, "user add --admin", kFirstAdminName, s);
  if (!s.ok()) return s;
  return true;
}

}  // namespace trainerd
