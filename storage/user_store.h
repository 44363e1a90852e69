// UserStore: trainerd's users and their access tokens, in the daemon's SQLite file.
//
// Only a token's SHA-256 is stored: a copy of the database does not hand out access.
// Tokens are random (at least 128 bits), so an unsalted fast hash is enough; the
// caller computes it (server/auth/access_token.h).
//
// Thread-safe: one connection guarded by a mutex.
#ifndef TRAINERD_STORAGE_USER_STORE_H_
#define TRAINERD_STORAGE_USER_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct sqlite3;

namespace trainerd {

class Statement;

struct UserRecord {
  std::string name;
  // The account's number, never given again: a name revoked and added again is a new
  // account with a new id (jobs belong to the id).
  int64_t id = 0;
  bool admin = false;
  int64_t created_unix_ms = 0;
  int64_t revoked_unix_ms = 0;  // 0: active
  int64_t quota_bytes = 0;      // uploaded files; 0: trainerd's --user-quota
};

class UserStore {
 public:
  // Opens the database at `path` (creating and migrating it if needed).
  static absl::StatusOr<std::unique_ptr<UserStore>> Open(const std::string& path);
  ~UserStore();

  // Adds `name` with one token. ALREADY_EXISTS for an active user; a revoked name is a
  // new account again (a new id: none of the old account's jobs), with the new token
  // and role.
  absl::Status AddUser(const std::string& name, bool admin, const std::string& token_sha256);
  // Replaces every token of the active user `name` with one new token: the same
  // account (its jobs stay its own), the old tokens stop working. NOT_FOUND for a name
  // that is not an active user.
  absl::Status ReplaceTokens(const std::string& name, const std::string& token_sha256);
  // Deletes every token of `name` and marks the user revoked; its jobs stay. NOT_FOUND
  // for a name that was never added.
  absl::Status RevokeUser(const std::string& name);
  // Sets the active user's quota for uploaded files (0: trainerd's default); NOT_FOUND
  // for a name that is not an active user.
  absl::Status SetQuota(const std::string& name, int64_t quota_bytes);
  // Every user, revoked ones included, by name.
  absl::StatusOr<std::vector<UserRecord>> ListUsers();
  // The active user holding the token with this SHA-256; NOT_FOUND otherwise.
  absl::StatusOr<UserRecord> FindByTokenHash(const std::string& token_sha256);

 private:
  explicit UserStore(sqlite3* db);

  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  // Prepared once: every authenticated call runs it, and preparing costs more than the
  // lookup itself.
  std::unique_ptr<Statement> find_by_token_ ABSL_GUARDED_BY(mu_);
};

}  // namespace trainerd

#endif  // TRAINERD_STORAGE_USER_STORE_H_
