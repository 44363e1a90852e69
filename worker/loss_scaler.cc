#include "worker/loss_scaler.h"

#include <torch/torch.h>

namespace trainerd {

bool LossScaler::Unscale(const std::vector<torch::Tensor>& params) const {
  torch::NoGradGuard no_grad;
  bool finite = true;
  for (const torch::Tensor& p : params) {
    if (!p.grad().defined()) continue;
    torch::Tensor g = p.grad();
    g.div_(scale_);
    // One check per tensor; the step is skipped anyway once one is not finite.
    if (finite && !torch::isfinite(g).all().item<bool>()) finite = false;
  }
  return finite;
}

void LossScaler::Update(bool found_inf) {
  if (found_inf) {
    scale_ *= options_.backoff_factor;
    growth_tracker_ = 0;
    ++skipped_steps_;
    return;
  }
  if (++growth_tracker_ >= options_.growth_interval) {
    scale_ *= options_.growth_factor;
    growth_tracker_ = 0;
  }
}

}  // namespace trainerd
