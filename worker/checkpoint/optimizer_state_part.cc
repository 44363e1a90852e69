#include "worker/checkpoint/optimizer_state_part.h"

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "worker/checkpoint/optimizer_snapshot.h"
#include "worker/distributed/distributed.h"

namespace trainerd {

bool OptimizerStatePart::is_main() const { return distributed_ == nullptr || distributed_->is_main(); }

void OptimizerStatePart::SaveState(CheckpointContents& out) {
  if (sharded_) {
    // Each rank's shard of the optimizer state, in its own file (rank 0 writes them all).
    std::vector<std::string> shards = distributed_->AllGatherBytes(SerializeOptimizer(*optimizer_));
    for (size_t r = 0; r < shards.size(); ++r) out.Put(absl::StrCat("optimizer_", r, ".pt"), shards[r]);
    return;
  }
  if (!is_main()) return;
  std::shared_ptr<torch::optim::Optimizer> copy = SnapshotOptimizer(*args_, parameters_, *optimizer_);
  if (!copy) return out.Put("optimizer.pt", SerializeOptimizer(*optimizer_));  // a kind it cannot copy: now
  out.PutLater("optimizer.pt", [copy] { return SerializeOptimizer(*copy); });
}

void OptimizerStatePart::LoadState(const CheckpointContents& in) {
  const std::string name = sharded_ ? absl::StrCat("optimizer_", distributed_->rank(), ".pt") : "optimizer.pt";
  std::istringstream bytes(in.Need(name));
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(bytes, device_);
    optimizer_->load(archive);
  } catch (const c10::Error& e) {
    in.Corrupt(absl::StrCat(name, " does not load into this run's optimizer: ", e.what_without_backtrace()));
  }
}

}  // namespace trainerd
