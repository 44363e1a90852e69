#include "worker/parallel/sharded_optimizer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "worker/distributed/distributed.h"

namespace trainerd {

ShardedOptimizer::ShardedOptimizer(Model* model, Distributed* distributed, int64_t bucket_cap_bytes)
    : DataParallel(model, distributed, bucket_cap_bytes) {
  // Largest first, each to the rank with the fewest elements so far: balanced shards,
  // and the same assignment on every rank.
  const NamedTensors all = model->NamedParameters();
  std::vector<size_t> order(all.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return all[a].second.numel() > all[b].second.numel(); });
  std::vector<int64_t> load(world_size(), 0);
  owner_.assign(all.size(), 0);
  for (size_t i : order) {
    const int owner = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    owner_[i] = owner;
    load[owner] += all[i].second.numel();
  }
}

std::string ShardedOptimizer::Describe(int64_t total_batch_size) const {
  return absl::StrCat(DataParallel::Describe(total_batch_size), "; ZeRO-1: each rank's optimizer updates its share");
}

NamedTensors ShardedOptimizer::OptimizedParameters() {
  const NamedTensors all = model()->NamedParameters();
  NamedTensors mine;
  for (size_t i = 0; i < all.size(); ++i) {
    if (owner_[i] == rank()) mine.push_back(all[i]);
  }
  return mine;
}

void ShardedOptimizer::FinishOptimizerStep() {
  const NamedTensors all = model()->NamedParameters();
  for (int owner = 0; owner < world_size(); ++owner) {
    std::vector<torch::Tensor> shard;
    for (size_t i = 0; i < all.size(); ++i) {
      if (owner_[i] == owner) shard.push_back(all[i].second);
    }
    if (!shard.empty()) distributed()->Broadcast(shard, owner);
  }
  for (torch::Tensor& p : GradientTensors()) p.mutable_grad().reset();
}

}  // namespace trainerd
