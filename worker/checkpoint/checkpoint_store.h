// CheckpointStore: crash-safe checkpoint folders, written in the background.
//
// A checkpoint is output_dir/checkpoint-<global_step>/ holding named files. Writing one:
//   1. the files go into output_dir/.checkpoint-<step>.tmp-<pid>/, each fsynced;
//   2. MANIFEST.json (every file's size and CRC-32) is written last and fsynced;
//   3. the folder is renamed to checkpoint-<step> and output_dir is fsynced.
// A folder without a manifest, or whose files disagree with it, is never loaded.
//
// Save() takes a function that produces the files and returns at once; a single writer
// thread calls it and puts the files on disk. The caller captures a snapshot of its
// state in that function (an in-memory copy), so training is blocked only for the copy.
// A Save() waits for the previous one to finish first. After each write, old
// checkpoints are rotated: the newest save_total_limit are kept, and never the best
// one nor the one training resumed from.
//
// Where every rank writes its own share of a checkpoint (CheckpointWriters), each rank's
// writer thread writes its files into the same temporary folder; rank 0 then writes
// one MANIFEST.json over all of them and renames the folder, so that a checkpoint is
// there for every rank or for none.
//
// This file has no LibTorch dependency: checkpoints are bytes here.
#ifndef TRAINERD_WORKER_CHECKPOINT_CHECKPOINT_STORE_H_
#define TRAINERD_WORKER_CHECKPOINT_CHECKPOINT_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "protocol/job_layout.h"

namespace trainerd {

// File name -> contents.
using CheckpointFiles = std::map<std::string, std::string>;
// Produces a checkpoint's files; runs on the writer thread.
using CheckpointProducer = std::function<absl::StatusOr<CheckpointFiles>()>;
// Runs on the writer thread once the folder is committed (or failed).
using CheckpointDone = std::function<void(const absl::Status&, const CheckpointFiles&)>;

// The ranks of a job that write each checkpoint together, seen from one rank's writer
// thread: a channel of its own, apart from training's collectives, which run at the
// same time on the main thread.
class CheckpointWriters {
 public:
  virtual ~CheckpointWriters() = default;
  virtual int rank() const = 0;
  // Every rank's `bytes`, in rank order. Every rank's writer calls it at the same point.
  virtual absl::StatusOr<std::vector<std::string>> AllGather(const std::string& bytes) = 0;
};

class CheckpointStore {
 public:
  // `save_total_limit` 0 keeps every checkpoint. With `writers` (null: this process
  // writes whole checkpoints), every rank has a store and saves the same steps; only rank
  // 0's rotates and calls on_done. `writers` must outlive the store.
  CheckpointStore(std::string output_dir, int64_t save_total_limit, CheckpointWriters* writers = nullptr);
  // Waits for the pending write.
  ~CheckpointStore();
  CheckpointStore(const CheckpointStore&) = delete;
  CheckpointStore& operator=(const CheckpointStore&) = delete;

  // Queues checkpoint-<step>, whose files `produce` makes. `keep` names checkpoint
  // folders rotation must not delete (the best one, the one resumed from). `on_done`
  // runs after the folder is committed (or failed) and older ones rotated. Returns the
  // folder's final path. If the previous write failed, returns that error and queues
  // nothing.
  absl::StatusOr<std::string> Save(int64_t step, CheckpointProducer produce,
                                   std::set<std::string> keep, CheckpointDone on_done = nullptr);

  // Waits until every queued write is on disk; returns the first error, if any.
  absl::Status Flush();

  // Checks a checkpoint folder against its manifest.
  static absl::Status Verify(const std::string& dir);
  // Verifies a checkpoint and reads the files at its top; the files in its folders (each
  // rank's shards, which the parts that need them read themselves) only `with_folders`.
  static absl::StatusOr<CheckpointFiles> Read(const std::string& dir, bool with_folders = false);
  // checkpoint-* folders of output_dir, oldest (lowest step) first.
  static std::vector<std::string> List(const std::string& output_dir);
  // The newest checkpoint that passes Verify, skipping (and reporting through `warn`)
  // any that fail. NOT_FOUND when none is valid.
  static absl::StatusOr<std::string> LatestValid(
      const std::string& output_dir, const std::function<void(const std::string&)>& warn);
  // The step of a checkpoint folder name, or -1.
  static int64_t StepOf(const std::string& dir);

  // Writes `files` into `dest` crash-safely (temporary sibling, fsync, rename),
  // replacing any existing `dest`. Used for checkpoints and model exports.
  static absl::Status WriteFolder(const std::string& dest, const CheckpointFiles& files);

  // Clears what WriteFolder leaves in `dir` when its process dies mid-write (call it
  // when a run starts, before anything is saved there): the temporary folders
  // .<name>.tmp-<pid> go, and a folder moved aside as .<name>.old-<pid> goes too, or
  // takes its name back if the process died before the new copy replaced it. Folders
  // of this process and of live processes are left alone. Returns what it changed, one
  // line each, for the log.
  static std::vector<std::string> RecoverInterruptedWrites(const std::string& dir);

 private:
  struct Job {
    int64_t step;
    CheckpointProducer produce;
    std::set<std::string> keep;
    CheckpointDone on_done;
  };
  void WriterLoop() ABSL_LOCKS_EXCLUDED(mu_);
  bool Idle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);     // nothing queued or being written
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);  // a write queued, or stopping
  void Rotate(const std::set<std::string>& keep);
  // Writes this rank's `files` (or reports its `files` error) into the folder the ranks
  // share; rank 0 commits it once every rank has written. Returns the outcome, the same
  // on every rank.
  absl::Status WriteTogether(const std::string& dest, const absl::StatusOr<CheckpointFiles>& files);

  const std::string output_dir_;
  const int64_t save_total_limit_;
  CheckpointWriters* const writers_;
  absl::Mutex mu_;
  std::optional<Job> pending_ ABSL_GUARDED_BY(mu_);
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  std::thread writer_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_CHECKPOINT_CHECKPOINT_STORE_H_
