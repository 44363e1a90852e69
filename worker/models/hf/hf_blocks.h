// What the Hugging Face architectures share: transformers' mask value and weight
// initialisation, HF's NEFTune noise, and HfModel, the Model over a network of
// transformers' parameter names. Included only by the architectures' .cc files.
#ifndef TRAINERD_WORKER_MODELS_HF_HF_BLOCKS_H_
#define TRAINERD_WORKER_MODELS_HF_HF_BLOCKS_H_

#include <cmath>
#include <limits>
#include <stdexcept>

#include <torch/torch.h>

#include "spec/hf_config.h"
#include "worker/models/adaptable_linear.h"
#include "worker/models/deferred_weights.h"
#include "worker/models/model.h"

namespace trainerd {

// torch.finfo(dtype).min: what transformers fills masked attention scores with.
inline double FinfoMin(torch::ScalarType dtype) {
  if (dtype == torch::kBFloat16) return static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
  if (dtype == torch::kHalf) return static_cast<double>(std::numeric_limits<c10::Half>::lowest());
  if (dtype == torch::kDouble) return std::numeric_limits<double>::lowest();
  return static_cast<double>(std::numeric_limits<float>::lowest());
}

// transformers' ACT2FN for the GELUs: "gelu_new" (NewGELUActivation, the tanh
// approximation GPT-2 uses) or "gelu" (the exact one, BERT's).
inline torch::Tensor Gelu(const std::string& act, const torch::Tensor& x) {
  if (act == "gelu_new") {
    return 0.5 * x * (1.0 + torch::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * torch::pow(x, 3.0))));
  }
  return torch::gelu(x);
}

// HF's neftune_post_forward_hook while training: uniform noise in [-1, 1] scaled by
// alpha / sqrt(L x d) on the embedding output; `x` itself otherwise.
inline torch::Tensor NeftuneNoise(const torch::Tensor& x, double alpha, bool training) {
  if (alpha <= 0 || !training) return x;
  const double magnitude = alpha / std::sqrt(static_cast<double>(x.size(1) * x.size(2)));
  torch::Tensor noise;
  {
    torch::NoGradGuard no_grad;
    noise = torch::empty_like(x).uniform_(-magnitude, magnitude);
  }
  return x + noise;
}

// transformers' _init_weights: weights of two or more dimensions normal(0, range),
// one-dimensional ones (biases) zero, norm weights one. The loaded weights replace all
// of it but a head the folder lacks.
inline void InitializeLikeTransformers(torch::nn::Module& module, double range) {
  torch::NoGradGuard no_grad;
  for (auto& item : module.named_parameters()) {
    if (!HasData(item.value())) continue;  // read from the folder later (deferred_weights.h)
    const std::string& name = item.key();
    const bool norm = name.find("norm") != std::string::npos || name.find("LayerNorm") != std::string::npos ||
                      name.find("ln_") != std::string::npos;
    if (norm && name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0) {
      item.value().fill_(1);
    } else if (item.value().dim() >= 2) {
      item.value().normal_(0, range);
    } else {
      item.value().zero_();
    }
  }
}

// A Model over `Net`, a torch module holder whose impl has `config` (HfConfig),
// `neftune_alpha`, `blocks` (a BlockRunner for its layers, named kBlockPrefix + index)
// and forward(ids). Parameters live in `dtype`. Saved as a Hugging Face
// folder: config.json beside transformers-named weights, no TorchScript.
template <typename Net>
class HfModel : public Model {
 public:
  HfModel(const HfConfig& config, torch::ScalarType dtype) : net_(config) { ConvertParameters(*net_, dtype); }
  torch::Tensor Forward(const torch::Tensor& inputs) override { return net_->forward(inputs); }
  NamedTensors NamedParameters() const override { return ModuleParameters(*net_); }
  NamedTensors NamedBuffers() const override { return {}; }
  void SetTraining(bool training) override { net_->train(training); }
  void To(const torch::Device& device) override { net_->to(device); }
  void SaveTorchScript(std::ostream&) const override {
    throw std::logic_error("a Hugging Face model is saved as a Hugging Face folder, not as TorchScript");
  }
  bool HasTorchScript() const override { return false; }
  std::map<std::string, std::string> HfFolderFiles() const override {
    std::map<std::string, std::string> files = net_->config.companion_files;
    files["config.json"] = HfConfigJson(net_->config);
    return files;
  }
  bool SetNeftuneNoiseAlpha(double alpha) override {
    net_->neftune_alpha = alpha;
    return true;
  }
  bool SetGradientCheckpointing(bool enabled) override {
    net_->blocks.checkpointing = enabled;
    return true;
  }
  std::vector<std::string> BlockPrefixes() const override {
    std::vector<std::string> prefixes;
    for (int64_t i = 0; i < net_->config.num_hidden_layers; ++i) {
      prefixes.push_back(std::string(net_->kBlockPrefix) + std::to_string(i) + ".");
    }
    return prefixes;
  }
  bool SetBlockWrapper(BlockWrapper wrapper) override {
    net_->blocks.wrapper = std::move(wrapper);
    return true;
  }
  std::vector<LinearLayer> LinearLayers() override {
    std::vector<LinearLayer> layers;
    for (const auto& item : net_->named_modules()) {
      if (auto* linear = dynamic_cast<AdaptableLinearImpl*>(item.value().get())) layers.push_back({item.key(), linear});
    }
    return layers;
  }

 protected:
  Net& net() { return net_; }

 private:
  Net net_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_HF_HF_BLOCKS_H_
