#include "storage/user_store.h"

#include <sqlite3.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "storage/sqlite_database.h"
#include "storage/sqlite_statement.h"

namespace trainerd {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

absl::StatusOr<std::unique_ptr<UserStore>> UserStore::Open(const std::string& path) {
  absl::StatusOr<sqlite3*> db = OpenDatabase(path);
  if (!db.ok()) return db.status();
  return std::unique_ptr<UserStore>(new UserStore(*db));
}

UserStore::UserStore(sqlite3* db)
    : db_(db),
      find_by_token_(std::make_unique<Statement>(
          db, "SELECT u.name, u.admin, u.created_ms, u.revoked_ms, u.id, u.quota_bytes FROM tokens t JOIN users u "
              "ON u.name = t.user "
              "WHERE t.sha256 = ? AND u.revoked_ms = 0")) {}

UserStore::~UserStore() {
  absl::MutexLock lock(&mu_);
  find_by_token_.reset();  // finalized before the connection closes
  sqlite3_close(db_);
}

absl::Status UserStore::AddUser(const std::string& name, bool admin, const std::string& token_sha256) {
  absl::MutexLock lock(&mu_);
  sqlite3* const db = db_;  // the transaction's body runs under this lock
  return InTransaction(db, [&]() -> absl::Status {
    Statement existing(db, "SELECT revoked_ms FROM users WHERE name = ?");
    existing.Bind(1, name);
    if (existing.Step()) {
      if (existing.Int(0) == 0) return absl::AlreadyExistsError(absl::StrCat("user ", name, " exists"));
    } else if (absl::Status s = existing.Done(); !s.ok()) {
      return s;
    }
    const int64_t now = NowMs();
    // Rows are never deleted, so the next id is above every id ever given.
    Statement user(db, "INSERT OR REPLACE INTO users (name, admin, created_ms, revoked_ms, id) "
                       "VALUES (?, ?, ?, 0, (SELECT COALESCE(MAX(id), 0) + 1 FROM users))");
    user.Bind(1, name).Bind(2, int64_t{admin ? 1 : 0}).Bind(3, now);
    if (absl::Status s = user.Run(); !s.ok()) return s;
    Statement token(db, "INSERT INTO tokens (sha256, user, created_ms) VALUES (?, ?, ?)");
    token.Bind(1, token_sha256).Bind(2, name).Bind(3, now);
    return token.Run();
  });
}

absl::Status UserStore::ReplaceTokens(const std::string& name, const std::string& token_sha256) {
  absl::MutexLock lock(&mu_);
  sqlite3* const db = db_;  // the transaction's body runs under this lock
  return InTransaction(db, [&]() -> absl::Status {
    Statement active(db, "SELECT 1 FROM users WHERE name = ? AND revoked_ms = 0");
    active.Bind(1, name);
    if (!active.Step()) {
      if (absl::Status s = active.Done(); !s.ok()) return s;
      return absl::NotFoundError(absl::StrCat("no active user ", name));
    }
    Statement old_tokens(db, "DELETE FROM tokens WHERE user = ?");
    old_tokens.Bind(1, name);
    if (absl::Status s = old_tokens.Run(); !s.ok()) return s;
    Statement token(db, "INSERT INTO tokens (sha256, user, created_ms) VALUES (?, ?, ?)");
    token.Bind(1, token_sha256).Bind(2, name).Bind(3, NowMs());
    return token.Run();
  });
}

absl::Status UserStore::RevokeUser(const std::string& name) {
  absl::MutexLock lock(&mu_);
  sqlite3* const db = db_;  // the transaction's body runs under this lock
  return InTransaction(db, [&]() -> absl::Status {
    Statement tokens(db, "DELETE FROM tokens WHERE user = ?");
    tokens.Bind(1, name);
    if (absl::Status s = tokens.Run(); !s.ok()) return s;
    Statement user(db, "UPDATE users SET revoked_ms = ? WHERE name = ? AND revoked_ms = 0");
    user.Bind(1, NowMs()).Bind(2, name);
    if (absl::Status s = user.Run(); !s.ok()) return s;
    if (sqlite3_changes(db) > 0) return absl::OkStatus();
    Statement known(db, "SELECT 1 FROM users WHERE name = ?");
    known.Bind(1, name);
    if (!known.Step()) return absl::NotFoundError(absl::StrCat("no user ", name));
    return absl::OkStatus();  // revoked already
  });
}

absl::Status UserStore::SetQuota(const std::string& name, int64_t quota_bytes) {
  if (quota_bytes < 0) return absl::InvalidArgumentError("quota: must not be negative");
  absl::MutexLock lock(&mu_);
  Statement st(db_, "UPDATE users SET quota_bytes = ? WHERE name = ? AND revoked_ms = 0");
  st.Bind(1, quota_bytes).Bind(2, name);
  if (absl::Status s = st.Run(); !s.ok()) return s;
  if (sqlite3_changes(db_) == 0) return absl::NotFoundError(absl::StrCat("no active user ", name));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<UserRecord>> UserStore::ListUsers() {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "SELECT name, admin, created_ms, revoked_ms, id, quota_bytes FROM users ORDER BY name");
  std::vector<UserRecord> out;
  while (st.Step()) out.push_back(UserRecord{st.Text(0), st.Int(4), st.Int(1) != 0, st.Int(2), st.Int(3), st.Int(5)});
  if (absl::Status s = st.Done(); !s.ok()) return s;
  return out;
}

absl::StatusOr<UserRecord> UserStore::FindByTokenHash(const std::string& token_sha256) {
  absl::MutexLock lock(&mu_);
  Statement& st = *find_by_token_;
  st.Reset();
  st.Bind(1, token_sha256);
  if (!st.Step()) {
    if (absl::Status s = st.Done(); !s.ok()) return s;
    return absl::NotFoundError("no such token");
  }
  UserRecord user{st.Text(0), st.Int(4), st.Int(1) != 0, st.Int(2), st.Int(3), st.Int(5)};
  st.Reset();  // ends the read transaction, so that the WAL can be checkpointed
  return user;
}

}  // namespace trainerd
