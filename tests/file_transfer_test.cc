// Uploads and downloads end to end: a real trainerd, its FileService, and the client
// trainer-cli uses (client/file_transfer.h). Transfers are checked byte for byte, resume
// after an interruption, stay inside each user's area and quota, and are audited.
#include "client/file_transfer.h"

#include <filesystem>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "spec/spec_loader.h"
#include "tests/daemon_test_util.h"
#include "tests/test_util.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::AddUser;
using testing::Daemon;
using testing::TempDir;

ClientOptions Options(Daemon& d, const std::string& token) {
  ClientOptions options;
  options.server = absl::StrCat("127.0.0.1:", d.port());
  options.token = token;
  return options;
}

// A file of `bytes` pseudo-random bytes (3 MiB spans 3 of trainerd's 1 MiB chunks).
std::string WriteData(const std::string& path, size_t bytes) {
  std::string data(bytes, '\0');
  uint32_t x = 12345;
  for (char& c : data) {
    x = x * 1664525 + 1013904223;
    c = static_cast<char>(x >> 24);
  }
  testing::WriteFile(path, data);
  return data;
}

TEST(FileTransfer, AFolderGoesUpAndComesBackByteForByte) {
  TempDir dir;
  Daemon d(dir / "root");
  TrainerClient client(Options(d, d.admin_token()));
  FileTransfer transfer(&client);
  fs::create_directories(dir / "model/sub");
  WriteData(dir / "model/weights.bin", 3 << 20);
  testing::WriteFile(dir / "model/config.json", "{}");
  testing::WriteFile(dir / "model/sub/empty.txt", "");
  auto files = transfer.Upload(dir / "model", "models/tiny");
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_EQ(files->size(), 3u);
  EXPECT_EQ((*files)[0].path(), "user://admin/models/tiny/config.json");
  auto listed = transfer.List("models");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->files_size(), 3);
  EXPECT_EQ(listed->used_bytes(), (3 << 20) + 2);
  ASSERT_TRUE(transfer.Download("models/tiny", dir / "back").ok());
  for (const char* name : {"weights.bin", "config.json", "sub/empty.txt"}) {
    EXPECT_EQ(testing::ReadFile(dir / (std::string("back/") + name)), testing::ReadFile(dir / (std::string("model/") + name)))
        << name;
  }
  // One file to a folder that exists: under its own name there.
  ASSERT_TRUE(transfer.Download("models/tiny/config.json", dir.path().string()).ok());
  EXPECT_EQ(testing::ReadFile(dir / "config.json"), "{}");
  ASSERT_TRUE(transfer.Delete("models/tiny").ok());
  EXPECT_EQ(transfer.List("")->files_size(), 0);
  // Uploads finished, downloads and deletes are in the audit log.
  TrainerClient admin(Options(d, d.admin_token()));
  auto events = admin.ListAuditEvents(50, 0);
  ASSERT_TRUE(events.ok());
  std::map<std::string, int> actions;
  for (const auto& e : *events) ++actions[e.action()];
  EXPECT_EQ(actions["FinishUpload"], 3);
  EXPECT_GE(actions["Download"], 4);
  EXPECT_EQ(actions["DeleteFile"], 1);
}

TEST(FileTransfer, InterruptedTransfersResumeWhereTheyStopped) {
  TempDir dir;
  Daemon d(dir / "root");
  TrainerClient client(Options(d, d.admin_token()));
  FileTransfer transfer(&client);
  const std::string data = WriteData(dir / "big.bin", 3 << 20);
  // Stopped after the first chunk is on its way.
  auto stopped = transfer.Upload(dir / "big.bin", "big.bin", [](int64_t, int64_t) { return false; });
  ASSERT_EQ(stopped.status().code(), absl::StatusCode::kCancelled) << stopped.status();
  EXPECT_FALSE(fs::exists(d.data_root() + "/users/admin/files/big.bin")) << "half an upload is never used";
  // Resumed: the chunk trainerd has counts as done from the start.
  int64_t first_done = -1;
  auto resumed = transfer.Upload(dir / "big.bin", "big.bin", [&](int64_t done, int64_t) {
    if (first_done < 0) first_done = done;
    return true;
  });
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(first_done, 2 << 20) << "only the two missing chunks were sent";
  EXPECT_EQ(testing::ReadFile(d.data_root() + "/users/admin/files/big.bin"), data);
  // A download stopped after its first chunk leaves DEST.part, and goes on from there.
  auto stop = transfer.Download("big.bin", dir / "got.bin", [](int64_t, int64_t) { return false; });
  ASSERT_EQ(stop.code(), absl::StatusCode::kCancelled) << stop;
  EXPECT_FALSE(fs::exists(dir / "got.bin"));
  EXPECT_EQ(fs::file_size(dir / "got.bin.part"), 1u << 20);
  int64_t resumed_at = -1;
  ASSERT_TRUE(transfer
                  .Download("big.bin", dir / "got.bin",
                            [&](int64_t done, int64_t) {
                              if (resumed_at < 0) resumed_at = done;
                              return true;
                            })
                  .ok());
  EXPECT_EQ(resumed_at, 2 << 20) << "the second chunk came first";
  EXPECT_EQ(testing::ReadFile(dir / "got.bin"), data);
  EXPECT_FALSE(fs::exists(dir / "got.bin.part"));
}

TEST(FileTransfer, EachUserHasTheirOwnAreaWithinTheQuota) {
  TempDir dir;
  Daemon d(dir / "root", {"--user-quota", "2M"});
  TrainerClient alice_client(Options(d, AddUser(d, "alice")));
  TrainerClient bob_client(Options(d, AddUser(d, "bob")));
  FileTransfer alice(&alice_client), bob(&bob_client);
  testing::WriteFile(dir / "rows.jsonl", "{\"text\": \"hello\"}\n");
  ASSERT_TRUE(alice.Upload(dir / "rows.jsonl", "rows.jsonl").ok());
  EXPECT_EQ(bob.List("")->files_size(), 0) << "bob sees his own area only";
  EXPECT_EQ(bob.List("", "alice").status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(bob.Download("rows.jsonl", dir / "stolen").code(), absl::StatusCode::kNotFound);
  // Over the quota: refused before anything is written.
  WriteData(dir / "big.bin", 3 << 20);
  auto over = alice.Upload(dir / "big.bin", "big.bin");
  ASSERT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted) << over.status();
  EXPECT_THAT(std::string(over.status().message()), HasSubstr("quota"));
  EXPECT_EQ(alice.List("")->used_bytes(), 18);
  // An admin raises alice's quota alone (`trainerd user quota`, within a second).
  auto raised = testing::RunCommand(
      absl::StrCat(testing::BuildDir(), "/server/trainerd user quota --data-root ", d.data_root(), " alice 8M"));
  ASSERT_EQ(raised.exit_code, 0) << raised.output;
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // AccessControl's cache of callers
  auto alice_big = alice.Upload(dir / "big.bin", "big.bin");
  ASSERT_TRUE(alice_big.ok()) << alice_big.status();
  EXPECT_EQ(alice.List("")->quota_bytes(), 8 << 20);
  EXPECT_EQ(bob.Upload(dir / "big.bin", "big.bin").status().code(), absl::StatusCode::kResourceExhausted);
  // Names that would leave the area.
  for (const char* bad : {"../bob/x", "/etc/passwd", "a/../../x", ".uploads/x"}) {
    EXPECT_EQ(alice.Upload(dir / "rows.jsonl", bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  // The admin may list alice's area.
  TrainerClient admin_client(Options(d, d.admin_token()));
  FileTransfer admin(&admin_client);
  auto alices = admin.List("", "alice");
  ASSERT_TRUE(alices.ok()) << alices.status();
  ASSERT_EQ(alices->files_size(), 2);
  EXPECT_EQ(alices->files(1).path(), "user://alice/rows.jsonl");
}

// A job reads its owner's uploads as user://OWNER/NAME (another user's job may not), and
// its results come back to whoever may read it.
TEST(FileTransfer, JobsReadTheirOwnersUploadsAndTheirResultsComeBack) {
  TempDir dir;
  Daemon d(dir / "root");
  TrainerClient alice_client(Options(d, AddUser(d, "alice")));
  TrainerClient bob_client(Options(d, AddUser(d, "bob")));
  FileTransfer alice(&alice_client);
  // A model folder and a JSONL dataset, as a user off trainerd's machine brings them.
  std::string rows;
  for (int i = 0; i < 48; ++i) absl::StrAppend(&rows, "{\"text\": \"fortune number ", i, " says hello to you\"}\n");
  testing::WriteFile(dir / "rows.jsonl", rows);
  ASSERT_TRUE(alice.Upload(dir / "rows.jsonl", "data/rows.jsonl").ok());
  ASSERT_TRUE(alice.Upload(testing::SourceDir() + "/tests/fixtures/hf/llama-gqa", "models/llama-gqa").ok());
  auto spec = ParseJobSpec(
      "model: {name_or_path: user://alice/models/llama-gqa}\n"
      "data: {train: {path: user://alice/data/rows.jsonl, format: jsonl}, max_seq_length: 16}\n"
      "training_args: {max_steps: 2, per_device_train_batch_size: 4, save_steps: 1, do_eval: false}\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  trainer::v1::SubmitJobRequest request;
  *request.mutable_spec() = *spec;
  auto refused = bob_client.SubmitJob(request);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("user://alice/... is alice's"));
  auto submitted = alice_client.SubmitJob(request);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  trainer::v1::Job job;
  for (int i = 0; i < 1200; ++i) {
    auto got = alice_client.GetJob(submitted->job_id());
    ASSERT_TRUE(got.ok()) << got.status();
    job = *got;
    if (job.state() == trainer::v1::SUCCEEDED || job.state() == trainer::v1::FAILED) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
  EXPECT_EQ(job.progress().step(), 2);
  // The result comes back: the final folder (without the checkpoints) and one checkpoint,
  // byte for byte what the job wrote.
  ASSERT_TRUE(alice.Download("", dir / "final", nullptr, job.id()).ok());
  ASSERT_TRUE(alice.Download("checkpoint-1", dir / "ckpt", nullptr, job.id()).ok());
  int compared = 0;
  for (const auto& [local, remote] : {std::pair{dir / "final", job.output_dir()},
                                      std::pair{dir / "ckpt", job.output_dir() + "/checkpoint-1"}}) {
    for (const auto& e : fs::recursive_directory_iterator(local)) {
      if (!e.is_regular_file()) continue;
      const std::string relative = fs::relative(e.path(), local).string();
      EXPECT_EQ(testing::ReadFile(e.path().string()), testing::ReadFile(remote + "/" + relative)) << relative;
      ++compared;
    }
  }
  EXPECT_TRUE(fs::exists(dir / "final/model.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "ckpt/trainer_state.json"));
  EXPECT_FALSE(fs::exists(dir / "final/checkpoint-1")) << "the final folder leaves the checkpoints out";
  EXPECT_GT(compared, 8);
  // Another user may not read alice's job, nor fetch its files.
  FileTransfer bob(&bob_client);
  EXPECT_EQ(bob.List("", "", job.id()).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(bob.Download("", dir / "stolen", nullptr, job.id()).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(fs::exists(dir / "stolen"));
}

}  // namespace
}  // namespace trainerd
