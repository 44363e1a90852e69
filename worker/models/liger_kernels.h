// Fused kernels for the built-in text models and the Llama family, after Liger Kernel
// (use_liger_kernel, liger_kernel_config): custom autograd functions whose forward keeps only what their
// hand-written backward needs, instead of every intermediate the composed ops keep.
//
//  - RmsNorm keeps x and 1/rms (one number per row).
//  - Rope keeps nothing but the shared cos/sin tables; backward rotates the other way.
//  - SwiGlu keeps its two inputs and recomputes the sigmoid in backward.
//  - CrossEntropySum writes the gradient over the logits it is given (the model's own,
//    private logits), as Liger does, so no softmax or log-softmax copy is kept.
//  - FusedLinearCrossEntropySum takes the hidden states and the output weights and goes
//    through the rows in chunks: each chunk's logits are made, turned into the loss and
//    the gradients of the hidden states and the weights, and dropped. The (tokens x
//    vocab) logits never exist at once.
//
// They compute the same functions as the plain ops (tests/liger_test.cc compares losses
// and gradients).
#ifndef TRAINERD_WORKER_MODELS_LIGER_KERNELS_H_
#define TRAINERD_WORKER_MODELS_LIGER_KERNELS_H_

#include <torch/types.h>

namespace trainerd {

// Which fused kernels a model uses (liger_kernel_config).
struct LigerKernels {
  bool rope = false;
  bool swiglu = false;
  bool rms_norm = false;
  bool cross_entropy = false;
  bool fused_linear_cross_entropy = false;
};

// x * rsqrt(mean(x^2, -1) + eps) * weight, normalised in float32 and cast back to
// x's dtype before the scaling, as Llama's RMSNorm.
torch::Tensor LigerRmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps);
// x * cos + rotate_half(x) * sin, rotate_half as HF Llama ([-x2, x1]).
torch::Tensor LigerRope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);
// silu(gate) * up.
torch::Tensor LigerSwiGlu(const torch::Tensor& gate, const torch::Tensor& up);
// Cross-entropy of logits [N, V] against targets [N], summed over the targets that are
// not -100, with label smoothing as torch's cross_entropy. Overwrites `logits` (which
// must not be used afterwards) when gradients are needed.
torch::Tensor LigerCrossEntropySum(const torch::Tensor& logits, const torch::Tensor& targets, double label_smoothing);
// LigerCrossEntropySum(hidden [N, D] x weight [V, D]^T, targets), in row chunks.
torch::Tensor LigerFusedLinearCrossEntropySum(const torch::Tensor& hidden, const torch::Tensor& weight,
                                              const torch::Tensor& targets, double label_smoothing);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_LIGER_KERNELS_H_
