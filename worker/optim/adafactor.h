// Adafactor (Shazeer & Stern, 2018) with the update rule of HF's
// transformers.optimization.Adafactor: factored second moments for matrices, update
// clipping by RMS, optional first moment, decoupled weight decay. HF's Trainer builds it
// with scale_parameter=false and relative_step=false, i.e. with an explicit learning rate
// driven by the lr schedule; those are the defaults here too.
#ifndef TRAINERD_WORKER_OPTIM_ADAFACTOR_H_
#define TRAINERD_WORKER_OPTIM_ADAFACTOR_H_

#include <torch/optim/optimizer.h>
#include <torch/optim/serialize.h>

namespace trainerd {

struct AdafactorOptions : public torch::optim::OptimizerCloneableOptions<AdafactorOptions> {
  explicit AdafactorOptions(double lr = 1e-3) : lr_(lr) {}
  TORCH_ARG(double, lr);
  TORCH_ARG(double, eps1) = 1e-30;          // added to squared gradients
  TORCH_ARG(double, eps2) = 1e-3;           // floor of the parameter scale
  TORCH_ARG(double, clip_threshold) = 1.0;  // RMS threshold of the final update
  TORCH_ARG(double, decay_rate) = -0.8;     // beta2_t = 1 - t^decay_rate
  TORCH_ARG(double, beta1) = 0.0;           // 0 = no first moment
  TORCH_ARG(double, weight_decay) = 0.0;
  TORCH_ARG(bool, scale_parameter) = false;
  TORCH_ARG(bool, relative_step) = false;
  TORCH_ARG(bool, warmup_init) = false;

 public:  // TORCH_ARG leaves the access private
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

struct AdafactorParamState
    : public torch::optim::OptimizerCloneableParamState<AdafactorParamState> {
  TORCH_ARG(int64_t, step) = 0;
  TORCH_ARG(torch::Tensor, exp_avg);
  TORCH_ARG(torch::Tensor, exp_avg_sq_row);
  TORCH_ARG(torch::Tensor, exp_avg_sq_col);
  TORCH_ARG(torch::Tensor, exp_avg_sq);

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

// One Adafactor update for `grad` (factored second moments when it has 2+ dimensions):
// initialises and advances `state`, and returns the step to subtract from the parameter,
// learning rate included. `param` (fp32) sets the scale with scale_parameter; *lr_used
// receives the learning rate applied, which weight decay uses too.
torch::Tensor AdafactorUpdate(const AdafactorOptions& options, AdafactorParamState& state, const torch::Tensor& grad,
                              const torch::Tensor& param, double* lr_used);

class Adafactor : public torch::optim::Optimizer {
 public:
  Adafactor(std::vector<torch::optim::OptimizerParamGroup> groups, AdafactorOptions defaults)
      : Optimizer(std::move(groups), std::make_unique<AdafactorOptions>(defaults)) {}

  torch::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_OPTIM_ADAFACTOR_H_
