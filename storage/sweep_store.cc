#include "storage/sweep_store.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "storage/sqlite_database.h"
#include "storage/sqlite_statement.h"

namespace trainerd {
namespace {

using trainer::v1::Sweep;
using trainer::v1::Trial;
using trainer::v1::TrialDecision;

// Every row's message; a row that does not parse is corrupt and named.
template <typename Message>
absl::StatusOr<std::vector<Message>> ReadAll(Statement& st, const char* what) {
  std::vector<Message> out;
  while (st.Step()) {
    Message m;
    if (!m.ParseFromString(st.Blob(0))) return absl::DataLossError(absl::StrCat("a stored ", what, " does not parse"));
    out.push_back(std::move(m));
  }
  if (absl::Status s = st.Done(); !s.ok()) return s;
  return out;
}

absl::Status WriteTrial(sqlite3* db, const std::string& sweep_id, Trial trial) {
  trial.clear_decisions();
  Statement st(db, "INSERT OR REPLACE INTO trials (sweep_id, number, trial) VALUES (?, ?, ?)");
  st.Bind(1, sweep_id).Bind(2, int64_t{trial.number()}).BindBlob(3, trial.SerializeAsString());
  return st.Run();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SweepStore>> SweepStore::Open(const std::string& path) {
  absl::StatusOr<sqlite3*> db = OpenDatabase(path);
  if (!db.ok()) return db.status();
  return std::unique_ptr<SweepStore>(new SweepStore(*db));
}

SweepStore::~SweepStore() {
  absl::MutexLock lock(&mu_);
  sqlite3_close(db_);
}

absl::Status SweepStore::PutSweep(const Sweep& sweep) {
  Sweep stored = sweep;
  stored.clear_trials();
  absl::MutexLock lock(&mu_);
  Statement st(db_, "INSERT OR REPLACE INTO sweeps (id, owner_id, state, created_ms, sweep) VALUES (?, ?, ?, ?, ?)");
  st.Bind(1, stored.id())
      .Bind(2, stored.owner_id())
      .Bind(3, int64_t{stored.state()})
      .Bind(4, stored.created_unix_ms())
      .BindBlob(5, stored.SerializeAsString());
  return st.Run();
}

absl::StatusOr<Sweep> SweepStore::GetSweep(const std::string& id) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "SELECT sweep FROM sweeps WHERE id = ?");
  st.Bind(1, id);
  absl::StatusOr<std::vector<Sweep>> found = ReadAll<Sweep>(st, "sweep");
  if (!found.ok()) return found.status();
  if (found->empty()) return absl::NotFoundError(absl::StrCat("sweep ", id, " not found"));
  return std::move(found->front());
}

absl::StatusOr<std::vector<Sweep>> SweepStore::ListSweeps(int64_t owner_id, int limit) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, owner_id != 0
                        ? "SELECT sweep FROM sweeps WHERE owner_id = ?2 ORDER BY created_ms DESC, id DESC LIMIT ?1"
                        : "SELECT sweep FROM sweeps ORDER BY created_ms DESC, id DESC LIMIT ?1");
  st.Bind(1, int64_t{limit});
  if (owner_id != 0) st.Bind(2, owner_id);
  return ReadAll<Sweep>(st, "sweep");
}

absl::StatusOr<std::vector<Sweep>> SweepStore::SweepsInState(trainer::v1::SweepState state) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "SELECT sweep FROM sweeps WHERE state = ? ORDER BY created_ms, id");
  st.Bind(1, int64_t{state});
  return ReadAll<Sweep>(st, "sweep");
}

absl::StatusOr<std::map<trainer::v1::SweepState, int>> SweepStore::CountByState() {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "SELECT state, COUNT(*) FROM sweeps GROUP BY state");
  std::map<trainer::v1::SweepState, int> counts;
  while (st.Step()) counts[static_cast<trainer::v1::SweepState>(st.Int(0))] = static_cast<int>(st.Int(1));
  if (absl::Status s = st.Done(); !s.ok()) return s;
  return counts;
}

absl::Status SweepStore::PutTrial(const std::string& sweep_id, const Trial& trial) {
  absl::MutexLock lock(&mu_);
  return WriteTrial(db_, sweep_id, trial);
}

absl::StatusOr<std::vector<Trial>> SweepStore::Trials(const std::string& sweep_id) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "SELECT trial FROM trials WHERE sweep_id = ? ORDER BY number");
  st.Bind(1, sweep_id);
  return ReadAll<Trial>(st, "trial");
}

absl::StatusOr<TrialDecision> SweepStore::AppendDecision(const std::string& sweep_id, TrialDecision decision,
                                                         const Trial& trial) {
  absl::MutexLock lock(&mu_);
  sqlite3* const db = db_;  // the transaction's body runs under this lock
  absl::Status written = InTransaction(db, [&]() -> absl::Status {
    Statement last(db, "SELECT COALESCE(MAX(seq), 0) FROM sweep_decisions WHERE sweep_id = ?");
    last.Bind(1, sweep_id);
    if (!last.Step()) return last.Done();
    decision.set_seq(last.Int(0) + 1);
    Statement insert(db, "INSERT INTO sweep_decisions (sweep_id, seq, decision) VALUES (?, ?, ?)");
    insert.Bind(1, sweep_id).Bind(2, decision.seq()).BindBlob(3, decision.SerializeAsString());
    if (absl::Status s = insert.Run(); !s.ok()) return s;
    return WriteTrial(db, sweep_id, trial);
  });
  if (!written.ok()) return written;
  return decision;
}

absl::StatusOr<std::vector<TrialDecision>> SweepStore::Decisions(const std::string& sweep_id) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "SELECT decision FROM sweep_decisions WHERE sweep_id = ? ORDER BY seq");
  st.Bind(1, sweep_id);
  return ReadAll<TrialDecision>(st, "decision");
}

}  // namespace trainerd
