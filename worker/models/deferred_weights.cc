#include "worker/models/deferred_weights.h"

#include <torch/torch.h>

namespace trainerd {
namespace {

thread_local bool deferring = false;

}  // namespace

bool DeferringBlockWeights() { return deferring; }

DeferBlockWeights::DeferBlockWeights() : was_(deferring) { deferring = true; }

DeferBlockWeights::~DeferBlockWeights() { deferring = was_; }

bool HasData(const torch::Tensor& t) {
  return t.numel() == 0 || (t.storage().data() != nullptr && t.storage().nbytes() > 0);
}

torch::Tensor TensorWithoutData(c10::IntArrayRef sizes, const torch::TensorOptions& options) {
  torch::Tensor t = torch::empty({0}, options.requires_grad(false));
  // The shape without the memory: a storage of no bytes, as a released unit's views have.
  t.unsafeGetTensorImpl()->set_sizes_contiguous(sizes);
  return t;
}

void DropParameterDataIfDeferring(torch::nn::Module& module) {
  if (!deferring) return;
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) p.set_data(TensorWithoutData(p.sizes(), p.options()));
}

void ConvertParameters(torch::nn::Module& module, torch::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) {
    if (p.scalar_type() == dtype) continue;
    p.set_data(HasData(p) ? p.to(dtype) : TensorWithoutData(p.sizes(), p.options().dtype(dtype)));
  }
  for (auto& b : module.buffers()) {
    if (b.is_floating_point() && b.scalar_type() != dtype) b.set_data(b.to(dtype));
  }
}

}  // namespace trainerd
