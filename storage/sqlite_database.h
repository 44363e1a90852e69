// Opening trainerd's SQLite file: the pragmas every connection needs and the schema
// migration, shared by every store over that file (each holds its own connection;
// WAL lets a reader in one process run beside the writer in another, so `trainerd
// user add` works while the daemon runs).
#ifndef TRAINERD_STORAGE_SQLITE_DATABASE_H_
#define TRAINERD_STORAGE_SQLITE_DATABASE_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct sqlite3;

namespace trainerd {

// Opens (creating if needed) the database at `path` in WAL mode with a busy timeout,
// and migrates it to CurrentSchemaVersion() (in one transaction per step; a second
// process opening the file at the same time waits and then finds the work done).
// The caller owns the connection and closes it with sqlite3_close. A file written by a
// newer trainerd is refused with FAILED_PRECONDITION.
absl::StatusOr<sqlite3*> OpenDatabase(const std::string& path);

// Runs `body` in a write transaction (BEGIN IMMEDIATE): committed when it returns OK,
// rolled back (and its error returned) otherwise.
absl::Status InTransaction(sqlite3* db, const std::function<absl::Status()>& body);

// Runs SQL that returns no rows.
absl::Status ExecSql(sqlite3* db, const std::string& sql);

}  // namespace trainerd

#endif  // TRAINERD_STORAGE_SQLITE_DATABASE_H_
