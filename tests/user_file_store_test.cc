// Each user's storage area (server/files/user_file_store.h) on a real folder: resumable
// uploads that appear only whole and checked, the quota, hostile names.
#include "server/files/user_file_store.h"

#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/sha256.h"
#include "tests/test_util.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kChunk = 4;
constexpr int64_t kQuota = 1 << 20;

TEST(UserFileStore, AnInterruptedUploadResumesWithTheMissingChunksOnly) {
  testing::TempDir dir;
  const std::string text = "0123456789";  // chunks "0123", "4567", "89"
  {
    UserFileStore store(dir.path().string(), kChunk);
    auto begun = store.BeginUpload("alice", "data/rows.jsonl", 10, Sha256Hex(text), kQuota);
    ASSERT_TRUE(begun.ok()) << begun.status();
    EXPECT_EQ(begun->chunks, 3);
    EXPECT_THAT(begun->missing, ElementsAre(0, 1, 2));
    ASSERT_TRUE(store.WriteChunk("alice", begun->id, 0, "0123").ok());
    ASSERT_TRUE(store.Sync("alice", begun->id).ok());
    // Written but never synced: not recorded, so sent again after the interruption.
    ASSERT_TRUE(store.WriteChunk("alice", begun->id, 1, "4567").ok());
  }
  UserFileStore store(dir.path().string(), kChunk);  // a restarted trainerd
  auto again = store.BeginUpload("alice", "data/rows.jsonl", 10, Sha256Hex(text), kQuota);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_THAT(again->missing, ElementsAre(1, 2));
  EXPECT_FALSE(fs::exists(dir / "users/alice/files/data/rows.jsonl")) << "a partial upload is never visible";
  // Finishing early says what is missing.
  EXPECT_EQ(store.FinishUpload("alice", again->id).status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store.WriteChunk("alice", again->id, 1, "4567").ok());
  ASSERT_TRUE(store.WriteChunk("alice", again->id, 2, "89").ok());
  auto done = store.FinishUpload("alice", again->id);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->name, "data/rows.jsonl");
  EXPECT_EQ(done->size, 10);
  EXPECT_EQ(testing::ReadFile(dir / "users/alice/files/data/rows.jsonl"), text);
  EXPECT_FALSE(fs::exists(dir / ("users/alice/.uploads/" + again->id))) << "nothing of the upload is left behind";
  auto listed = store.List("alice", "");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "data/rows.jsonl");
  EXPECT_EQ(*store.Usage("alice"), 10);
  EXPECT_EQ(*store.PathOf("alice", "data/rows.jsonl"), dir / "users/alice/files/data/rows.jsonl");
}

TEST(UserFileStore, BytesThatDoNotMatchTheirChecksumAreDropped) {
  testing::TempDir dir;
  UserFileStore store(dir.path().string(), kChunk);
  auto begun = store.BeginUpload("alice", "x.bin", 4, Sha256Hex("good"), kQuota);
  ASSERT_TRUE(begun.ok());
  ASSERT_TRUE(store.WriteChunk("alice", begun->id, 0, "evil").ok());
  auto done = store.FinishUpload("alice", begun->id);
  EXPECT_EQ(done.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(fs::exists(dir / "users/alice/files/x.bin"));
  EXPECT_EQ(*store.Usage("alice"), 0);
  // A chunk of the wrong size, or out of range, is refused.
  auto fresh = store.BeginUpload("alice", "x.bin", 4, Sha256Hex("good"), kQuota);
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(store.WriteChunk("alice", fresh->id, 0, "goo").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.WriteChunk("alice", fresh->id, 1, "good").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.WriteChunk("alice", "0123456789abcdef0123456789abcdef", 0, "good").code(),
            absl::StatusCode::kNotFound);
}

TEST(UserFileStore, TheQuotaCountsUploadsUnderWayAndIsCheckedBeforeAnythingIsWritten) {
  testing::TempDir dir;
  UserFileStore store(dir.path().string(), kChunk);
  ASSERT_TRUE(store.BeginUpload("bob", "a.bin", 60, Sha256Hex(std::string(60, 'a')), 100).ok());
  auto over = store.BeginUpload("bob", "b.bin", 50, Sha256Hex(std::string(50, 'b')), 100);
  ASSERT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(over.status().message()), HasSubstr("over the quota of 100"));
  EXPECT_FALSE(fs::exists(dir / "users/bob/files/b.bin"));
  // Another user's area is separate.
  EXPECT_TRUE(store.BeginUpload("carol", "b.bin", 50, Sha256Hex(std::string(50, 'b')), 100).ok());
}

TEST(UserFileStore, NamesCannotLeaveTheArea) {
  for (const char* bad : {"", "../x", "/etc/passwd", "a/../../b", "a//b", ".uploads/x", "a/.hidden", "a/b/",
                          "sp ace", "new\nline"}) {
    EXPECT_EQ(UserFileStore::CheckName(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(UserFileStore::CheckName("models/qwen2-0.5b/model-00001-of-00002.safetensors").ok());
  testing::TempDir dir;
  UserFileStore store(dir.path().string(), kChunk);
  EXPECT_EQ(store.BeginUpload("../alice", "x", 1, Sha256Hex("x"), kQuota).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.BeginUpload("alice", "x", 1, "not-a-checksum", kQuota).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.WriteChunk("alice", "../../etc", 0, "x").code(), absl::StatusCode::kInvalidArgument);
}

TEST(UserFileStore, FoldersAreListedAndDeletedWhole) {
  testing::TempDir dir;
  UserFileStore store(dir.path().string(), kChunk);
  for (const char* name : {"model/config.json", "model/model.safetensors", "rows.jsonl"}) {
    auto begun = store.BeginUpload("alice", name, 2, Sha256Hex("ok"), kQuota);
    ASSERT_TRUE(begun.ok()) << name;
    ASSERT_TRUE(store.WriteChunk("alice", begun->id, 0, "ok").ok());
    ASSERT_TRUE(store.FinishUpload("alice", begun->id).ok());
  }
  auto model = store.List("alice", "model");
  ASSERT_TRUE(model.ok());
  ASSERT_EQ(model->size(), 2u);
  EXPECT_EQ((*model)[0].name, "model/config.json");
  ASSERT_TRUE(store.Delete("alice", "model").ok());
  EXPECT_EQ(store.List("alice", "")->size(), 1u);
  EXPECT_EQ(store.Delete("alice", "model").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*store.Usage("alice"), 2);
}

}  // namespace
}  // namespace trainerd
