#include "worker/checkpoint/group_checkpoint_writers.h"

#include <stdexcept>
#include <utility>

#include "worker/distributed/distributed.h"

namespace trainerd {

absl::StatusOr<std::unique_ptr<GroupCheckpointWriters>> GroupCheckpointWriters::Create(
    const Distributed& distributed) {
  auto group = distributed.NewCpuGroup("checkpoint_writers");
  if (!group.ok()) return group.status();
  return std::unique_ptr<GroupCheckpointWriters>(new GroupCheckpointWriters(*std::move(group)));
}

GroupCheckpointWriters::GroupCheckpointWriters(std::unique_ptr<Distributed> group) : group_(std::move(group)) {}

GroupCheckpointWriters::~GroupCheckpointWriters() = default;

int GroupCheckpointWriters::rank() const { return group_->rank(); }

absl::StatusOr<std::vector<std::string>> GroupCheckpointWriters::AllGather(const std::string& bytes) {
  try {
    return group_->AllGatherBytes(bytes);
  } catch (const std::exception& e) {
    return absl::UnavailableError(std::string("the checkpoint writers of the ranks lost each other: ") + e.what());
  }
}

}  // namespace trainerd
