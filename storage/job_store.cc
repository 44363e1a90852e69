#include "storage/job_store.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/sqlite_database.h"
#include "storage/sqlite_statement.h"

namespace trainerd {
namespace {

using trainer::v1::Job;

const char* kLevels[] = {"debug", "info", "warning", "error"};

// The job of a row whose columns are its serialized Job and its owner_id (which jobs
// stored before users had ids get from the column, as migration 5 set it).
bool ParseJob(Statement& st, Job* job) {
  if (!job->ParseFromString(st.Blob(0))) return false;
  if (job->owner_id() == 0) job->set_owner_id(st.Int(1));
  return true;
}

// Reads every row of a statement that selects `job, owner_id`.
absl::StatusOr<std::vector<Job>> ReadJobs(Statement& st) {
  std::vector<Job> out;
  while (st.Step()) {
    Job job;
    if (ParseJob(st, &job)) out.push_back(std::move(job));
  }
  if (absl::Status s = st.Done(); !s.ok()) return s;
  return out;
}

// A metrics row selected as (name, split, step, epoch, value, time_ms, attempt, ...).
trainer::v1::MetricPoint MetricPointOf(const Statement& st) {
  trainer::v1::MetricPoint m;
  m.set_name(st.Text(0));
  m.set_split(st.Text(1));
  m.set_step(st.Int(2));
  m.set_epoch(st.Double(3));
  m.set_value(st.Double(4));
  m.set_time_unix_ms(st.Int(5));
  m.set_attempt(static_cast<int32_t>(st.Int(6)));
  return m;
}

}  // namespace

int LogLevelRank(const std::string& level) {
  for (int i = 0; i < 4; ++i) {
    if (level == kLevels[i]) return i;
  }
  if (level == "critical" || level == "fatal") return 3;
  if (level == "warn") return 2;
  return 1;
}

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& path) {
  absl::StatusOr<sqlite3*> db = OpenDatabase(path);
  if (!db.ok()) return db.status();
  return std::unique_ptr<JobStore>(new JobStore(*db));
}

JobStore::~JobStore() {
  absl::MutexLock lock(&mu_);
  sqlite3_close(db_);
}

absl::StatusOr<int> JobStore::schema_version() {
  absl::MutexLock lock(&mu_);
  Statement version(db_, "PRAGMA user_version");
  if (!version.Step()) return version.Done();
  return static_cast<int>(version.Int(0));
}

absl::Status JobStore::PutJob(const Job& job) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "INSERT OR REPLACE INTO jobs (id, state, priority, created_ms, owner, job, owner_id) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)");
  st.Bind(1, job.id()).Bind(2, int64_t{job.state()}).Bind(3, int64_t{job.priority()})
      .Bind(4, job.created_unix_ms()).Bind(5, job.owner()).BindBlob(6, job.SerializeAsString()).Bind(7, job.owner_id());
  return st.Run();
}

absl::StatusOr<Job> JobStore::GetJob(const std::string& id) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "SELECT job, owner_id FROM jobs WHERE id = ?");
  st.Bind(1, id);
  if (!st.Step()) {
    if (absl::Status s = st.Done(); !s.ok()) return s;
    return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  }
  Job job;
  if (!ParseJob(st, &job)) return absl::DataLossError(absl::StrCat("job ", id, ": unreadable record"));
  return job;
}

absl::StatusOr<std::vector<Job>> JobStore::ListJobs(const std::vector<trainer::v1::JobState>& states,
                                                    int64_t owner_id, int limit, int64_t before_created_ms,
                                                    const std::string& before_id) {
  std::string sql = "SELECT job, owner_id FROM jobs WHERE 1";
  if (!states.empty()) {
    std::vector<std::string> values;
    for (auto s : states) values.push_back(std::to_string(static_cast<int>(s)));
    sql += absl::StrCat(" AND state IN (", absl::StrJoin(values, ","), ")");
  }
  if (before_created_ms > 0) sql += " AND (created_ms < ?1 OR (created_ms = ?1 AND id < ?2))";
  if (owner_id != 0) sql += " AND owner_id = ?3";
  sql += absl::StrCat(" ORDER BY created_ms DESC, id DESC LIMIT ", limit);
  absl::MutexLock lock(&mu_);
  Statement st(db_, sql);
  if (before_created_ms > 0) st.Bind(1, before_created_ms).Bind(2, before_id);
  if (owner_id != 0) st.Bind(3, owner_id);
  return ReadJobs(st);
}

absl::StatusOr<std::vector<Job>> JobStore::JobsInStates(const std::vector<trainer::v1::JobState>& states) {
  std::vector<std::string> values;
  for (auto s : states) values.push_back(std::to_string(static_cast<int>(s)));
  absl::MutexLock lock(&mu_);
  Statement st(db_, absl::StrCat("SELECT job, owner_id FROM jobs WHERE state IN (", absl::StrJoin(values, ","),
                                 ") ORDER BY created_ms, id"));
  return ReadJobs(st);
}

absl::Status JobStore::DeleteJob(const std::string& id) {
  absl::MutexLock lock(&mu_);
  sqlite3* const db = db_;  // the transaction's body runs under this lock
  return InTransaction(db, [&]() -> absl::Status {
    for (const char* sql : {"DELETE FROM jobs WHERE id = ?", "DELETE FROM checkpoints WHERE job_id = ?",
                            "DELETE FROM logs WHERE job_id = ?", "DELETE FROM metrics WHERE job_id = ?",
                            "DELETE FROM tails WHERE key LIKE ? || '/%'"}) {
      Statement st(db, sql);
      st.Bind(1, id);
      if (absl::Status s = st.Run(); !s.ok()) return s;
    }
    return absl::OkStatus();
  });
}

absl::Status JobStore::PutCheckpoint(const std::string& job_id, const trainer::v1::Checkpoint& checkpoint) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "INSERT OR REPLACE INTO checkpoints (job_id, step, checkpoint) VALUES (?, ?, ?)");
  st.Bind(1, job_id).Bind(2, checkpoint.step()).BindBlob(3, checkpoint.SerializeAsString());
  return st.Run();
}

absl::StatusOr<std::vector<trainer::v1::Checkpoint>> JobStore::ListCheckpoints(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "SELECT checkpoint FROM checkpoints WHERE job_id = ? ORDER BY step");
  st.Bind(1, job_id);
  std::vector<trainer::v1::Checkpoint> out;
  while (st.Step()) {
    trainer::v1::Checkpoint c;
    if (c.ParseFromString(st.Blob(0))) out.push_back(std::move(c));
  }
  if (absl::Status s = st.Done(); !s.ok()) return s;
  return out;
}

absl::Status JobStore::DeleteCheckpoint(const std::string& job_id, int64_t step) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "DELETE FROM checkpoints WHERE job_id = ? AND step = ?");
  st.Bind(1, job_id).Bind(2, step);
  return st.Run();
}

absl::Status JobStore::AppendOutput(OutputBatch* batch) {
  absl::MutexLock lock(&mu_);
  sqlite3* const db = db_;  // the transaction's body runs under this lock
  return InTransaction(db, [&]() -> absl::Status {
    int64_t seq = 0;
    {
      Statement last(db, "SELECT COALESCE(MAX(seq), 0) FROM logs WHERE job_id = ?");
      last.Bind(1, batch->job_id);
      if (!last.Step()) return last.Done();
      seq = last.Int(0);
    }
    Statement line(db, "INSERT INTO logs (job_id, seq, time_ms, rank, level, attempt, text) VALUES (?, ?, ?, ?, ?, ?, ?)");
    for (auto& l : batch->lines) {
      l.set_seq(++seq);
      line.Bind(1, batch->job_id).Bind(2, seq).Bind(3, l.time_unix_ms()).Bind(4, int64_t{l.rank()})
          .Bind(5, int64_t{LogLevelRank(l.level())}).Bind(6, int64_t{l.attempt()}).Bind(7, l.text());
      if (absl::Status s = line.Run(); !s.ok()) return s;
      line.Reset();
    }
    Statement metric(db, "INSERT INTO metrics (job_id, name, split, step, epoch, value, time_ms, attempt) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    for (const auto& m : batch->metrics) {
      metric.Bind(1, batch->job_id).Bind(2, m.name()).Bind(3, m.split()).Bind(4, m.step()).Bind(5, m.epoch())
          .Bind(6, m.value()).Bind(7, m.time_unix_ms()).Bind(8, int64_t{m.attempt()});
      if (absl::Status s = metric.Run(); !s.ok()) return s;
      metric.Reset();
    }
    if (!batch->tail_key.empty()) {
      Statement tail(db, "INSERT OR REPLACE INTO tails (key, offset) VALUES (?, ?)");
      tail.Bind(1, batch->tail_key).Bind(2, batch->new_offset);
      if (absl::Status s = tail.Run(); !s.ok()) return s;
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<int64_t> JobStore::TailOffset(const std::string& tail_key) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "SELECT offset FROM tails WHERE key = ?");
  st.Bind(1, tail_key);
  if (st.Step()) return st.Int(0);
  if (absl::Status s = st.Done(); !s.ok()) return s;
  return 0;
}

absl::StatusOr<std::vector<trainer::v1::LogLine>> JobStore::ReadLogs(const std::string& job_id, int64_t from_seq,
                                                                     int limit, std::optional<int32_t> rank,
                                                                     const std::string& min_level) {
  std::string sql = "SELECT seq, time_ms, rank, level, attempt, text FROM logs WHERE job_id = ?1 AND seq >= ?2 AND level >= ?3";
  if (rank) sql += " AND rank = ?4";
  sql += absl::StrCat(" ORDER BY seq LIMIT ", limit);
  absl::MutexLock lock(&mu_);
  Statement st(db_, sql);
  st.Bind(1, job_id).Bind(2, from_seq).Bind(3, int64_t{min_level.empty() ? 0 : LogLevelRank(min_level)});
  if (rank) st.Bind(4, int64_t{*rank});
  std::vector<trainer::v1::LogLine> out;
  while (st.Step()) {
    trainer::v1::LogLine l;
    l.set_seq(st.Int(0));
    l.set_time_unix_ms(st.Int(1));
    l.set_rank(static_cast<int32_t>(st.Int(2)));
    l.set_level(kLevels[std::clamp<int64_t>(st.Int(3), 0, 3)]);
    l.set_attempt(static_cast<int32_t>(st.Int(4)));
    l.set_text(st.Text(5));
    out.push_back(std::move(l));
  }
  if (absl::Status s = st.Done(); !s.ok()) return s;
  return out;
}

absl::StatusOr<int64_t> JobStore::SeqOfLastLogs(const std::string& job_id, int64_t n, std::optional<int32_t> rank,
                                                const std::string& min_level) {
  std::string sql = "SELECT seq FROM logs WHERE job_id = ?1 AND level >= ?2";
  if (rank) sql += " AND rank = ?4";
  sql += " ORDER BY seq DESC LIMIT 1 OFFSET ?3";
  absl::MutexLock lock(&mu_);
  Statement st(db_, sql);
  st.Bind(1, job_id).Bind(2, int64_t{min_level.empty() ? 0 : LogLevelRank(min_level)}).Bind(3, std::max<int64_t>(0, n - 1));
  if (rank) st.Bind(4, int64_t{*rank});
  if (st.Step()) return st.Int(0);
  if (absl::Status s = st.Done(); !s.ok()) return s;
  return 1;  // fewer lines than n: all of them
}

absl::StatusOr<int64_t> JobStore::CountMetrics(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "SELECT COUNT(*) FROM metrics WHERE job_id = ?1");
  st.Bind(1, job_id);
  if (st.Step()) return st.Int(0);
  if (absl::Status s = st.Done(); !s.ok()) return s;
  return 0;
}

absl::StatusOr<std::vector<trainer::v1::MetricPoint>> JobStore::ReadMetrics(const std::string& job_id,
                                                                            const std::string& name,
                                                                            const std::string& split) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "SELECT name, split, step, epoch, value, time_ms, attempt, rowid FROM metrics WHERE job_id = ?1 "
                    "AND (?2 = '' OR name = ?2) AND (?3 = '' OR split = ?3) ORDER BY rowid");
  st.Bind(1, job_id).Bind(2, name).Bind(3, split);
  std::vector<trainer::v1::MetricPoint> out;
  while (st.Step()) out.push_back(MetricPointOf(st));
  if (absl::Status s = st.Done(); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<trainer::v1::MetricPoint>> JobStore::ReadMetricsAfter(const std::string& job_id,
                                                                                 int64_t skip, int64_t* after_row,
                                                                                 int64_t limit) {
  absl::MutexLock lock(&mu_);
  if (*after_row < 0 && skip <= 0) *after_row = 0;
  if (*after_row < 0) {
    // The row of the skip-th point; with fewer points than that, the last.
    Statement find(db_, "SELECT rowid FROM metrics WHERE job_id = ?1 ORDER BY rowid LIMIT 1 OFFSET ?2");
    find.Bind(1, job_id).Bind(2, skip - 1);
    if (find.Step()) {
      *after_row = find.Int(0);
    } else {
      if (absl::Status s = find.Done(); !s.ok()) return s;
      Statement last(db_, "SELECT COALESCE(MAX(rowid), 0) FROM metrics WHERE job_id = ?1");
      last.Bind(1, job_id);
      if (!last.Step()) return last.Done();
      *after_row = last.Int(0);
    }
  }
  Statement st(db_, "SELECT name, split, step, epoch, value, time_ms, attempt, rowid FROM metrics "
                    "WHERE job_id = ?1 AND rowid > ?2 ORDER BY rowid LIMIT ?3");
  st.Bind(1, job_id).Bind(2, *after_row).Bind(3, limit);
  std::vector<trainer::v1::MetricPoint> out;
  while (st.Step()) {
    out.push_back(MetricPointOf(st));
    *after_row = st.Int(7);
  }
  if (absl::Status s = st.Done(); !s.ok()) return s;
  return out;
}

}  // namespace trainerd
