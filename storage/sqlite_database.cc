#include "storage/sqlite_database.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "storage/schema.h"
#include "storage/sqlite_statement.h"

namespace trainerd {
namespace {

absl::StatusOr<int> UserVersion(sqlite3* db) {
  Statement version(db, "PRAGMA user_version");
  if (!version.Step()) return version.Done();
  return static_cast<int>(version.Int(0));
}

absl::Status Migrate(sqlite3* db) {
  const auto& migrations = SchemaMigrations();
  while (true) {
    // The version is read inside the write transaction: another process may have
    // migrated the file while this one waited for the lock.
    if (absl::Status s = ExecSql(db, "BEGIN IMMEDIATE"); !s.ok()) return s;
    absl::StatusOr<int> version = UserVersion(db);
    if (!version.ok() || *version >= static_cast<int>(migrations.size())) {
      (void)ExecSql(db, "ROLLBACK");  // nothing was written
      if (!version.ok()) return version.status();
      if (*version > static_cast<int>(migrations.size())) {
        return absl::FailedPreconditionError(absl::StrCat("database schema version ", *version,
                                                          " is newer than this trainerd (", migrations.size(), ")"));
      }
      return absl::OkStatus();
    }
    const int v = *version;
    absl::Status s = ExecSql(db, migrations[v]);
    if (s.ok()) s = ExecSql(db, absl::StrCat("PRAGMA user_version = ", v + 1));
    if (!s.ok()) {
      (void)ExecSql(db, "ROLLBACK");  // the migration's own error is the one to report
      return absl::Status(s.code(), absl::StrCat("migration to schema ", v + 1, " failed: ", s.message()));
    }
    if (absl::Status c = ExecSql(db, "COMMIT"); !c.ok()) return c;
  }
}

}  // namespace

absl::Status InTransaction(sqlite3* db, const std::function<absl::Status()>& body) {
  if (absl::Status s = ExecSql(db, "BEGIN IMMEDIATE"); !s.ok()) return s;
  if (absl::Status s = body(); !s.ok()) {
    (void)ExecSql(db, "ROLLBACK");  // the body's error is the one to report
    return s;
  }
  return ExecSql(db, "COMMIT");
}

absl::Status ExecSql(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    if (sqlite3_errcode(db) == SQLITE_FULL) return absl::ResourceExhaustedError(absl::StrCat("sqlite: ", msg));
    return absl::InternalError(absl::StrCat("sqlite: ", msg));
  }
  return absl::OkStatus();
}

absl::StatusOr<sqlite3*> OpenDatabase(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("cannot open database ", path, ": ", msg));
  }
  sqlite3_busy_timeout(db, 5000);
  // WAL: readers never block the writer; NORMAL sync is durable at checkpoints and
  // safe against corruption (a power cut may lose the last transactions only).
  absl::Status s;
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON"}) {
    if (s.ok()) s = ExecSql(db, pragma);
  }
  if (s.ok()) s = Migrate(db);
  if (!s.ok()) {
    sqlite3_close(db);
    return s;
  }
  return db;
}

}  // namespace trainerd
