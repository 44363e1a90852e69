// FullyShardedDataParallel: HF's fsdp (PyTorch FSDP; DeepSpeed ZeRO-2 and -3). The model
// is cut into units: each block (transformer layer) is one, and everything else
// (embeddings, final norm, head) is the root unit. Each unit's parameters live as flat
// buffers split evenly across the ranks (FlatParameter); each rank's optimizer holds and
// updates only its slices, in float32 where the model is.
//
//   full_shard (ZeRO-3)     a block's whole weights are all-gathered just before its
//                           forward and released right after; gathered again when its
//                           backward begins (a hook on the block's output) and released
//                           when its gradients are reduce-scattered
//   shard_grad_op (ZeRO-2)  the whole weights stay between steps; gradients and optimizer
//                           state are sharded
//
// The root unit is kept whole in both (its weights are used at both ends of the model);
// its gradients and optimizer state are sharded too. Frozen parameters (a LoRA job's base
// weights) are sharded and gathered with the rest of their unit, and have no gradients. Gradients are reduce-scattered as
// soon as a unit's backward has produced all of them (hooks on the parameters' gradient
// accumulators), only on the last micro-batch of a step: the others accumulate whole
// gradients locally, as FSDP's no_sync does. After the optimizer's step the kept units
// are gathered from the updated shards.
//
// Collectives run in the order forward and backward reach the units, which is the same
// on every rank. With backward_prefetch (HF's default, BACKWARD_PRE) the gather of the
// block backward reaches next starts as the current one's backward begins, and with
// forward_prefetch the next block's as the current one's forward begins: the
// all-gather runs on the process group's threads while this one computes. At most two
// blocks are whole at a time.
#ifndef TRAINERD_WORKER_PARALLEL_FULLY_SHARDED_H_
#define TRAINERD_WORKER_PARALLEL_FULLY_SHARDED_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "spec/fsdp_options.h"
#include "worker/parallel/flat_parameter.h"
#include "worker/parallel/parallel_strategy.h"

namespace torch::autograd {
struct Node;
}

namespace trainerd {

class FullyShardedDataParallel final : public ParallelStrategy {
 public:
  // Shards `model`'s trainable parameters across `distributed`'s ranks (their values must
  // be the same on every rank) and installs the block wrapper. Both must outlive it.
  FullyShardedDataParallel(Model* model, Distributed* distributed, const FsdpOptions& options);
  ~FullyShardedDataParallel() override;

  std::string name() const override { return options_.StrategyName(); }
  std::string Describe(int64_t total_batch_size) const override;
  // The shards, one per flat buffer.
  NamedTensors OptimizedParameters() override;
  std::vector<torch::Tensor> GradientTensors() override;
  void PrepareBackward() override;
  void BeginMicroBatch(bool last) override;
  void FinishGradients() override;
  // The norm over every rank's shards (one all-reduce of the squared norms).
  double ClipGradNorm(double max_norm) override;
  void FinishOptimizerStep() override;
  void WithFullWeights(const std::function<void()>& fn, bool write_back) override;
  bool ShardsWeights() const override { return options_.reshard_after_forward; }
  // The root unit (with the model's buffers), then each block.
  void ForEachWholeUnit(const Model& model, const std::function<void(const NamedTensors&)>& fn) override;
  // Each rank's slices of the optimizer state (sharded_state_parts.h), whatever
  // state_dict_type says: they load on any number of ranks.
  std::unique_ptr<Stateful> MakeOptimizerStatePart(const trainer::v1::TrainingArguments& args,
                                                   torch::optim::Optimizer* optimizer,
                                                   const torch::Device& device) override;
  // With SHARDED_STATE_DICT.
  std::unique_ptr<Stateful> MakeShardedWeightsPart() override;
  bool WritesOwnShard() const override { return true; }

 protected:
  bool ShardsOptimizerState() const override { return true; }
  std::string display_name() const override { return absl::StrCat("FSDP ", name()); }

 private:
  struct Unit {
    std::string name;                           // "root" or the block's prefix
    bool kept_whole = true;                     // between uses (root, shard_grad_op)
    std::vector<std::unique_ptr<FlatParameter>> flats;
    int64_t pending = 0;                        // gradients not yet produced in this backward
    bool reduced = false;                       // in this backward
    // Has frozen parameters (a LoRA base): backward still needs them after the trained
    // ones' gradients are in, until the gradient of the unit's input is.
    bool frozen = false;
  };

  // Groups the parameters into units and flat buffers.
  void BuildUnits();
  // Every trained flat buffer by the name its shard has in the optimizer and the
  // checkpoint (frozen ones come from the model's folder, as a LoRA checkpoint's do).
  const NamedFlats& Flats() const { return trained_; }
  // After a checkpoint overwrote the shards: the gathered weights follow them.
  void ShardsLoaded();
  torch::Tensor RunBlock(int64_t index, const BlockFunction& forward, const torch::Tensor& x);
  void Gather(Unit& unit);
  void Release(Unit& unit);
  // Starts gathering units_[u] (a block that is not kept whole; else nothing).
  void Prefetch(size_t u);
  void OnGradientReady(size_t unit);
  // Reduce-scatters a unit's gradients (on the last micro-batch) and releases a block.
  void FinishUnitBackward(Unit& unit);

  Model* model_;
  FsdpOptions options_;
  std::vector<Unit> units_;  // units_[0] is the root; units_[1 + i] is block i
  NamedFlats trained_;       // Flats(): named once, read every step (the shards to clip)
  bool sync_ = true;
  // Keep the gradient accumulators (which hold the hooks) alive.
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_PARALLEL_FULLY_SHARDED_H_
