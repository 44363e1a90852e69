#include "worker/checkpoint/model_weights_part.h"

#include <map>
#include <memory>
#include <stdexcept>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "worker/models/hf/hf_weights.h"
#include "worker/models/safetensors.h"

namespace trainerd {

void CheckWeightsToSave(const Model& model, const NamedTensors& weights) {
  if (weights.empty()) {
    throw std::runtime_error(absl::StrCat("nothing to save: the model has no ", model.WeightsFilePrefix(), " tensors"));
  }
}

void ModelWeightsPart::SaveState(CheckpointContents& out) {
  if (!writes_ && !scope_) return;
  auto weights = std::make_shared<NamedTensors>();
  WithFullWeights(
      [&] {
        if (!writes_) return;
        torch::NoGradGuard no_grad;
        for (auto& [name, t] : model_->HfState()) weights->emplace_back(name, t.detach().clone());
      },
      /*write_back=*/false);
  if (!writes_) return;
  CheckWeightsToSave(*model_, *weights);
  // One file, or save_pretrained's shards and index.
  const std::string prefix = model_->WeightsFilePrefix();
  const std::vector<WeightShard> shards = PlanWeightShards(*weights, max_shard_bytes_, prefix);
  for (const WeightShard& shard : shards) {
    out.PutLater(shard.file, [weights, tensors = shard.tensors] {
      NamedTensors part;
      for (size_t k : tensors) part.push_back((*weights)[k]);
      return EncodeSafetensors(part, {{"format", "pt"}});
    });
  }
  if (shards.size() > 1) out.Put(prefix + ".safetensors.index.json", WeightIndexJson(*weights, shards));
}

void ModelWeightsPart::LoadState(const CheckpointContents& in) {
  WithFullWeights(
      [&] {
        LoadModelWeights(*model_, [&in](const std::string& name) -> const std::string* {
          return in.Has(name) ? &in.Need(name) : nullptr;
        });
      },
      /*write_back=*/true);
}

void LoadModelWeights(Model& model, const std::function<const std::string*(const std::string&)>& file) {
  auto decoded = DecodeWeightFiles(file, model.WeightsFilePrefix());
  if (!decoded.ok()) throw std::invalid_argument(std::string(decoded.status().message()));
  const std::map<std::string, torch::Tensor> by_name =
      model.FromHfNames(std::map<std::string, torch::Tensor>(decoded->begin(), decoded->end()));
  NamedTensors targets = model.NamedState();
  torch::NoGradGuard no_grad;
  for (auto& [name, target] : targets) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw std::invalid_argument(absl::StrCat("weights: no tensor named ", name));
    if (it->second.sizes() != target.sizes()) {
      throw std::invalid_argument(absl::StrCat("weights: ", name, " has shape ", c10::str(it->second.sizes()),
                                               ", the model has ", c10::str(target.sizes())));
    }
    target.copy_(it->second);
  }
}

}  // namespace trainerd
