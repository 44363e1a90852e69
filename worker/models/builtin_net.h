// The built-in networks. Both are one shape of feed-forward net:
//   [conv 3x3 (same padding) -> activation -> max-pool 2x2] x len(conv_channels)
//   -> flatten -> [linear -> activation -> dropout] x len(hidden_sizes) -> linear head
// `mlp` has no conv stages; `cnn` has them.
#ifndef TRAINERD_WORKER_MODELS_BUILTIN_NET_H_
#define TRAINERD_WORKER_MODELS_BUILTIN_NET_H_

#include <memory>

#include "worker/models/model.h"

namespace trainerd {

std::unique_ptr<Model> CreateBuiltinNet(const trainer::v1::ModelSpec& spec,
                                        const std::vector<int64_t>& input_shape,
                                        int64_t num_outputs);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_BUILTIN_NET_H_
