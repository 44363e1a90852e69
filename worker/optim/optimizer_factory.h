// Builds the optimizer named by TrainingArguments.optim, as HF's
// Trainer.get_optimizer_cls_and_kwargs does: two parameter groups, with weight_decay
// applied to weights and not to biases or normalisation weights (any parameter whose
// name ends in "bias" or that has fewer than 2 dimensions).
#ifndef TRAINERD_WORKER_OPTIM_OPTIMIZER_FACTORY_H_
#define TRAINERD_WORKER_OPTIM_OPTIMIZER_FACTORY_H_

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <torch/optim/optimizer.h>

#include "absl/status/statusor.h"
#include "trainer/v1/job_spec.pb.h"
#include "worker/optim/optimizer_capabilities.h"

namespace trainerd {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// True when weight decay applies to the parameter `name` of shape `param`.
bool UsesWeightDecay(const std::string& name, const torch::Tensor& param);

// Creates the optimizer over the trainable (requires_grad) parameters. Returns
// INVALID_ARGUMENT naming the field for an unknown optimizer or bad optim_args.
// `capabilities`, when given, receives what the optimizer can do beyond LibTorch's
// interface (it lives as long as the optimizer).
absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> CreateOptimizer(
    const trainer::v1::TrainingArguments& args, const NamedTensors& named_parameters,
    OptimizerCapabilities** capabilities = nullptr);

// Every optim name CreateOptimizer builds.
std::set<std::string> OptimizerNames();

// Sets the learning rate of every parameter group.
void SetLearningRate(torch::optim::Optimizer& optimizer, double lr);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_OPTIM_OPTIMIZER_FACTORY_H_
