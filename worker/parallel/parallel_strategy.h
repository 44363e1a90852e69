// ParallelStrategy: how the ranks of a job share one optimizer step. The Trainer's loop
// is the same for every strategy; what differs (which tensors the optimizer updates, how
// gradients cross ranks, how weights come back after the step, how optimizer state is
// checkpointed) lives behind this interface:
//
//   SingleProcess   one rank: nothing crosses ranks
//   DataParallel    DDP: every rank holds everything; gradients are averaged in buckets
//                   while backward runs (GradientReducer)
//   ShardedOptimizer ZeRO-1 (optimizer_sharding): DDP's gradients, but each rank's
//                   optimizer holds and updates only the parameters it owns, which it then
//                   broadcasts
//   FullyShardedDataParallel  fsdp: full_shard (ZeRO-3) and shard_grad_op (ZeRO-2)
//
// The Trainer calls, per optimizer step: BeginMicroBatch (each micro-batch), then
// FinishGradients, ClipGradNorm, the optimizer's step, FinishOptimizerStep. Every rank
// makes the same calls in the same order (they hold collectives).
#ifndef TRAINERD_WORKER_PARALLEL_PARALLEL_STRATEGY_H_
#define TRAINERD_WORKER_PARALLEL_PARALLEL_STRATEGY_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/optim/optimizer.h>

#include "trainer/v1/job_spec.pb.h"
#include "worker/checkpoint/stateful.h"
#include "worker/models/model.h"

namespace trainerd {

class Distributed;

// Named scalar values (the Trainer's Metrics).
using StrategyMetrics = std::map<std::string, double>;

class ParallelStrategy {
 public:
  // `distributed`: the job's ranks (null: one rank); it must outlive the strategy.
  explicit ParallelStrategy(Distributed* distributed) : distributed_(distributed) {}
  virtual ~ParallelStrategy() = default;

  // What a checkpoint's training state records ("single", "ddp", "zero1", "full_shard",
  // "shard_grad_op"): the
  // optimizer state of one strategy does not load into another's.
  virtual std::string name() const = 0;
  // One line for the training plan (with the job's `total_batch_size`), empty for a
  // single rank.
  virtual std::string Describe(int64_t total_batch_size) const = 0;

  // The tensors this rank's optimizer updates, by name. Called when the optimizer is made.
  virtual NamedTensors OptimizedParameters() = 0;
  // The tensors that hold gradients on this rank after FinishGradients (the ones the
  // fp16 loss scaler unscales).
  virtual std::vector<torch::Tensor> GradientTensors() = 0;
  // Called once before the first training backward, after the model's speed options
  // (compilation, gradient checkpointing) are set: attaches gradient hooks.
  virtual void PrepareBackward() {}
  // Before each micro-batch's forward; `last`: the last micro-batch of the step, whose
  // backward brings the gradients together (the others accumulate locally).
  virtual void BeginMicroBatch(bool last) { (void)last; }
  // After the step's last backward: GradientTensors() hold the global batch's gradients.
  // Throws when a collective fails.
  virtual void FinishGradients() {}
  // Scales the gradients so that their norm over the whole model is at most `max_norm`
  // (torch's clip_grad_norm_); returns the norm before clipping.
  virtual double ClipGradNorm(double max_norm);
  // After the optimizer's step: every rank's model holds the updated weights.
  virtual void FinishOptimizerStep() {}
  // Runs `fn` with every parameter of the model whole (a sharded strategy gathers them
  // for the call). With `write_back`, what `fn` wrote into the parameters becomes the
  // trained state (loaded weights). Every rank calls it at the same point.
  virtual void WithFullWeights(const std::function<void()>& fn, bool write_back) {
    (void)write_back;
    fn();
  }

  // Whether a rank holds only its slice of some weights between uses (full_shard): the
  // whole model is then never in one process unless WithFullWeights gathers it.
  virtual bool ShardsWeights() const { return false; }
  // Runs `fn` once per unit of `model` (the strategy's model) with that unit's tensors
  // whole, by name: together the calls pass every parameter, frozen tensor and buffer
  // once. A strategy that shards weights gathers one unit per call and releases it
  // after, so that a rank never holds more than that unit beyond what it keeps whole;
  // the others make one call with everything. Every rank calls it at the same point.
  virtual void ForEachWholeUnit(const Model& model, const std::function<void(const NamedTensors&)>& fn);

  // The optimizer's part of a checkpoint: optimizer.pt, written by rank 0 from a copy
  // (or, where the state is sharded, optimizer_<rank>.pt, one per rank). `optimizer`
  // must outlive the part.
  virtual std::unique_ptr<Stateful> MakeOptimizerStatePart(const trainer::v1::TrainingArguments& args,
                                                           torch::optim::Optimizer* optimizer,
                                                           const torch::Device& device);
  // The part that saves the trained weights as each rank's slices (no rank gathers
  // them), or null: the weights are saved whole (ModelWeightsPart over WithFullWeights).
  virtual std::unique_ptr<Stateful> MakeShardedWeightsPart() { return nullptr; }
  // Whether each rank writes its own share of a checkpoint (its parts put rank files,
  // see CheckpointContents::PutRankFile) and a checkpoint saved by another number of
  // ranks is cut again for this one on load. Otherwise rank 0 writes every file, and a
  // checkpoint loads only on as many ranks as saved it.
  virtual bool WritesOwnShard() const { return false; }
  // Metrics that describe `bytes_on_this_rank` of optimizer state (every rank calls it,
  // once): train_optimizer_state_mb, and what sharding saved where it shards.
  virtual StrategyMetrics OptimizerStateMetrics(double bytes_on_this_rank);
  // Metrics of the whole run (communication time that backward did not hide).
  virtual StrategyMetrics RunMetrics(double runtime_seconds, int64_t steps) const;

 protected:
  // Whether each rank's optimizer holds only its share of the state.
  virtual bool ShardsOptimizerState() const { return false; }
  // How logs name the strategy where it shards ("ZeRO-1").
  virtual std::string display_name() const { return name(); }
  Distributed* distributed() const { return distributed_; }
  int world_size() const;
  int rank() const;

 private:
  Distributed* distributed_;
};

// The strategy `args` asks for on `distributed`'s ranks (null: one rank). `model` and
// `distributed` must outlive it.
std::unique_ptr<ParallelStrategy> CreateParallelStrategy(const trainer::v1::TrainingArguments& args, Model* model,
                                                         Distributed* distributed);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_PARALLEL_PARALLEL_STRATEGY_H_
