// CheckpointStore (no LibTorch): crash-safe folders, manifest checks, fallback to the
// newest valid checkpoint, rotation that keeps the best one; TrainerState JSON.
#include "worker/checkpoint/checkpoint_store.h"

#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/test_util.h"
#include "worker/trainer/trainer_state.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

CheckpointProducer Files(const std::string& tag) {
  return [tag]() -> absl::StatusOr<CheckpointFiles> {
    return CheckpointFiles{{"model.safetensors", "weights-" + tag}, {"trainer_state.json", "{}"}};
  };
}

TEST(CheckpointStore, WritesVerifiesAndReadsBack) {
  TempDir dir;
  {
    CheckpointStore store(dir.path().string(), 0);
    auto path = store.Save(10, Files("a"), {});
    ASSERT_TRUE(path.ok());
    EXPECT_EQ(*path, dir / "checkpoint-10");
    ASSERT_TRUE(store.Flush().ok());
  }
  EXPECT_TRUE(CheckpointStore::Verify(dir / "checkpoint-10").ok());
  auto files = CheckpointStore::Read(dir / "checkpoint-10");
  ASSERT_TRUE(files.ok());
  EXPECT_EQ(files->at("model.safetensors"), "weights-a");
  EXPECT_FALSE(files->count(kManifestFile));
  // No temporary folders are left behind.
  for (const auto& e : fs::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().filename().string().rfind(".", 0), std::string::npos) << e.path();
  }
}

TEST(CheckpointStore, CorruptOrIncompleteCheckpointsAreSkipped) {
  TempDir dir;
  {
    CheckpointStore store(dir.path().string(), 0);
    for (int step : {5, 10, 15}) ASSERT_TRUE(store.Save(step, Files(std::to_string(step)), {}).ok());
  }
  // checkpoint-15: a flipped byte; checkpoint-10: its manifest never got written.
  testing::WriteFile(dir / "checkpoint-15/model.safetensors", "weights-X5");
  fs::remove(dir / "checkpoint-10/MANIFEST.json");
  EXPECT_THAT(std::string(CheckpointStore::Verify(dir / "checkpoint-15").message()),
              ::testing::HasSubstr("fails its checksum"));
  std::vector<std::string> warnings;
  auto latest = CheckpointStore::LatestValid(dir.path().string(),
                                             [&](const std::string& w) { warnings.push_back(w); });
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(*latest, dir / "checkpoint-5");
  EXPECT_EQ(warnings.size(), 2u);
  testing::WriteFile(dir / "checkpoint-5/model.safetensors", "short");
  EXPECT_FALSE(CheckpointStore::LatestValid(dir.path().string(), nullptr).ok());
  EXPECT_FALSE(CheckpointStore::Read(dir / "checkpoint-5").ok());
}

TEST(CheckpointStore, RotationKeepsNewestAndProtected) {
  TempDir dir;
  {
    CheckpointStore store(dir.path().string(), 2);
    ASSERT_TRUE(store.Save(1, Files("1"), {}).ok());
    ASSERT_TRUE(store.Save(2, Files("2"), {}).ok());
    // checkpoint-2 is the best: it survives although it is old.
    for (int step : {3, 4, 5}) ASSERT_TRUE(store.Save(step, Files("x"), {dir / "checkpoint-2"}).ok());
    ASSERT_TRUE(store.Flush().ok());
  }
  std::vector<std::string> names;
  for (const auto& p : CheckpointStore::List(dir.path().string())) names.push_back(fs::path(p).filename());
  EXPECT_EQ(names, (std::vector<std::string>{"checkpoint-2", "checkpoint-5"}));
}

TEST(CheckpointStore, ReplacingAStepKeepsOneValidCopy) {
  TempDir dir;
  CheckpointStore store(dir.path().string(), 0);
  ASSERT_TRUE(store.Save(7, Files("old"), {}).ok());
  ASSERT_TRUE(store.Save(7, Files("new"), {}).ok());
  ASSERT_TRUE(store.Flush().ok());
  EXPECT_EQ(CheckpointStore::Read(dir / "checkpoint-7")->at("model.safetensors"), "weights-new");
  EXPECT_EQ(CheckpointStore::List(dir.path().string()).size(), 1u);
}

TEST(CheckpointStore, ProducerErrorsAreReported) {
  TempDir dir;
  CheckpointStore store(dir.path().string(), 0);
  ASSERT_TRUE(store.Save(1, [] { return absl::StatusOr<CheckpointFiles>(absl::InternalError("boom")); }, {}).ok());
  EXPECT_EQ(store.Flush().message(), "boom");
  EXPECT_TRUE(CheckpointStore::List(dir.path().string()).empty());
}

TEST(CheckpointStore, WriteErrorsAreReported) {
  TempDir dir;
  testing::WriteFile(dir / "file", "x");
  CheckpointStore store(dir / "file", 0);  // output_dir is a file: every write fails
  ASSERT_TRUE(store.Save(1, Files("a"), {}).ok());
  EXPECT_FALSE(store.Flush().ok());
  EXPECT_FALSE(store.Save(2, Files("b"), {}).ok());
}

// Two ranks' checkpoint writers in one process: AllGather meets the other rank's call on
// a shared board (the worker's GroupCheckpointWriters does it over a process group).
class Board {
 public:
  explicit Board(int ranks) : ranks_(ranks) {}
  std::vector<std::string> Exchange(int rank, const std::string& bytes) {
    std::unique_lock<std::mutex> lock(mu_);
    const int64_t round = round_;
    auto& slots = rounds_[round];
    slots.resize(ranks_);
    slots[rank] = bytes;
    if (++arrived_ == ranks_) {
      arrived_ = 0;
      ++round_;
      done_.notify_all();
    } else {
      done_.wait(lock, [&] { return round_ != round; });
    }
    return rounds_[round];
  }

 private:
  const int ranks_;
  std::mutex mu_;
  std::condition_variable done_;
  int arrived_ = 0;
  int64_t round_ = 0;
  std::map<int64_t, std::vector<std::string>> rounds_;
};

class BoardWriters final : public CheckpointWriters {
 public:
  BoardWriters(Board* board, int rank) : board_(board), rank_(rank) {}
  int rank() const override { return rank_; }
  absl::StatusOr<std::vector<std::string>> AllGather(const std::string& bytes) override {
    return board_->Exchange(rank_, bytes);
  }

 private:
  Board* board_;
  int rank_;
};

TEST(CheckpointStore, RanksWriteTheirOwnFilesIntoOneCheckpoint) {
  TempDir dir;
  Board board(2);
  BoardWriters rank0(&board, 0), rank1(&board, 1);
  {
    CheckpointStore first(dir.path().string(), 0, &rank0), second(dir.path().string(), 0, &rank1);
    ASSERT_TRUE(first.Save(5, [] { return absl::StatusOr<CheckpointFiles>(CheckpointFiles{
                                         {"index.json", "{}"}, {"shards/rank-0", "zero"}}); }, {}).ok());
    ASSERT_TRUE(second.Save(5, [] { return absl::StatusOr<CheckpointFiles>(CheckpointFiles{
                                          {"shards/rank-1", "one"}}); }, {}).ok());
    EXPECT_TRUE(first.Flush().ok());
    EXPECT_TRUE(second.Flush().ok());
  }
  // One folder, one manifest over both ranks' files.
  EXPECT_TRUE(CheckpointStore::Verify(dir / "checkpoint-5").ok());
  auto all = CheckpointStore::Read(dir / "checkpoint-5", /*with_folders=*/true);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 3u);
  EXPECT_EQ(all->at("shards/rank-1"), "one");
  auto top = CheckpointStore::Read(dir / "checkpoint-5");
  ASSERT_TRUE(top.ok());
  EXPECT_EQ(top->size(), 1u) << "the ranks' folders stay on disk unless asked for";
  // A rank's file that goes bad fails the whole checkpoint's verification.
  testing::WriteFile(dir / "checkpoint-5/shards/rank-1", "two");
  EXPECT_FALSE(CheckpointStore::Verify(dir / "checkpoint-5").ok());
}

TEST(CheckpointStore, ARankThatCannotWriteLeavesNoCheckpoint) {
  TempDir dir;
  Board board(2);
  BoardWriters rank0(&board, 0), rank1(&board, 1);
  {
    CheckpointStore first(dir.path().string(), 0, &rank0), second(dir.path().string(), 0, &rank1);
    ASSERT_TRUE(first.Save(5, Files("a"), {}).ok());
    ASSERT_TRUE(second.Save(5, [] { return absl::StatusOr<CheckpointFiles>(
                                         absl::ResourceExhaustedError("no space left on device")); }, {}).ok());
    const absl::Status s0 = first.Flush(), s1 = second.Flush();
    EXPECT_EQ(s0.code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(std::string(s0.message()), ::testing::HasSubstr("rank 1: no space left on device"));
    EXPECT_EQ(s1.code(), absl::StatusCode::kResourceExhausted);
  }
  EXPECT_TRUE(fs::is_empty(dir.path())) << "neither the checkpoint nor a temporary folder is left";
}

TEST(TrainerStateJson, RoundTripsInHfSchema) {
  TrainerState s;
  s.global_step = 40;
  s.epoch = 1.25;
  s.max_steps = 100;
  s.log_history = {{{"loss", 0.5}, {"step", 10}, {"epoch", 0.3}}, {{"eval_loss", 0.25}, {"step", 20}}};
  s.best_metric = 0.25;
  s.best_global_step = 20;
  s.best_model_checkpoint = "out/checkpoint-20";
  s.stateful_callbacks["EarlyStoppingCallback"] = {{{"early_stopping_patience", 3}},
                                                   {{"early_stopping_patience_counter", 1}}};
  const std::string text = TrainerStateToJson(s);
  EXPECT_THAT(text, ::testing::HasSubstr("\"global_step\": 40"));
  EXPECT_THAT(text, ::testing::HasSubstr("\"step\": 10\n"));  // an integer, as in HF
  EXPECT_THAT(text, ::testing::HasSubstr("\"is_world_process_zero\": true"));
  auto back = TrainerStateFromJson(text);
  ASSERT_TRUE(back.ok()) << back.status() << text;
  EXPECT_EQ(back->global_step, 40);
  EXPECT_DOUBLE_EQ(back->epoch, 1.25);
  EXPECT_EQ(back->log_history.size(), 2u);
  EXPECT_DOUBLE_EQ(back->log_history[0].at("loss"), 0.5);
  EXPECT_EQ(*back->best_global_step, 20);
  EXPECT_EQ(*back->best_model_checkpoint, "out/checkpoint-20");
  EXPECT_DOUBLE_EQ(back->stateful_callbacks["EarlyStoppingCallback"].attributes["early_stopping_patience_counter"], 1);
  EXPECT_FALSE(TrainerStateFromJson("[1, 2]").ok());
  EXPECT_FALSE(TrainerStateFromJson("{\"epoch\": 1}").ok());
}

// What a worker killed mid-save leaves: its temporary folder goes; a folder it had moved
// aside comes back if the new copy never took its name, and goes if it did; folders of
// live processes (this one) stay.
TEST(CheckpointStore, RecoverInterruptedWritesAfterADeadWriter) {
  TempDir dir;
  const std::string dead = std::to_string(std::stoll(testing::ReadFile("/proc/sys/kernel/pid_max")) + 1);
  const std::string alive = std::to_string(::getpid());
  for (const std::string& name : std::vector<std::string>{".checkpoint-5.tmp-" + dead, ".checkpoint-7.old-" + dead,
                                                          ".checkpoint-3.old-" + dead, "checkpoint-3",
                                                          ".checkpoint-9.tmp-" + alive, ".hidden.tmp-x", "checkpoint-1"}) {
    fs::create_directories(dir / name);
  }
  testing::WriteFile(dir / (".checkpoint-7.old-" + dead + "/model.safetensors"), "only copy");
  const std::vector<std::string> done = CheckpointStore::RecoverInterruptedWrites(dir.path().string());
  EXPECT_EQ(done.size(), 3u) << ::testing::PrintToString(done);
  EXPECT_FALSE(fs::exists(dir / (".checkpoint-5.tmp-" + dead)));
  EXPECT_EQ(testing::ReadFile(dir / "checkpoint-7/model.safetensors"), "only copy");
  EXPECT_FALSE(fs::exists(dir / (".checkpoint-3.old-" + dead)));
  for (const char* kept : {"checkpoint-3", "checkpoint-1", ".hidden.tmp-x"}) EXPECT_TRUE(fs::exists(dir / kept));
  EXPECT_TRUE(fs::exists(dir / (".checkpoint-9.tmp-" + alive)));
}

}  // namespace
}  // namespace trainerd
