// A point-in-time copy of an optimizer, so that a checkpoint can be serialised in the
// background while training goes on changing the live optimizer's state in place.
#ifndef TRAINERD_WORKER_CHECKPOINT_OPTIMIZER_SNAPSHOT_H_
#define TRAINERD_WORKER_CHECKPOINT_OPTIMIZER_SNAPSHOT_H_

#include <memory>

#include <torch/optim/optimizer.h>

#include "trainer/v1/job_spec.pb.h"
#include "worker/models/model.h"

namespace trainerd {

// Builds an optimizer of the same kind over the same parameters (CreateOptimizer) whose
// group options and per-parameter state are deep copies of `live`'s. Saving the copy
// produces the bytes saving `live` would have produced at this moment. Returns nullptr
// when `live` is not one CreateOptimizer builds (e.g. a create_optimizer override): the
// caller then serialises synchronously.
std::unique_ptr<torch::optim::Optimizer> SnapshotOptimizer(const trainer::v1::TrainingArguments& args,
                                                           const NamedTensors& named_parameters,
                                                           const torch::optim::Optimizer& live);

// Serialises an optimizer's state (LibTorch archive bytes).
std::string SerializeOptimizer(const torch::optim::Optimizer& optimizer);
// The size SerializeOptimizer's bytes would have (the state's size), without keeping them.
int64_t SerializedOptimizerBytes(const torch::optim::Optimizer& optimizer);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_CHECKPOINT_OPTIMIZER_SNAPSHOT_H_
