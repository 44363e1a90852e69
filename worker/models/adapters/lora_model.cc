#include "worker/models/adapters/lora_model.h"

#include <cmath>
#include <set>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "spec/confined_file.h"
#include "spec/adapter_config.h"
#include "spec/lora_config.h"
#include "worker/models/adaptable_linear.h"
#include "worker/models/forwarding_model.h"
#include "worker/models/hf/hf_weights.h"
#include "worker/models/safetensors.h"

namespace trainerd {
namespace {

using trainer::v1::PeftConfig;

// An adapter file is small next to the base, but modules_to_save may hold a large head.
constexpr size_t kMaxAdapterFileBytes = size_t{16} << 30;

// One layer's LoRA pair. Its tensors keep their identity (the optimizer holds them).
class LoraLinear : public LinearAdapter {
 public:
  LoraLinear(const AdaptableLinearImpl& layer, const PeftConfig& peft)
      : scaling_(LoraScaling(peft)), dropout_(peft.lora_dropout()) {
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat).device(layer.weight.device());
    a_ = torch::empty({peft.r(), layer.in_features()}, f32);
    b_ = torch::empty({layer.out_features(), peft.r()}, f32);
    torch::NoGradGuard no_grad;
    // peft's reset_lora_parameters: A as nn.Linear's weight, B zero; with
    // init_lora_weights false both keep nn.Linear's initialisation.
    torch::nn::init::kaiming_uniform_(a_, std::sqrt(5.0));
    if (peft.init_lora_weights()) {
      b_.zero_();
    } else {
      torch::nn::init::kaiming_uniform_(b_, std::sqrt(5.0));
    }
    a_.set_requires_grad(true);
    b_.set_requires_grad(true);
  }

  torch::Tensor Delta(const torch::Tensor& x) override {
    torch::Tensor h = x.to(a_.scalar_type());
    if (training_ && dropout_ > 0) h = torch::dropout(h, dropout_, /*train=*/true);
    return torch::linear(torch::linear(h, a_), b_) * scaling_;
  }
  // scaling x B A, [out, in]: what merging adds to the layer's torch.nn.Linear weight.
  torch::Tensor DeltaWeight() const { return torch::matmul(b_, a_) * scaling_; }

  torch::Tensor& a() { return a_; }
  torch::Tensor& b() { return b_; }
  void set_training(bool training) { training_ = training; }

 private:
  torch::Tensor a_, b_;
  double scaling_, dropout_;
  bool training_ = true;
};

class LoraModel : public ForwardingModel {
 public:
  LoraModel(std::unique_ptr<Model> base, const PeftConfig& peft, std::string base_name)
      : ForwardingModel(std::move(base)), peft_(peft), base_name_(std::move(base_name)) {}
  ~LoraModel() override {
    for (Adapted& a : adapters_) a.layer->adapter = nullptr;
  }

  // Attaches adapters to `targets` and freezes the base but the trained tensors.
  void Build(const std::vector<LinearLayer>& targets) {
    std::set<std::string> targeted;
    for (const LinearLayer& t : targets) {
      auto adapter = std::make_unique<LoraLinear>(*t.layer, peft_);
      t.layer->adapter = adapter.get();
      trained_.emplace_back(absl::StrCat(kPeftPrefix, t.name, ".lora_A.weight"), adapter->a());
      trained_.emplace_back(absl::StrCat(kPeftPrefix, t.name, ".lora_B.weight"), adapter->b());
      target_names_.insert(t.name.substr(t.name.rfind('.') + 1));
      targeted.insert(t.name);
      adapters_.push_back({t.name, t.layer, std::move(adapter)});
    }
    for (auto& [name, tensor] : inner().NamedParameters()) {
      const std::string module = name.substr(0, name.rfind('.'));
      const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
      const bool trains = InModulesToSave(peft_, name) ||
                          (bias && (peft_.bias() == "all" || (peft_.bias() == "lora_only" && targeted.count(module))));
      tensor.set_requires_grad(trains);
      if (trains) {
        trained_.emplace_back(kPeftPrefix + name, tensor);
      } else {
        frozen_.emplace_back(kPeftPrefix + name, tensor);  // peft's name, as BlockPrefixes gives
      }
    }
  }

  NamedTensors NamedParameters() const override { return trained_; }
  NamedTensors NamedBuffers() const override { return {}; }
  NamedTensors FrozenState() const override {
    NamedTensors out = frozen_;
    for (auto& b : inner().NamedBuffers()) out.push_back(b);
    return out;
  }
  NamedTensors HfState() const override { return trained_; }
  std::map<std::string, torch::Tensor> FromHfNames(std::map<std::string, torch::Tensor> tensors) const override {
    return tensors;
  }
  std::string WeightsFilePrefix() const override { return "adapter_model"; }
  // The base's blocks under peft's names, which the trained tensors carry.
  std::vector<std::string> BlockPrefixes() const override {
    std::vector<std::string> prefixes = inner().BlockPrefixes();
    for (std::string& prefix : prefixes) prefix = kPeftPrefix + prefix;
    return prefixes;
  }
  bool HasTorchScript() const override { return false; }
  void SaveTorchScript(std::ostream&) const override {
    throw std::logic_error("a LoRA adapter is saved as a peft adapter folder, not as TorchScript");
  }
  // The tokenizer files of the base folder beside adapter_config.json (no config.json:
  // the folder is an adapter, not a model).
  std::map<std::string, std::string> HfFolderFiles() const override {
    std::map<std::string, std::string> files = inner().HfFolderFiles();
    files.erase("config.json");
    files.erase("generation_config.json");
    std::vector<std::string> targets(target_names_.begin(), target_names_.end());
    files[kAdapterConfigFile] = AdapterConfigJson(peft_, targets, base_name_);
    return files;
  }
  std::map<std::string, std::string> MergedFolderFiles(int64_t max_shard_bytes) const override {
    if (!peft_.merge_on_save()) return {};
    std::map<std::string, torch::Tensor> deltas;  // base weight name -> what merging adds
    torch::NoGradGuard no_grad;
    for (const Adapted& a : adapters_) {
      torch::Tensor delta = a.adapter->DeltaWeight();
      deltas[a.name + ".weight"] = a.layer->fan_in_fan_out() ? delta.t() : delta;
    }
    NamedTensors merged;
    for (const auto& [name, tensor] : inner().HfState()) {
      auto it = deltas.find(name);
      torch::Tensor t = tensor.detach();
      // Merged in float32, stored in the base's dtype, as merge_and_unload does.
      if (it != deltas.end()) t = (t.to(torch::kFloat) + it->second.to(t.device())).to(tensor.scalar_type());
      merged.emplace_back(name, t.cpu().contiguous());
    }
    std::map<std::string, std::string> files;
    for (auto& [name, bytes] : EncodeWeightFiles(merged, max_shard_bytes)) files["merged/" + name] = std::move(bytes);
    for (auto& [name, bytes] : inner().HfFolderFiles()) files["merged/" + name] = std::move(bytes);
    return files;
  }

  void SetTraining(bool training) override {
    inner().SetTraining(training);
    for (Adapted& a : adapters_) a.adapter->set_training(training);
  }
  void To(const torch::Device& device) override {
    inner().To(device);
    torch::NoGradGuard no_grad;
    for (Adapted& a : adapters_) {
      a.adapter->a().set_data(a.adapter->a().to(device));
      a.adapter->b().set_data(a.adapter->b().to(device));
    }
  }

 private:
  struct Adapted {
    std::string name;  // the layer's module name
    AdaptableLinearImpl* layer;
    std::unique_ptr<LoraLinear> adapter;
  };

  PeftConfig peft_;
  std::string base_name_;
  std::vector<Adapted> adapters_;
  std::set<std::string> target_names_;  // the targets' last name parts, as peft lists them
  NamedTensors trained_, frozen_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> CreateLoraModel(std::unique_ptr<Model> base, const PeftConfig& peft,
                                                       const std::string& base_name_or_path) {
  const std::vector<LinearLayer> linear = base->LinearLayers();
  std::vector<HfLinearLayer> shapes;
  for (const LinearLayer& l : linear) {
    shapes.push_back({l.name, l.layer->in_features(), l.layer->out_features(), l.layer->bias.defined()});
  }
  absl::StatusOr<std::vector<HfLinearLayer>> chosen = SelectLoraTargets(peft, shapes);
  if (!chosen.ok()) return chosen.status();
  std::vector<LinearLayer> targets;
  size_t next = 0;
  for (const LinearLayer& l : linear) {
    if (next < chosen->size() && (*chosen)[next].name == l.name) {
      targets.push_back(l);
      ++next;
    }
  }
  auto model = std::make_unique<LoraModel>(std::move(base), peft, base_name_or_path);
  model->Build(targets);
  return std::unique_ptr<Model>(std::move(model));
}

absl::Status LoadAdapterWeights(Model& model, const std::string& dir) {
  const std::string path = dir + "/" + kAdapterWeightsFile;
  absl::StatusOr<std::string> bytes = ReadConfined(path, kMaxAdapterFileBytes);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<NamedTensors> decoded = DecodeSafetensors(*bytes);
  if (!decoded.ok()) return absl::Status(decoded.status().code(), absl::StrCat(path, ": ", decoded.status().message()));
  std::map<std::string, torch::Tensor> by_name(decoded->begin(), decoded->end());
  torch::NoGradGuard no_grad;
  for (auto& [name, target] : model.NamedParameters()) {
    auto it = by_name.find(name);
    if (it == by_name.end()) return absl::InvalidArgumentError(absl::StrCat(path, ": no tensor named ", name));
    if (it->second.sizes() != target.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", name, " has shape ", c10::str(it->second.sizes()),
                                                     ", the adapter has ", c10::str(target.sizes())));
    }
    target.copy_(it->second);
    by_name.erase(it);
  }
  if (!by_name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": holds ", by_name.begin()->first, ", which this adapter configuration has no place for"));
  }
  return absl::OkStatus();
}

}  // namespace trainerd
