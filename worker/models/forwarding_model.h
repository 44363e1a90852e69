// ForwardingModel: a Model that hands every call to an inner Model it owns. A model that
// changes a few things about another (the built-in text models' TorchScript export, LoRA
// adapters around a frozen base) derives from it and overrides only those.
#ifndef TRAINERD_WORKER_MODELS_FORWARDING_MODEL_H_
#define TRAINERD_WORKER_MODELS_FORWARDING_MODEL_H_

#include <map>
#include <memory>
#include <string>
#include <utility>

#include "worker/models/model.h"

namespace trainerd {

class ForwardingModel : public Model {
 public:
  explicit ForwardingModel(std::unique_ptr<Model> inner) : inner_(std::move(inner)) {}

  torch::Tensor Forward(const torch::Tensor& inputs) override { return inner_->Forward(inputs); }
  NamedTensors NamedParameters() const override { return inner_->NamedParameters(); }
  NamedTensors NamedBuffers() const override { return inner_->NamedBuffers(); }
  NamedTensors FrozenState() const override { return inner_->FrozenState(); }
  void SetTraining(bool training) override { inner_->SetTraining(training); }
  void To(const torch::Device& device) override { inner_->To(device); }
  void SaveTorchScript(std::ostream& out) const override { inner_->SaveTorchScript(out); }
  bool HasTorchScript() const override { return inner_->HasTorchScript(); }
  std::map<std::string, std::string> HfFolderFiles() const override { return inner_->HfFolderFiles(); }
  NamedTensors HfState() const override { return inner_->HfState(); }
  std::string WeightsFilePrefix() const override { return inner_->WeightsFilePrefix(); }
  std::map<std::string, std::string> MergedFolderFiles(int64_t max_shard_bytes) const override {
    return inner_->MergedFolderFiles(max_shard_bytes);
  }
  std::map<std::string, torch::Tensor> FromHfNames(std::map<std::string, torch::Tensor> tensors) const override {
    return inner_->FromHfNames(std::move(tensors));
  }
  std::vector<LinearLayer> LinearLayers() override { return inner_->LinearLayers(); }
  bool SetNeftuneNoiseAlpha(double alpha) override { return inner_->SetNeftuneNoiseAlpha(alpha); }
  torch::Tensor InputEmbeddings(const torch::Tensor& ids) override { return inner_->InputEmbeddings(ids); }
  bool SetGradientCheckpointing(bool enabled) override { return inner_->SetGradientCheckpointing(enabled); }
  std::vector<std::string> BlockPrefixes() const override { return inner_->BlockPrefixes(); }
  bool SetBlockWrapper(BlockWrapper wrapper) override { return inner_->SetBlockWrapper(std::move(wrapper)); }
  bool SetLigerKernels(const LigerKernels& kernels) override { return inner_->SetLigerKernels(kernels); }
  const DeferredWeights* deferred_weights() const override { return inner_->deferred_weights(); }
  void set_deferred_weights(std::unique_ptr<DeferredWeights> weights) override {
    inner_->set_deferred_weights(std::move(weights));
  }
  torch::Tensor CausalLmLossSum(const torch::Tensor& ids, const torch::Tensor& labels,
                                double label_smoothing) override {
    return inner_->CausalLmLossSum(ids, labels, label_smoothing);
  }

 protected:
  Model& inner() { return *inner_; }
  const Model& inner() const { return *inner_; }

 private:
  std::unique_ptr<Model> inner_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_FORWARDING_MODEL_H_
