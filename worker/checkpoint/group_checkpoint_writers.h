// GroupCheckpointWriters: the CheckpointWriters of a job's ranks, over a process group
// of their own (Distributed::NewCpuGroup), so that the checkpoint writer threads talk
// while the training threads run their own collectives.
#ifndef TRAINERD_WORKER_CHECKPOINT_GROUP_CHECKPOINT_WRITERS_H_
#define TRAINERD_WORKER_CHECKPOINT_GROUP_CHECKPOINT_WRITERS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/checkpoint/checkpoint_store.h"

namespace trainerd {

class Distributed;

class GroupCheckpointWriters final : public CheckpointWriters {
 public:
  // Builds the writers' group of `distributed`'s ranks; every rank calls it at the same
  // point.
  static absl::StatusOr<std::unique_ptr<GroupCheckpointWriters>> Create(const Distributed& distributed);
  ~GroupCheckpointWriters() override;

  int rank() const override;
  absl::StatusOr<std::vector<std::string>> AllGather(const std::string& bytes) override;

 private:
  explicit GroupCheckpointWriters(std::unique_ptr<Distributed> group);
  std::unique_ptr<Distributed> group_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_CHECKPOINT_GROUP_CHECKPOINT_WRITERS_H_
