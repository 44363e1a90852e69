// LossScaler: dynamic loss scaling for fp16 training, the algorithm of PyTorch's
// torch.cuda.amp.GradScaler (which HF's Trainer uses through Accelerate).
//
// fp16 gradients underflow to zero when small; multiplying the loss by a large scale
// before backward keeps them representable. Before the optimizer step the gradients are
// divided by the scale again. If any is inf or NaN the scale was too large: the step is
// skipped and the scale multiplied by backoff_factor. After growth_interval steps in a
// row without overflow the scale is multiplied by growth_factor. Weights and optimizer
// state stay fp32 (autocast computes in fp16; the master weights are never fp16).
#ifndef TRAINERD_WORKER_TRAINER_LOSS_SCALER_H_
#define TRAINERD_WORKER_TRAINER_LOSS_SCALER_H_

#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "worker/checkpoint/stateful.h"

namespace trainerd {

class LossScaler : public Stateful {
 public:
  struct Options {
    double init_scale = 65536.0;
    double growth_factor = 2.0;
    double backoff_factor = 0.5;
    int64_t growth_interval = 2000;
  };
  LossScaler() : LossScaler(Options()) {}
  explicit LossScaler(Options options) : options_(options), scale_(options.init_scale) {}

  // The loss to call backward on.
  torch::Tensor Scale(const torch::Tensor& loss) const { return loss * scale_; }
  // Divides every defined gradient of `params` by the scale. Returns false when any
  // gradient holds inf or NaN: the caller must skip the optimizer step.
  bool Unscale(const std::vector<torch::Tensor>& params) const;
  // Adjusts the scale after a step; `found_inf` is Unscale's answer negated.
  void Update(bool found_inf);

  double scale() const { return scale_; }
  int64_t growth_tracker() const { return growth_tracker_; }
  int64_t skipped_steps() const { return skipped_steps_; }
  // Checkpoints: a resumed run continues with the same scale (keys of loop_state.json).
  void SaveState(CheckpointContents& out) override;
  void LoadState(const CheckpointContents& in) override;

 private:
  Options options_;
  double scale_;
  int64_t growth_tracker_ = 0;
  int64_t skipped_steps_ = 0;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TRAINER_LOSS_SCALER_H_
