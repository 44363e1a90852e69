// GaLore (Zhao et al., 2024, "Memory-Efficient LLM Training by Gradient Low-Rank
// Projection"), the optimizers HF's Trainer calls galore_adamw, galore_adafactor and
// galore_adamw_layerwise.
//
// For a targeted m x n weight (rank > 0 in its group) the gradient G is projected onto
// its top-`rank` singular vectors: G V_r (m x r) when m >= n, U_r^T G (r x n) otherwise,
// with the basis recomputed by SVD every update_proj_gap steps. The inner optimizer
// (torch's AdamW, or Adafactor) keeps its state and computes its update in that small
// space; the update is projected back and multiplied by `scale`. The state of an m x n
// weight shrinks from 2mn numbers (AdamW) to 2 max(m,n) r + min(m,n) r.
//
// At rank >= min(m, n) the projection would keep the whole space, so the weight is
// stepped in its own basis: exactly the inner optimizer, with nothing saved.
//
// Layer-wise (HF's *_layerwise): AttachLayerwiseHooks makes each parameter step as soon
// as its gradient is accumulated during backward, and then drops that gradient, so the
// gradients of the whole model never exist at once. step() is then a no-op.
#ifndef TRAINERD_WORKER_OPTIM_GALORE_H_
#define TRAINERD_WORKER_OPTIM_GALORE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/optim/optimizer.h>
#include <torch/optim/serialize.h>

#include "worker/optim/optimizer_capabilities.h"

namespace torch::autograd {
struct Node;
}

namespace trainerd {

enum class GaLoreInner { kAdamW, kAdafactor };

struct GaLoreOptions : public torch::optim::OptimizerCloneableOptions<GaLoreOptions> {
  explicit GaLoreOptions(double lr = 1e-3) : lr_(lr) {}
  TORCH_ARG(double, lr);
  TORCH_ARG(double, beta1) = 0.9;  // AdamW only
  TORCH_ARG(double, beta2) = 0.999;
  TORCH_ARG(double, eps) = 1e-8;
  TORCH_ARG(double, weight_decay) = 0.0;
  TORCH_ARG(int64_t, rank) = 0;  // 0: this group is not projected
  TORCH_ARG(int64_t, update_proj_gap) = 200;
  TORCH_ARG(double, scale) = 0.25;

 public:  // TORCH_ARG leaves the access private
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

// `projection` is the basis (V_r^T, r x n, or U_r, m x r); undefined when the weight is
// not projected. Moments live in the projected space. Adafactor's factored statistics
// use the exp_avg_sq_row/col pair.
struct GaLoreParamState : public torch::optim::OptimizerCloneableParamState<GaLoreParamState> {
  TORCH_ARG(int64_t, step) = 0;
  TORCH_ARG(torch::Tensor, projection);
  TORCH_ARG(torch::Tensor, exp_avg);
  TORCH_ARG(torch::Tensor, exp_avg_sq);
  TORCH_ARG(torch::Tensor, exp_avg_sq_row);
  TORCH_ARG(torch::Tensor, exp_avg_sq_col);

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  // Bytes of all tensors held.
  int64_t Bytes() const;
};

// The basis of the top-`rank` singular vectors of `grad` (m x n): V_r^T when m >= n,
// else U_r.
torch::Tensor GaLoreBasis(const torch::Tensor& grad, int64_t rank);
// `grad` (m x n) in the basis's low-rank space; and a low-rank tensor back in the
// weight's space (without GaLore's scale), `right` being m >= n.
torch::Tensor GaLoreProject(const torch::Tensor& grad, const torch::Tensor& basis);
torch::Tensor GaLoreProjectBack(const torch::Tensor& low_rank, const torch::Tensor& basis, bool right);

class GaLore : public torch::optim::Optimizer, public OptimizerCapabilities {
 public:
  GaLore(std::vector<torch::optim::OptimizerParamGroup> groups, GaLoreOptions defaults, GaLoreInner inner,
         bool layerwise);
  ~GaLore() override;

  torch::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

  GaLoreInner inner() const { return inner_; }
  bool layerwise() const { return layerwise_; }
  // Layer-wise only: from now on every backward pass steps each parameter when its
  // gradient is ready, with the group's current learning rate. Call once, on the
  // optimizer that trains (not on copies).
  void AttachLayerwiseHooks();

  // OptimizerCapabilities: the layer-wise variant steps during backward.
  bool StepsDuringBackward() const override { return layerwise_; }
  void AttachBackwardSteps() override { AttachLayerwiseHooks(); }
  std::string DescribeState(std::map<std::string, double>* metrics) const override;

  // Optimizer-state bytes of the projected weights, and what AdamW would hold for them
  // (two fp32 moments per element).
  int64_t ProjectedStateBytes() const;
  int64_t ProjectedAdamWBytes() const;

 private:
  void StepParameter(torch::Tensor& p, const GaLoreOptions& options);

  GaLoreInner inner_;
  bool layerwise_;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_OPTIM_GALORE_H_
