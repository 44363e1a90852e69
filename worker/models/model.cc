#include "worker/models/model.h"

#include <torch/csrc/jit/serialization/pickle.h>


namespace trainerd {

std::vector<torch::Tensor> Model::Parameters() const {
  std::vector<torch::Tensor> out;
  for (auto& [name, p] : NamedParameters()) out.push_back(p);
  return out;
}

NamedTensors Model::NamedState() const {
  NamedTensors out = NamedParameters();
  for (auto& b : NamedBuffers()) out.push_back(std::move(b));
  return out;
}

int64_t Model::NumParameters() const {
  int64_t n = 0;
  for (auto& [name, p] : NamedParameters()) n += p.numel();
  return n;
}

int64_t Model::NumAllParameters() const {
  int64_t n = NumParameters();
  for (auto& [name, t] : FrozenState()) n += t.numel();
  return n;
}

NamedTensors ModuleParameters(const torch::nn::Module& module) {
  NamedTensors out;
  for (const auto& item : module.named_parameters()) out.emplace_back(item.key(), item.value());
  return out;
}

std::vector<char> SerializeStateDict(const Model& model) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [name, t] : model.NamedState()) dict.insert(name, t.detach().cpu());
  return torch::jit::pickle_save(dict);
}

}  // namespace trainerd
