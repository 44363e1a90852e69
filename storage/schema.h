// The schema of trainerd's one SQLite file: the one home of every table, shared by the
// stores that read and write it (JobStore, UserStore, AuditLog, SweepStore).
#ifndef TRAINERD_STORAGE_SCHEMA_H_
#define TRAINERD_STORAGE_SCHEMA_H_

#include <string>
#include <vector>

namespace trainerd {

// Migrations, applied in order; entry i moves the schema from version i to i + 1.
// Never edit a released migration: append a new one.
const std::vector<std::string>& SchemaMigrations();

// The schema version this build writes.
inline int CurrentSchemaVersion() { return static_cast<int>(SchemaMigrations().size()); }

}  // namespace trainerd

#endif  // TRAINERD_STORAGE_SCHEMA_H_
