// OptimizerStatePart: the optimizer's state in a checkpoint (Adam's moments, step
// counts), as LibTorch archives: optimizer.pt, or with ZeRO-1 optimizer_<rank>.pt, each
// rank's shard. optimizer.pt is encoded from a copy on the writer thread, so training
// waits only for the copy.
#ifndef TRAINERD_WORKER_CHECKPOINT_OPTIMIZER_STATE_PART_H_
#define TRAINERD_WORKER_CHECKPOINT_OPTIMIZER_STATE_PART_H_

#include <torch/optim/optimizer.h>

#include "trainer/v1/job_spec.pb.h"
#include "worker/checkpoint/stateful.h"
#include "worker/models/model.h"

namespace trainerd {

class Distributed;

class OptimizerStatePart final : public Stateful {
 public:
  // `optimizer` updates `parameters` (what SnapshotOptimizer needs to copy it); with
  // `sharded`, each rank's optimizer holds its own share. `args`, `optimizer` and
  // `distributed` (null: one rank) must outlive the part; state loads onto `device`.
  OptimizerStatePart(const trainer::v1::TrainingArguments* args, torch::optim::Optimizer* optimizer,
                     NamedTensors parameters, Distributed* distributed, bool sharded, torch::Device device)
      : args_(args),
        optimizer_(optimizer),
        parameters_(std::move(parameters)),
        distributed_(distributed),
        sharded_(sharded),
        device_(device) {}

  void SaveState(CheckpointContents& out) override;
  void LoadState(const CheckpointContents& in) override;

 private:
  bool is_main() const;

  const trainer::v1::TrainingArguments* args_;
  torch::optim::Optimizer* optimizer_;
  NamedTensors parameters_;
  Distributed* distributed_;
  bool sharded_;
  torch::Device device_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_CHECKPOINT_OPTIMIZER_STATE_PART_H_
