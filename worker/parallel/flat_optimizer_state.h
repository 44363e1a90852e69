// The per-parameter state of torch's optimizers (AdamW's moments and step, SGD's
// momentum, Adagrad's sums, RMSprop's averages) as named tensors, so that a sharded
// strategy can save each rank's slice of it and cut it again for another number of ranks.
// A LibTorch optimizer archive keys its state by tensor addresses and cannot be cut.
//
// Tensors of the parameter's size are elementwise state ("exp_avg"); the others are
// scalars that every rank holds the same ("step", as a one-element int64 tensor).
#ifndef TRAINERD_WORKER_PARALLEL_FLAT_OPTIMIZER_STATE_H_
#define TRAINERD_WORKER_PARALLEL_FLAT_OPTIMIZER_STATE_H_

#include <map>
#include <string>

#include <torch/optim/optimizer.h>
#include <torch/torch.h>

namespace trainerd {

using ParamStateTensors = std::map<std::string, torch::Tensor>;

// `param`'s state in `optimizer`, copied (empty before the first step). Throws
// std::invalid_argument when `optimizer` is not one of torch's AdamW, Adam, SGD, Adagrad,
// RMSprop.
ParamStateTensors ExportParamState(const torch::optim::Optimizer& optimizer, const torch::Tensor& param);

// Replaces `param`'s state in `optimizer` with `state` (as ExportParamState made it;
// empty: no state yet). Throws std::invalid_argument naming a missing or misshapen entry.
void ImportParamState(torch::optim::Optimizer& optimizer, const torch::Tensor& param, const ParamStateTensors& state);

// Whether `key` names elementwise state (cut with the parameter) rather than a scalar.
bool IsElementwiseState(const std::string& key);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_PARALLEL_FLAT_OPTIMIZER_STATE_H_
