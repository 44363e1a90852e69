#include "worker/optim/adafactor.h"

#include <cmath>

#include <torch/torch.h>

namespace trainerd {
namespace {

torch::Tensor Rms(const torch::Tensor& t) {
  return t.norm(2) / std::sqrt(static_cast<double>(t.numel()));
}

// Rank-1 reconstruction of 1/sqrt(E[g^2]) from row and column averages.
torch::Tensor ApproxSqGrad(const torch::Tensor& row, const torch::Tensor& col) {
  torch::Tensor r = (row / row.mean(-1, /*keepdim=*/true)).rsqrt_().unsqueeze(-1);
  torch::Tensor c = col.unsqueeze(-2).rsqrt();
  return r * c;
}

}  // namespace

torch::Tensor AdafactorUpdate(const AdafactorOptions& o, AdafactorParamState& s, const torch::Tensor& grad,
                              const torch::Tensor& param, double* lr_used) {
  const bool factored = grad.dim() >= 2;
  if (!s.exp_avg_sq_row().defined() && !s.exp_avg_sq().defined()) {
    if (o.beta1() > 0) s.exp_avg(torch::zeros_like(grad));
    if (factored) {
      auto row = grad.sizes().vec();
      row.pop_back();
      auto col = grad.sizes().vec();
      col.erase(col.end() - 2);
      s.exp_avg_sq_row(torch::zeros(row, grad.options()));
      s.exp_avg_sq_col(torch::zeros(col, grad.options()));
    } else {
      s.exp_avg_sq(torch::zeros_like(grad));
    }
  }
  s.step(s.step() + 1);

  double lr = o.lr();
  if (o.relative_step()) {
    const double min_step = o.warmup_init() ? 1e-6 * s.step() : 1e-2;
    lr = std::min(min_step, 1.0 / std::sqrt(static_cast<double>(s.step())));
  }
  if (o.scale_parameter()) lr *= std::max(o.eps2(), Rms(param).item<double>());
  *lr_used = lr;

  const double beta2t = 1.0 - std::pow(static_cast<double>(s.step()), o.decay_rate());
  torch::Tensor update = grad.square() + o.eps1();
  if (factored) {
    s.exp_avg_sq_row().mul_(beta2t).add_(update.mean(-1), 1.0 - beta2t);
    s.exp_avg_sq_col().mul_(beta2t).add_(update.mean(-2), 1.0 - beta2t);
    update = ApproxSqGrad(s.exp_avg_sq_row(), s.exp_avg_sq_col()).mul_(grad);
  } else {
    s.exp_avg_sq().mul_(beta2t).add_(update, 1.0 - beta2t);
    update = s.exp_avg_sq().rsqrt().mul_(grad);
  }
  update.div_((Rms(update) / o.clip_threshold()).clamp_(1.0));
  update.mul_(lr);
  if (o.beta1() > 0) {
    s.exp_avg().mul_(o.beta1()).add_(update, 1.0 - o.beta1());
    update = s.exp_avg().clone();
  }
  return update;
}

torch::Tensor Adafactor::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups()) {
    auto& o = static_cast<AdafactorOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto key = c10::guts::to_string(p.unsafeGetTensorImpl());
      auto it = state_.find(key);
      if (it == state_.end()) it = state_.emplace(key, std::make_unique<AdafactorParamState>()).first;
      auto& s = static_cast<AdafactorParamState&>(*it->second);
      torch::Tensor param = p.to(torch::kFloat);
      double lr = 0;
      torch::Tensor update = AdafactorUpdate(o, s, p.grad().to(torch::kFloat), param, &lr);
      if (o.weight_decay() != 0) param.add_(param, -o.weight_decay() * lr);
      param.add_(-update);
      if (p.scalar_type() != torch::kFloat) p.copy_(param);
    }
  }
  return loss;
}

void AdafactorOptions::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(eps1);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(eps2);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(clip_threshold);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(decay_rate);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(beta1);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(weight_decay);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(scale_parameter);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(relative_step);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(warmup_init);
}

void AdafactorOptions::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lr);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, eps1);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, eps2);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, clip_threshold);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, decay_rate);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, beta1);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, weight_decay);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(bool, scale_parameter);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(bool, relative_step);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(bool, warmup_init);
}

void AdafactorParamState::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(step);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_sq_row);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_sq_col);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_sq);
}

void AdafactorParamState::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, step);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg_sq_row);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg_sq_col);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg_sq);
}

void Adafactor::save(torch::serialize::OutputArchive& archive) const {
  torch::optim::serialize<AdafactorParamState, AdafactorOptions>(archive, *this);
}

void Adafactor::load(torch::serialize::InputArchive& archive) {
  torch::optim::serialize<AdafactorParamState, AdafactorOptions>(archive, *this);
}

}  // namespace trainerd
