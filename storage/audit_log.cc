#include "storage/audit_log.h"

#include <sqlite3.h>

#include <chrono>

#include "storage/sqlite_database.h"
#include "storage/sqlite_statement.h"

namespace trainerd {

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& path) {
  absl::StatusOr<sqlite3*> db = OpenDatabase(path);
  if (!db.ok()) return db.status();
  return std::unique_ptr<AuditLog>(new AuditLog(*db));
}

AuditLog::~AuditLog() {
  absl::MutexLock lock(&mu_);
  sqlite3_close(db_);
}

absl::Status AuditLog::Append(trainer::v1::AuditEvent event) {
  if (event.time_unix_ms() == 0) {
    event.set_time_unix_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count());
  }
  event.clear_seq();  // the row id is the sequence number
  absl::MutexLock lock(&mu_);
  Statement st(db_, "INSERT INTO audit (time_ms, event) VALUES (?, ?)");
  st.Bind(1, event.time_unix_ms()).BindBlob(2, event.SerializeAsString());
  if (absl::Status s = st.Run(); !s.ok()) return s;
  // Trimming every thousand events keeps the table near its bound at little cost.
  if (++appended_ % 1000 == 0) {
    Statement trim(db_, "DELETE FROM audit WHERE seq <= (SELECT MAX(seq) FROM audit) - ?");
    trim.Bind(1, kMaxEvents);
    return trim.Run();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<trainer::v1::AuditEvent>> AuditLog::List(int limit, int64_t before_seq) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, before_seq > 0 ? "SELECT seq, event FROM audit WHERE seq < ?2 ORDER BY seq DESC LIMIT ?1"
                                   : "SELECT seq, event FROM audit ORDER BY seq DESC LIMIT ?1");
  st.Bind(1, int64_t{limit});
  if (before_seq > 0) st.Bind(2, before_seq);
  std::vector<trainer::v1::AuditEvent> out;
  while (st.Step()) {
    trainer::v1::AuditEvent e;
    if (!e.ParseFromString(st.Blob(1))) continue;
    e.set_seq(st.Int(0));
    out.push_back(std::move(e));
  }
  if (absl::Status s = st.Done(); !s.ok()) return s;
  return out;
}

}  // namespace trainerd
