#include "worker/models/adaptable_linear.h"

#include <cmath>

#include <torch/torch.h>

namespace trainerd {

AdaptableLinearImpl::AdaptableLinearImpl(int64_t in, int64_t out, bool with_bias, bool fan_in_fan_out)
    : in_features_(in), out_features_(out), fan_in_fan_out_(fan_in_fan_out) {
  weight = register_parameter("weight", fan_in_fan_out ? torch::empty({in, out}) : torch::empty({out, in}));
  if (with_bias) bias = register_parameter("bias", torch::empty({out}));
  // torch.nn.Linear's reset_parameters: kaiming_uniform_(a=sqrt(5)) on the weight, the
  // bias uniform in +-1/sqrt(in). Conv1D starts at zero, drawing nothing from the RNG
  // (transformers' Conv1D is initialised by the model).
  torch::NoGradGuard no_grad;
  if (fan_in_fan_out) {
    weight.zero_();
    if (with_bias) bias.zero_();
    return;
  }
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (with_bias) bias.uniform_(-1.0 / std::sqrt(static_cast<double>(in)), 1.0 / std::sqrt(static_cast<double>(in)));
}

torch::Tensor AdaptableLinearImpl::forward(const torch::Tensor& x) {
  torch::Tensor y;
  if (fan_in_fan_out_) {
    // Conv1D: addmm over the flattened rows, as transformers' Conv1D computes it.
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = out_features_;
    torch::Tensor rows = x.reshape({-1, in_features_});
    y = (bias.defined() ? torch::addmm(bias, rows, weight) : torch::mm(rows, weight)).view(shape);
  } else {
    y = torch::linear(x, weight, bias);
  }
  if (adapter != nullptr) y = y + adapter->Delta(x).to(y.scalar_type());
  return y;
}

}  // namespace trainerd
