// Gradient checkpointing (gradient_checkpointing) for any block of a model, as
// PyTorch's reentrant torch.utils.checkpoint does it: the block runs forward without
// keeping its activations; backward replays it from its saved input, with the random
// state the first run had (so dropout draws the same masks), and back-propagates
// through the replay, which accumulates the block's parameter gradients and yields the
// input's. Memory: one input per block instead of every intermediate.
#ifndef TRAINERD_WORKER_MODELS_ACTIVATION_CHECKPOINT_H_
#define TRAINERD_WORKER_MODELS_ACTIVATION_CHECKPOINT_H_

#include <functional>

#include <torch/types.h>

namespace trainerd {

// The block as a function of its one differentiable input. It may capture other tensors
// (masks, rotary tables) by value and modules by reference; the modules must outlive the
// backward pass of the graph it is used in.
using BlockFunction = std::function<torch::Tensor(const torch::Tensor&)>;

// block(x), checkpointed when `enabled` and gradients are being recorded; block(x) as is
// otherwise (evaluation, no_grad).
torch::Tensor MaybeCheckpoint(bool enabled, const BlockFunction& block, const torch::Tensor& x);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_ACTIVATION_CHECKPOINT_H_
