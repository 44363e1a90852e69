// Users as the operator manages them: the admin a fresh data root gets, and the
// `trainerd user add|list|rotate|revoke` commands, which work on the data root's database
// directly (like sqlite3), also while the daemon runs.
#ifndef TRAINERD_SERVER_USER_ADMIN_H_
#define TRAINERD_SERVER_USER_ADMIN_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/data_root.h"
#include "storage/audit_log.h"
#include "storage/user_store.h"

namespace trainerd {

// The name of the admin user created on first start (its token: AdminTokenPath).
inline constexpr char kFirstAdminName[] = "admin";

// On a database without users: creates user "admin", with the token in
// `admin_token_file` when one is given (e.g. a Kubernetes Secret; group-readable is
// accepted, others-readable not), else a new token written to AdminTokenPath (mode
// 0600). Does nothing when any user exists (an operator who deleted the file or revoked
// the admin meant it). Returns whether it created one.
absl::StatusOr<bool> EnsureFirstAdmin(UserStore* users, AuditLog* audit, const std::string& data_root,
                                      const std::string& admin_token_file);

// OK when `name` can be a user name: 1-64 of [A-Za-z0-9._-], not starting with '-' or '.'.
absl::Status CheckUserName(const std::string& name);

// `trainerd user add NAME [--admin]`: adds the user and returns its new token (shown once).
absl::StatusOr<std::string> AddUser(UserStore* users, AuditLog* audit, const std::string& name, bool admin);
// `trainerd user rotate NAME`: a new token for the same account (the old ones stop
// working; the jobs stay the user's). Returns the new token (shown once).
absl::StatusOr<std::string> RotateToken(UserStore* users, AuditLog* audit, const std::string& name);
// `trainerd user revoke NAME`.
absl::Status RevokeUser(UserStore* users, AuditLog* audit, const std::string& name);
// `trainerd user list`: a table of users on `out`.
absl::Status ListUsers(UserStore* users, std::ostream& out);
// `trainerd user quota NAME SIZE`: what NAME's uploaded files may hold (0: --user-quota).
absl::Status SetUserQuota(UserStore* users, AuditLog* audit, const std::string& name, int64_t quota_bytes);

}  // namespace trainerd

#endif  // TRAINERD_SERVER_USER_ADMIN_H_
