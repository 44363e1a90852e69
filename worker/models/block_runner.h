// BlockRunner: how a model runs each of its repeated blocks (transformer layers):
// directly, with gradient checkpointing (activation_checkpoint.h), and inside a wrapper
// that a parallel strategy installs (fully sharded training gathers a block's weights
// before its forward and releases them after). Each architecture loops over its blocks
// through one BlockRunner, so both features are written once for all of them.
#ifndef TRAINERD_WORKER_MODELS_BLOCK_RUNNER_H_
#define TRAINERD_WORKER_MODELS_BLOCK_RUNNER_H_

#include <cstdint>
#include <functional>

#include <torch/types.h>

#include "worker/models/activation_checkpoint.h"

namespace trainerd {

// Runs block `index`'s `forward` on `x` and returns its output; it may act before and
// after, and attach hooks to the output for backward.
using BlockWrapper =
    std::function<torch::Tensor(int64_t index, const BlockFunction& forward, const torch::Tensor& x)>;

struct BlockRunner {
  bool checkpointing = false;  // gradient_checkpointing
  BlockWrapper wrapper;        // null: none

  // Block `index` applied to `x`: checkpointed when `checkpointing` and `training`, inside
  // `wrapper` (so that a replay in backward finds the weights the wrapper provides).
  torch::Tensor Run(int64_t index, const BlockFunction& block, const torch::Tensor& x, bool training) const {
    const bool checkpoint = checkpointing && training;
    if (!wrapper) return MaybeCheckpoint(checkpoint, block, x);
    return wrapper(index, [checkpoint, &block](const torch::Tensor& h) { return MaybeCheckpoint(checkpoint, block, h); },
                   x);
  }
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_BLOCK_RUNNER_H_
