// Trainer: ZeRO stage 1 (optimizer_sharding). Gradients are still averaged on every
// rank, but each rank keeps optimizer state (Adam's moments, momentum buffers) only for
// the parameters it owns, updates those, and broadcasts them to the others: the state's
// memory is divided by the world size at the cost of one broadcast per rank and step.
// Also the optimizer-state size that every run reports (ZeRO's and GaLore's savings).
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "worker/distributed/distributed.h"
#include "worker/checkpoint/optimizer_snapshot.h"
#include "worker/trainer/trainer.h"

namespace trainerd {

bool Trainer::ShardsOptimizer() const { return args().optimizer_sharding() && world_size() > 1; }

NamedTensors Trainer::OptimizedParameters() {
  NamedTensors all = model_->NamedParameters();
  if (!ShardsOptimizer()) return all;
  if (param_owner_.empty()) {
    // Largest first, each to the rank with the fewest elements so far: balanced shards,
    // and the same assignment on every rank.
    std::vector<size_t> order(all.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return all[a].second.numel() > all[b].second.numel(); });
    std::vector<int64_t> load(world_size(), 0);
    param_owner_.assign(all.size(), 0);
    for (size_t i : order) {
      const int owner = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
      param_owner_[i] = owner;
      load[owner] += all[i].second.numel();
    }
  }
  NamedTensors mine;
  for (size_t i = 0; i < all.size(); ++i) {
    if (param_owner_[i] == distributed_->rank()) mine.push_back(all[i]);
  }
  return mine;
}

void Trainer::BroadcastUpdatedParameters() {
  NamedTensors all = model_->NamedParameters();
  for (int owner = 0; owner < world_size(); ++owner) {
    std::vector<torch::Tensor> shard;
    for (size_t i = 0; i < all.size(); ++i) {
      if (param_owner_[i] == owner) shard.push_back(all[i].second);
    }
    if (!shard.empty()) distributed_->Broadcast(shard, owner);
  }
}

Metrics Trainer::MeasureOptimizerMemory() {
  const double mb = 1024.0 * 1024.0;
  // The serialised state is what the optimizer holds: its tensors dominate the bytes.
  const double mine = static_cast<double>(SerializedOptimizerBytes(*optimizer_));
  Metrics out = {{"train_optimizer_state_mb", mine / mb}};
  if (ShardsOptimizer()) {
    const double total = MeanAcrossRanks(mine) * world_size();
    spdlog::info("ZeRO-1: this rank holds {:.2f} MB of optimizer state; unsharded every rank would hold {:.2f} MB "
                 "({:.2f} MB saved per rank)",
                 mine / mb, total / mb, (total - mine) / mb);
    out["train_optimizer_state_unsharded_mb"] = total / mb;
  }
  if (const std::string line = optimizer_capabilities_->DescribeState(&out); !line.empty()) spdlog::info("{}", line);
  return out;
}

}  // namespace trainerd
