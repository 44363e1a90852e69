#include "worker/optim/galore.h"

#include <cmath>

#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/torch.h>

#include "absl/strings/str_format.h"
#include "worker/optim/adafactor.h"

namespace trainerd {
namespace {

bool Projected(const torch::Tensor& p, int64_t rank) {
  return rank > 0 && p.dim() == 2 && rank < std::min(p.size(0), p.size(1));
}

int64_t TensorBytes(const torch::Tensor& t) {
  return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0;
}

// torch.optim.AdamW's update direction for `grad`, state initialised on first use:
// m_hat / (sqrt(v_hat) + eps), with the step size folded in as AdamW does it.
torch::Tensor AdamWUpdate(const GaLoreOptions& o, GaLoreParamState& s, const torch::Tensor& grad) {
  if (!s.exp_avg().defined()) {
    s.exp_avg(torch::zeros_like(grad));
    s.exp_avg_sq(torch::zeros_like(grad));
  }
  const double bias1 = 1.0 - std::pow(o.beta1(), static_cast<double>(s.step()));
  const double bias2 = 1.0 - std::pow(o.beta2(), static_cast<double>(s.step()));
  s.exp_avg().mul_(o.beta1()).add_(grad, 1.0 - o.beta1());
  s.exp_avg_sq().mul_(o.beta2()).addcmul_(grad, grad, 1.0 - o.beta2());
  torch::Tensor denom = (s.exp_avg_sq().sqrt() / std::sqrt(bias2)).add_(o.eps());
  return (s.exp_avg() / denom).mul_(o.lr() / bias1);
}

}  // namespace

torch::Tensor GaLoreBasis(const torch::Tensor& grad, int64_t rank) {
  auto [u, s, vh] = torch::linalg::svd(grad.to(torch::kFloat), /*full_matrices=*/false, c10::nullopt);
  if (grad.size(0) >= grad.size(1)) return vh.narrow(0, 0, rank).contiguous();
  return u.narrow(1, 0, rank).contiguous();
}

torch::Tensor GaLoreProject(const torch::Tensor& grad, const torch::Tensor& basis) {
  return grad.size(0) >= grad.size(1) ? torch::matmul(grad, basis.t()) : torch::matmul(basis.t(), grad);
}

torch::Tensor GaLoreProjectBack(const torch::Tensor& low_rank, const torch::Tensor& basis, bool right) {
  return right ? torch::matmul(low_rank, basis) : torch::matmul(basis, low_rank);
}

GaLore::GaLore(std::vector<torch::optim::OptimizerParamGroup> groups, GaLoreOptions defaults, GaLoreInner inner,
               bool layerwise)
    : Optimizer(std::move(groups), std::make_unique<GaLoreOptions>(defaults)), inner_(inner), layerwise_(layerwise) {}

GaLore::~GaLore() {
  // The hooks refer to this object; the parameters hold their accumulators weakly, so
  // dropping ours removes the hooks with them.
  accumulators_.clear();
}

void GaLore::AttachLayerwiseHooks() {
  if (!layerwise_ || !accumulators_.empty()) return;
  for (size_t g = 0; g < param_groups().size(); ++g) {
    for (auto& p : param_groups()[g].params()) {
      if (!p.requires_grad()) continue;
      std::shared_ptr<torch::autograd::Node> accumulator = torch::autograd::impl::grad_accumulator(p);
      torch::Tensor param = p;
      accumulator->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
          [this, param, g](const torch::autograd::variable_list& outputs,
                           const torch::autograd::variable_list&) mutable {
            torch::NoGradGuard no_grad;
            // Looked up now: loading a checkpoint replaces the groups' options.
            StepParameter(param, static_cast<const GaLoreOptions&>(param_groups()[g].options()));
            param.mutable_grad().reset();  // this weight's gradient is spent: free it now
            return outputs;
          }));
      accumulators_.push_back(std::move(accumulator));
    }
  }
}

torch::Tensor GaLore::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  if (layerwise_ && !accumulators_.empty()) return loss;  // stepped during backward
  for (auto& group : param_groups()) {
    for (auto& p : group.params()) StepParameter(p, static_cast<const GaLoreOptions&>(group.options()));
  }
  return loss;
}

void GaLore::StepParameter(torch::Tensor& p, const GaLoreOptions& o) {
  if (!p.grad().defined()) return;
  auto key = c10::guts::to_string(p.unsafeGetTensorImpl());
  auto it = state_.find(key);
  if (it == state_.end()) it = state_.emplace(key, std::make_unique<GaLoreParamState>()).first;
  auto& s = static_cast<GaLoreParamState&>(*it->second);

  torch::Tensor grad = p.grad().to(torch::kFloat);
  const bool projected = Projected(p, o.rank());
  if (projected) {
    // GaLore's schedule: a fresh basis on steps 0, gap, 2 gap, ... (counted before the update).
    if (!s.projection().defined() || s.step() % o.update_proj_gap() == 0) s.projection(GaLoreBasis(grad, o.rank()));
    grad = GaLoreProject(grad, s.projection());
  }
  s.step(s.step() + 1);

  torch::Tensor param = p.to(torch::kFloat);
  torch::Tensor update;
  double lr = o.lr();
  if (inner_ == GaLoreInner::kAdamW) {
    param.mul_(1.0 - o.lr() * o.weight_decay());  // AdamW decays before the update
    update = AdamWUpdate(o, s, grad);
  } else {
    AdafactorOptions a(o.lr());
    AdafactorParamState inner;
    inner.step(s.step() - 1)
        .exp_avg(s.exp_avg())
        .exp_avg_sq(s.exp_avg_sq())
        .exp_avg_sq_row(s.exp_avg_sq_row())
        .exp_avg_sq_col(s.exp_avg_sq_col());
    update = AdafactorUpdate(a, inner, grad, param, &lr);
    s.exp_avg(inner.exp_avg()).exp_avg_sq(inner.exp_avg_sq()).exp_avg_sq_row(inner.exp_avg_sq_row()).exp_avg_sq_col(inner.exp_avg_sq_col());
  }
  if (projected) update = GaLoreProjectBack(update, s.projection(), p.size(0) >= p.size(1)).mul_(o.scale());
  if (inner_ == GaLoreInner::kAdafactor && o.weight_decay() != 0) param.add_(param, -o.weight_decay() * lr);
  param.sub_(update);
  if (p.scalar_type() != torch::kFloat) p.copy_(param);
}

int64_t GaLore::ProjectedStateBytes() const {
  int64_t bytes = 0;
  for (const auto& group : param_groups()) {
    if (static_cast<const GaLoreOptions&>(group.options()).rank() == 0) continue;
    for (const auto& p : group.params()) {
      auto it = state_.find(c10::guts::to_string(p.unsafeGetTensorImpl()));
      if (it != state_.end()) bytes += static_cast<const GaLoreParamState&>(*it->second).Bytes();
    }
  }
  return bytes;
}

int64_t GaLore::ProjectedAdamWBytes() const {
  int64_t bytes = 0;
  for (const auto& group : param_groups()) {
    if (static_cast<const GaLoreOptions&>(group.options()).rank() == 0) continue;
    for (const auto& p : group.params()) bytes += 2 * p.numel() * static_cast<int64_t>(sizeof(float));
  }
  return bytes;
}

std::string GaLore::DescribeState(std::map<std::string, double>* metrics) const {
  const double mb = 1024.0 * 1024.0;
  const double projected = static_cast<double>(ProjectedStateBytes());
  const double adamw = static_cast<double>(ProjectedAdamWBytes());
  (*metrics)["train_galore_state_mb"] = projected / mb;
  (*metrics)["train_galore_adamw_state_mb"] = adamw / mb;
  return absl::StrFormat(
      "GaLore: the targeted weights hold %.2f MB of optimizer state; AdamW would hold %.2f MB (%.0f%% less)",
      projected / mb, adamw / mb, 100.0 * (1.0 - projected / adamw));
}

int64_t GaLoreParamState::Bytes() const {
  return TensorBytes(projection()) + TensorBytes(exp_avg()) + TensorBytes(exp_avg_sq()) +
         TensorBytes(exp_avg_sq_row()) + TensorBytes(exp_avg_sq_col());
}

void GaLoreOptions::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(beta1);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(beta2);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(eps);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(weight_decay);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(rank);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(update_proj_gap);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(scale);
}

void GaLoreOptions::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lr);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, beta1);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, beta2);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, eps);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, weight_decay);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, rank);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, update_proj_gap);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, scale);
}

void GaLoreParamState::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(step);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(projection);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_sq);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_sq_row);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_sq_col);
}

void GaLoreParamState::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, step);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, projection);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg_sq);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg_sq_row);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg_sq_col);
}

void GaLore::save(torch::serialize::OutputArchive& archive) const {
  torch::optim::serialize<GaLoreParamState, GaLoreOptions>(archive, *this);
}

void GaLore::load(torch::serialize::InputArchive& archive) {
  torch::optim::serialize<GaLoreParamState, GaLoreOptions>(archive, *this);
}

}  // namespace trainerd
