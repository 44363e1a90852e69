// AuditLog: who did what to which job, and which calls were refused, in the daemon's
// SQLite file. Bounded: the oldest events are dropped beyond kMaxEvents, so that a
// flood of refused calls cannot fill the disk.
//
// Thread-safe: one connection guarded by a mutex.
#ifndef TRAINERD_STORAGE_AUDIT_LOG_H_
#define TRAINERD_STORAGE_AUDIT_LOG_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/v1/job_service.pb.h"

struct sqlite3;

namespace trainerd {

class AuditLog {
 public:
  static constexpr int64_t kMaxEvents = 100000;

  // Opens the database at `path` (creating and migrating it if needed).
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(const std::string& path);
  ~AuditLog();

  // Appends `event` (its seq is assigned here; time_unix_ms is set when 0).
  absl::Status Append(trainer::v1::AuditEvent event);
  // Newest first: at most `limit` events with seq < before_seq (0: from the newest).
  absl::StatusOr<std::vector<trainer::v1::AuditEvent>> List(int limit, int64_t before_seq);

 private:
  explicit AuditLog(sqlite3* db) : db_(db) {}

  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  int64_t appended_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace trainerd

#endif  // TRAINERD_STORAGE_AUDIT_LOG_H_
