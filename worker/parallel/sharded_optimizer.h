// ShardedOptimizer: ZeRO stage 1 (optimizer_sharding). Gradients are averaged on every
// rank as with DataParallel, but each rank keeps optimizer state (Adam's moments,
// momentum buffers) only for the parameters it owns, updates those, and broadcasts them
// to the others: the state's memory is divided by the world size at the cost of one
// broadcast per rank and step.
#ifndef TRAINERD_WORKER_PARALLEL_SHARDED_OPTIMIZER_H_
#define TRAINERD_WORKER_PARALLEL_SHARDED_OPTIMIZER_H_

#include <string>
#include <vector>

#include "worker/parallel/data_parallel.h"

namespace trainerd {

class ShardedOptimizer final : public DataParallel {
 public:
  // `distributed` must have several ranks. Parameters are assigned to owners at once.
  ShardedOptimizer(Model* model, Distributed* distributed, int64_t bucket_cap_bytes);

  std::string name() const override { return "zero1"; }
  std::string Describe(int64_t total_batch_size) const override;
  // The parameters this rank owns.
  NamedTensors OptimizedParameters() override;
  // Broadcasts each owner's updated parameters, and clears every gradient (the optimizer
  // clears only its own shard's).
  void FinishOptimizerStep() override;

 protected:
  bool ShardsOptimizerState() const override { return true; }
  std::string display_name() const override { return "ZeRO-1"; }

 private:
  std::vector<int> owner_;  // the rank owning each of the model's NamedParameters()
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_PARALLEL_SHARDED_OPTIMIZER_H_
