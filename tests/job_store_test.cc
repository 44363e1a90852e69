// JobStore on a real SQLite file: migrations, jobs and paging, output batches with
// gap-free sequence numbers and tail offsets, reopening, deletion.
#include "storage/job_store.h"

#include <sqlite3.h>

#include <algorithm>

#include <gtest/gtest.h>

#include "storage/audit_log.h"
#include "storage/schema.h"
#include "storage/user_store.h"
#include "tests/test_util.h"

namespace trainerd {
namespace {

using testing::TempDir;
using trainer::v1::Job;

Job MakeJob(const std::string& id, int64_t created, trainer::v1::JobState state) {
  Job j;
  j.set_id(id);
  j.set_name("name-" + id);
  j.set_created_unix_ms(created);
  j.set_state(state);
  return j;
}

OutputBatch Lines(const std::string& job, const std::string& key, int64_t offset, int n, const std::string& level) {
  OutputBatch b;
  b.job_id = job;
  b.tail_key = key;
  b.new_offset = offset;
  for (int i = 0; i < n; ++i) {
    trainer::v1::LogLine l;
    l.set_text("line " + std::to_string(i));
    l.set_level(level);
    l.set_rank(i % 2);
    b.lines.push_back(l);
  }
  trainer::v1::MetricPoint m;
  m.set_name("loss");
  m.set_split("train");
  m.set_step(offset);
  m.set_value(1.0 / (offset + 1));
  b.metrics.push_back(m);
  return b;
}

TEST(JobStore, MigratesAndKeepsDataAcrossReopen) {
  TempDir dir;
  {
    auto store = JobStore::Open(dir / "trainerd.db");
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ(*(*store)->schema_version(), CurrentSchemaVersion());
    ASSERT_TRUE((*store)->PutJob(MakeJob("a", 1, trainer::v1::RUNNING)).ok());
    OutputBatch b = Lines("a", "a/attempt-1/rank0.log", 100, 3, "info");
    ASSERT_TRUE((*store)->AppendOutput(&b).ok());
  }
  auto store = JobStore::Open(dir / "trainerd.db");
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->GetJob("a")->name(), "name-a");
  EXPECT_EQ(*(*store)->TailOffset("a/attempt-1/rank0.log"), 100);
  EXPECT_EQ((*store)->ReadLogs("a", 1, 10, std::nullopt, "").value().back().seq(), 3);
  EXPECT_EQ((*store)->GetJob("zzz").status().code(), absl::StatusCode::kNotFound);
}

TEST(JobStore, ListsNewestFirstWithPagesAndStateFilter) {
  TempDir dir;
  auto store = *JobStore::Open(dir / "db");
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(store->PutJob(MakeJob("j" + std::to_string(i), i * 10,
                                      i % 2 ? trainer::v1::QUEUED : trainer::v1::SUCCEEDED)).ok());
  }
  auto page1 = *store->ListJobs({}, 0, 2, 0, "");
  ASSERT_EQ(page1.size(), 2u);
  EXPECT_EQ(page1[0].id(), "j5");
  EXPECT_EQ(page1[1].id(), "j4");
  auto page2 = *store->ListJobs({}, 0, 2, page1.back().created_unix_ms(), page1.back().id());
  EXPECT_EQ(page2[0].id(), "j3");
  auto queued = *store->ListJobs({trainer::v1::QUEUED}, 0, 10, 0, "");
  EXPECT_EQ(queued.size(), 3u);
  auto oldest_first = *store->JobsInStates({trainer::v1::QUEUED});
  EXPECT_EQ(oldest_first.front().id(), "j1");
}

TEST(JobStore, OutputGetsGapFreeSequenceNumbers) {
  TempDir dir;
  auto store = *JobStore::Open(dir / "db");
  OutputBatch a = Lines("j", "j/r0", 10, 4, "info");
  OutputBatch b = Lines("j", "j/r0", 20, 3, "warning");
  ASSERT_TRUE(store->AppendOutput(&a).ok());
  ASSERT_TRUE(store->AppendOutput(&b).ok());
  EXPECT_EQ(b.lines.front().seq(), 5);
  auto all = *store->ReadLogs("j", 1, 100, std::nullopt, "");
  ASSERT_EQ(all.size(), 7u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].seq(), static_cast<int64_t>(i + 1));
  EXPECT_EQ(store->ReadLogs("j", 6, 100, std::nullopt, "")->size(), 2u);
  EXPECT_EQ(store->ReadLogs("j", 1, 100, std::nullopt, "warning")->size(), 3u);
  EXPECT_EQ(store->ReadLogs("j", 1, 100, 1, "")->size(), 3u);  // ranks 1 of each batch
  EXPECT_EQ(store->ReadLogs("j", 1, 2, std::nullopt, "")->size(), 2u);
  EXPECT_EQ(*store->TailOffset("j/r0"), 20);
  EXPECT_EQ(store->ReadMetrics("j", "loss", "train")->size(), 2u);
  EXPECT_EQ(store->ReadMetrics("j", "", "eval")->size(), 0u);
  EXPECT_EQ(*store->CountMetrics("j"), 2);
  // A follower that has the first point reads the second, then nothing until more come.
  int64_t after = -1;
  auto rest = *store->ReadMetricsAfter("j", /*skip=*/1, &after, 100);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].step(), 20);
  EXPECT_TRUE(store->ReadMetricsAfter("j", 1, &after, 100)->empty());
  OutputBatch more;
  more.job_id = "j";
  more.tail_key = "j/r0";
  more.new_offset = 30;
  trainer::v1::MetricPoint point;
  point.set_name("loss");
  point.set_split("train");
  for (int64_t step : {30, 40, 50}) {
    point.set_step(step);
    more.metrics.push_back(point);
  }
  ASSERT_TRUE(store->AppendOutput(&more).ok());
  auto page = *store->ReadMetricsAfter("j", 1, &after, 2);  // a limit: the rest on the next read
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].step(), 30);
  EXPECT_EQ(store->ReadMetricsAfter("j", 1, &after, 2)->at(0).step(), 50);
  // One that has them all (or more than there are) starts after the last.
  int64_t fresh = -1;
  EXPECT_TRUE(store->ReadMetricsAfter("j", 99, &fresh, 100)->empty());
  int64_t from_start = -1;
  EXPECT_EQ(store->ReadMetricsAfter("j", 0, &from_start, 100)->size(), 5u);
}

TEST(JobStore, CheckpointsAndDelete) {
  TempDir dir;
  auto store = *JobStore::Open(dir / "db");
  ASSERT_TRUE(store->PutJob(MakeJob("j", 1, trainer::v1::SUCCEEDED)).ok());
  trainer::v1::Checkpoint c;
  c.set_step(20);
  c.set_path("/x/checkpoint-20");
  ASSERT_TRUE(store->PutCheckpoint("j", c).ok());
  c.set_step(10);
  ASSERT_TRUE(store->PutCheckpoint("j", c).ok());
  auto list = *store->ListCheckpoints("j");
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].step(), 10);
  OutputBatch b = Lines("j", "j/r0", 5, 2, "info");
  ASSERT_TRUE(store->AppendOutput(&b).ok());
  ASSERT_TRUE(store->DeleteJob("j").ok());
  EXPECT_FALSE(store->GetJob("j").ok());
  EXPECT_TRUE(store->ListCheckpoints("j")->empty());
  EXPECT_TRUE(store->ReadLogs("j", 1, 10, std::nullopt, "")->empty());
  EXPECT_EQ(*store->TailOffset("j/r0"), 0);
}

}  // namespace
}  // namespace trainerd

namespace trainerd {
namespace {

TEST(UserStore, AddsRevokesAndFindsUsersByTokenHash) {
  testing::TempDir dir;
  auto users = UserStore::Open(dir / "trainerd.db");
  ASSERT_TRUE(users.ok()) << users.status();
  ASSERT_TRUE((*users)->AddUser("alice", false, "hash-a").ok());
  ASSERT_TRUE((*users)->AddUser("root", true, "hash-r").ok());
  EXPECT_EQ((*users)->AddUser("alice", false, "hash-x").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ((*users)->FindByTokenHash("hash-a")->name, "alice");
  EXPECT_TRUE((*users)->FindByTokenHash("hash-r")->admin);
  EXPECT_EQ((*users)->FindByTokenHash("hash-x").status().code(), absl::StatusCode::kNotFound);
  // A second connection (another process: `trainerd user revoke`) sees the same file.
  auto other = UserStore::Open(dir / "trainerd.db");
  ASSERT_TRUE((*other)->RevokeUser("alice").ok());
  EXPECT_EQ((*other)->RevokeUser("nobody").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*users)->FindByTokenHash("hash-a").status().code(), absl::StatusCode::kNotFound);
  auto list = (*users)->ListUsers();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_GT((*list)[0].revoked_unix_ms, 0);
  // Re-added, alice is active again with her new token only, as a new account: ids
  // are never given again.
  const int64_t first_id = (*list)[0].id;
  ASSERT_TRUE((*users)->AddUser("alice", false, "hash-b").ok());
  EXPECT_EQ((*users)->FindByTokenHash("hash-b")->name, "alice");
  EXPECT_GT((*users)->FindByTokenHash("hash-b")->id, std::max(first_id, (*users)->FindByTokenHash("hash-r")->id));
  EXPECT_EQ((*users)->FindByTokenHash("hash-a").status().code(), absl::StatusCode::kNotFound);
  // A rotated token keeps the account.
  const int64_t id = (*users)->FindByTokenHash("hash-b")->id;
  ASSERT_TRUE((*users)->ReplaceTokens("alice", "hash-c").ok());
  EXPECT_EQ((*users)->FindByTokenHash("hash-c")->id, id);
  EXPECT_EQ((*users)->FindByTokenHash("hash-b").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*users)->ReplaceTokens("nobody", "hash-d").code(), absl::StatusCode::kNotFound);
}

// A database of schema 4 (jobs owned by a name) migrates: each job belongs to the
// account that holds its owner's name, and a job of an unknown name to nobody (admins).
TEST(JobStore, MigrationGivesJobsTheirOwnersAccount) {
  TempDir dir;
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir / "trainerd.db").c_str(), &db), SQLITE_OK);
    for (int v = 0; v < 4; ++v) ASSERT_EQ(sqlite3_exec(db, SchemaMigrations()[v].c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    Job owned = MakeJob("a", 1, trainer::v1::SUCCEEDED), stray = MakeJob("b", 2, trainer::v1::SUCCEEDED);
    owned.set_owner("carol");
    stray.set_owner("gone");
    const std::string sql = "PRAGMA user_version = 4;"
                            "INSERT INTO users (name, admin, created_ms) VALUES ('root', 1, 1), ('carol', 0, 1);";
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    for (const Job& job : {owned, stray}) {
      sqlite3_stmt* st = nullptr;
      ASSERT_EQ(sqlite3_prepare_v2(db, "INSERT INTO jobs (id, state, priority, created_ms, owner, job) VALUES "
                                       "(?, 4, 0, 1, ?, ?)", -1, &st, nullptr), SQLITE_OK);
      const std::string blob = job.SerializeAsString();
      sqlite3_bind_text(st, 1, job.id().c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 2, job.owner().c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_blob(st, 3, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
      ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
      sqlite3_finalize(st);
    }
    sqlite3_close(db);
  }
  auto opened = JobStore::Open(dir / "trainerd.db");
  ASSERT_TRUE(opened.ok()) << opened.status();
  auto store = *std::move(opened);
  auto users = *UserStore::Open(dir / "trainerd.db");
  int64_t carol = 0;
  const std::vector<UserRecord> listed = *users->ListUsers();
  for (const UserRecord& u : listed) {
    if (u.name == "carol") carol = u.id;
  }
  ASSERT_GT(carol, 0);
  EXPECT_EQ(store->GetJob("a")->owner_id(), carol);
  EXPECT_EQ(store->GetJob("b")->owner_id(), 0);
  EXPECT_EQ(store->ListJobs({}, carol, 10, 0, "")->size(), 1u);
  // A new account for the name after a revoke does not get the old jobs.
  ASSERT_TRUE(users->AddUser("dora", false, "hash-d").ok());
  EXPECT_GT(users->FindByTokenHash("hash-d")->id, carol);
}

TEST(AuditLog, ListsNewestFirstWithPages) {
  testing::TempDir dir;
  auto audit = AuditLog::Open(dir / "trainerd.db");
  ASSERT_TRUE(audit.ok());
  for (int i = 0; i < 5; ++i) {
    trainer::v1::AuditEvent e;
    e.set_action(absl::StrCat("call", i));
    ASSERT_TRUE((*audit)->Append(e).ok());
  }
  auto page = *(*audit)->List(2, 0);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].action(), "call4");
  EXPECT_GT(page[0].time_unix_ms(), 0);
  auto next = *(*audit)->List(10, page[1].seq());
  ASSERT_EQ(next.size(), 3u);
  EXPECT_EQ(next[0].action(), "call2");
}

}  // namespace
}  // namespace trainerd
