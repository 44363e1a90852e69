// The model a Trainer trains: a built-in network (mlp, cnn) or a user's TorchScript
// module, behind one interface.
#ifndef TRAINERD_WORKER_MODELS_MODEL_H_
#define TRAINERD_WORKER_MODELS_MODEL_H_

#include <map>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <c10/core/Device.h>
#include <torch/nn/module.h>
#include <torch/types.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/v1/job_spec.pb.h"
#include "worker/data/dataset.h"
#include "worker/models/deferred_weights.h"
#include "worker/models/block_runner.h"
#include "worker/models/liger_kernels.h"

namespace trainerd {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

class AdaptableLinearImpl;  // adaptable_linear.h

// One linear layer of a model, by its module name ("model.layers.0.self_attn.q_proj"):
// what a LoRA adapter may wrap.
struct LinearLayer {
  std::string name;
  AdaptableLinearImpl* layer;
};

class Model {
 public:
  virtual ~Model() = default;

  // Maps a batch of normalised inputs to logits [B, classes] or predictions [B, outputs].
  virtual torch::Tensor Forward(const torch::Tensor& inputs) = 0;
  // The trained parameters and the buffers by dotted name ("layers.0.weight"), as in a
  // PyTorch state dict: what the optimizer updates, gradients are reduced over, and a
  // checkpoint holds.
  virtual NamedTensors NamedParameters() const = 0;
  virtual NamedTensors NamedBuffers() const = 0;
  // Tensors the model computes with but never trains (a LoRA job's frozen base): ranks
  // start from the same ones, nothing else touches them. Named as BlockPrefixes names the
  // blocks, so that a sharding strategy shards each with its block.
  virtual NamedTensors FrozenState() const { return {}; }
  // The linear layers an adapter may wrap, in module order (empty: none).
  virtual std::vector<LinearLayer> LinearLayers() { return {}; }
  // Training mode turns dropout on.
  virtual void SetTraining(bool training) = 0;
  // Moves parameters and buffers to `device` (before the optimizer is built).
  virtual void To(const torch::Device& device) = 0;
  // Writes a TorchScript module that Python loads with torch.jit.load. May throw.
  virtual void SaveTorchScript(std::ostream& out) const = 0;
  // False for a model whose portable form is a Hugging Face folder instead (no model.pt).
  virtual bool HasTorchScript() const { return true; }
  // The files saved beside the weights so that transformers loads them: config.json and
  // the folder's generation and tokenizer configs, by file name (empty: the model is not
  // a transformers architecture).
  virtual std::map<std::string, std::string> HfFolderFiles() const { return {}; }
  // The state under transformers' names, for the saved folder and the checkpoints (the
  // built-in gpt maps its own names to LlamaForCausalLM's).
  virtual NamedTensors HfState() const { return NamedState(); }
  // The stem of the weights files: "model" (model.safetensors, or shards and
  // model.safetensors.index.json), or "adapter_model" for a LoRA adapter.
  virtual std::string WeightsFilePrefix() const { return "model"; }
  // Files a saved model folder gets beside the others, by path (a LoRA job's merged/
  // folder when peft.merge_on_save), weights in files of at most `max_shard_bytes`.
  virtual std::map<std::string, std::string> MergedFolderFiles(int64_t /*max_shard_bytes*/) const { return {}; }
  // HfState's inverse: `tensors` under transformers' names renamed (and the split ones
  // joined) to NamedState's names. Tensors under the model's own names (checkpoints of
  // earlier versions) come back unchanged.
  virtual std::map<std::string, torch::Tensor> FromHfNames(std::map<std::string, torch::Tensor> tensors) const {
    return tensors;
  }

  // Optional features of token models (the built-in gpt and text_classifier, and the
  // Hugging Face architectures); the defaults say a model lacks them.
  // NEFTune: while training, add uniform noise in [-1, 1] x alpha / sqrt(L x d) to the
  // embedding output (HF's neftune hook); 0 turns it off. False if unsupported.
  virtual bool SetNeftuneNoiseAlpha(double /*alpha*/) { return false; }
  // The embedding layer's output for token ids [B, L], noise included (in training).
  virtual torch::Tensor InputEmbeddings(const torch::Tensor& ids) {
    throw std::invalid_argument("this model has no token embeddings");
  }
  // Gradient checkpointing: blocks keep only their inputs and recompute activations in
  // backward. False if unsupported.
  virtual bool SetGradientCheckpointing(bool /*enabled*/) { return false; }
  // The repeated blocks (transformer layers) by their parameters' name prefix
  // ("model.layers.0."), in forward order: the units a sharding strategy gathers one at
  // a time. Empty: the model has none.
  virtual std::vector<std::string> BlockPrefixes() const { return {}; }
  // Runs every block's forward through `wrapper` (block_runner.h; null: directly). False
  // if the model has no blocks.
  virtual bool SetBlockWrapper(BlockWrapper /*wrapper*/) { return false; }
  // Fused (Liger) kernels, see liger_kernels.h. False if unsupported.
  virtual bool SetLigerKernels(const LigerKernels& /*kernels*/) { return false; }
  // A causal LM's summed next-token loss computed by the model itself (the fused loss
  // kernels), from token ids and labels [B, L]; the shift happens inside. An undefined
  // tensor when the model does not compute its own loss: use Forward's logits then.
  virtual torch::Tensor CausalLmLossSum(const torch::Tensor& /*ids*/, const torch::Tensor& /*labels*/,
                                        double /*label_smoothing*/) {
    return {};
  }
  // Where the parameters the model was built without come from (deferred_weights.h:
  // cpu_ram_efficient_loading), or null when every parameter has its data. Once a
  // sharding strategy has read them, it calls set_deferred_weights(nullptr).
  virtual const DeferredWeights* deferred_weights() const { return deferred_weights_.get(); }
  virtual void set_deferred_weights(std::unique_ptr<DeferredWeights> weights) { deferred_weights_ = std::move(weights); }

  std::vector<torch::Tensor> Parameters() const;
  // Parameters then buffers: everything a state dict or a checkpoint holds.
  NamedTensors NamedState() const;
  // The trained parameters' elements.
  int64_t NumParameters() const;
  // Every parameter's elements, frozen ones included (peft's "all params").
  int64_t NumAllParameters() const;

 private:
  std::unique_ptr<DeferredWeights> deferred_weights_;
};


// A LibTorch module's parameters by their dotted names (for Model::NamedParameters).
NamedTensors ModuleParameters(const torch::nn::Module& module);

// {name: tensor} for every parameter and buffer, in torch.save's format: Python's
// torch.load of these bytes returns a state dict.
std::vector<char> SerializeStateDict(const Model& model);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_MODEL_H_
