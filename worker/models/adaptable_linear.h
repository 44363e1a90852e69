// AdaptableLinear: the linear layer every architecture here is built from, with a slot
// for an adapter (LoRA, worker/models/adapters/) whose output is added to the layer's.
// Its parameters are named as torch.nn.Linear's ("weight", "bias"), so that a folder's
// weights load by name; GPT-2's Conv1D is the same layer with its weight stored
// [in, out] (fan_in_fan_out).
#ifndef TRAINERD_WORKER_MODELS_ADAPTABLE_LINEAR_H_
#define TRAINERD_WORKER_MODELS_ADAPTABLE_LINEAR_H_

#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace trainerd {

// What an adapter adds to a linear layer's output. Owned by whoever attached it, which
// must detach it (AdaptableLinearImpl::adapter = nullptr) before it goes away.
class LinearAdapter {
 public:
  virtual ~LinearAdapter() = default;
  // The adapter's contribution for input `x` [..., in], to add to the layer's output
  // [..., out] (in the output's dtype).
  virtual torch::Tensor Delta(const torch::Tensor& x) = 0;
};

class AdaptableLinearImpl : public torch::nn::Module {
 public:
  // A layer from `in` to `out` features, its weight stored [out, in] (torch.nn.Linear)
  // or, with `fan_in_fan_out`, [in, out] (GPT-2's Conv1D). Weights start at
  // torch.nn.Linear's initialisation (Conv1D's at zero); the architectures overwrite it.
  AdaptableLinearImpl(int64_t in, int64_t out, bool bias = true, bool fan_in_fan_out = false);

  torch::Tensor forward(const torch::Tensor& x);

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  bool fan_in_fan_out() const { return fan_in_fan_out_; }
  // The weight as torch.nn.Linear holds it, [out, in] (a view for Conv1D).
  torch::Tensor LinearWeight() const { return fan_in_fan_out_ ? weight.t() : weight; }

  torch::Tensor weight, bias;  // bias undefined when the layer has none
  LinearAdapter* adapter = nullptr;

 private:
  int64_t in_features_, out_features_;
  bool fan_in_fan_out_;
};
TORCH_MODULE(AdaptableLinear);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_ADAPTABLE_LINEAR_H_
