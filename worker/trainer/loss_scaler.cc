#include "worker/trainer/loss_scaler.h"

#include "worker/checkpoint/checkpointer.h"

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

void LossScaler::SaveState(CheckpointContents& out) {
  nlohmann::json& loop = out.Json(kTrainingStateFile);
  loop["loss_scale"] = scale_;
  loop["loss_scale_growth_tracker"] = growth_tracker_;
  loop["fp16_skipped_steps"] = skipped_steps_;
}

void LossScaler::LoadState(const CheckpointContents& in) {
  const nlohmann::json& loop = in.NeedJson(kTrainingStateFile);
  if (!loop.contains("loss_scale")) return;  // saved before fp16 was on
  scale_ = loop.at("loss_scale").get<double>();
  growth_tracker_ = loop.at("loss_scale_growth_tracker").get<int64_t>();
  skipped_steps_ = loop.at("fp16_skipped_steps").get<int64_t>();
}

}  // namespace trainerd
