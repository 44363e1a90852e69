#include "worker/models/model_factory.h"

#include <unistd.h>

#include <spdlog/spdlog.h>
#include <torch/script.h>

#include "absl/strings/str_cat.h"
#include "spec/confined_file.h"
#include "worker/models/builtin_net.h"
#include "worker/data/dataset_factory.h"
#include "worker/models/builtin_text_model.h"
#include "spec/fsdp_options.h"
#include "spec/hf_config.h"
#include "spec/adapter_config.h"
#include "worker/models/adapters/lora_model.h"
#include "worker/models/hf/hf_model_loader.h"

namespace trainerd {
namespace {

// A user's TorchScript module, trained as-is.
class ScriptModel : public Model {
 public:
  explicit ScriptModel(torch::jit::Module module) : module_(std::move(module)) {}

  torch::Tensor Forward(const torch::Tensor& inputs) override {
    return module_.forward({inputs}).toTensor();
  }
  NamedTensors NamedParameters() const override {
    NamedTensors out;
    for (const auto& p : module_.named_parameters(/*recurse=*/true)) out.emplace_back(p.name, p.value);
    return out;
  }
  NamedTensors NamedBuffers() const override {
    NamedTensors out;
    for (const auto& b : module_.named_buffers(/*recurse=*/true)) out.emplace_back(b.name, b.value);
    return out;
  }
  void SetTraining(bool training) override { module_.train(training); }
  void To(const torch::Device& device) override { module_.to(device); }
  void SaveTorchScript(std::ostream& out) const override { module_.save(out); }

 private:
  mutable torch::jit::Module module_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> CreateModel(const trainer::v1::ModelSpec& spec,
                                                   const DatasetBundle& data) {
  if (spec.type() == "torchscript") {
    absl::StatusOr<ConfinedFile> file = OpenConfined(spec.path());
    if (!file.ok()) return absl::Status(file.status().code(), absl::StrCat("model.path: ", file.status().message()));
    try {
      return std::unique_ptr<Model>(new ScriptModel(torch::jit::load(file->path())));
    } catch (const c10::Error& e) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model.path: ", spec.path(), " is not a TorchScript module: ", e.what_without_backtrace()));
    }
  }
  if (spec.type() == "gpt" || spec.type() == "text_classifier") return CreateTextModel(spec, data);
  if (spec.type() == "hf") {
    absl::StatusOr<HfConfig> config = ReadHfConfig(spec.name_or_path());
    if (!config.ok()) {
      return absl::Status(config.status().code(), absl::StrCat("model.name_or_path: ", config.status().message()));
    }
    return CreateHfModel(spec, *std::move(config), data);
  }
  if (data.tokenizer) {
    return absl::InvalidArgumentError(absl::StrCat("model.type: ", spec.type(),
                                                   " does not read text; use gpt or text_classifier"));
  }
  if (spec.type() != "mlp" && spec.type() != "cnn") {
    return absl::InvalidArgumentError(absl::StrCat("model.type: \"", spec.type(), "\" is not supported"));
  }
  if (spec.type() == "cnn" && data.input_shape.size() != 3) {
    return absl::InvalidArgumentError(
        "model.type: cnn needs image inputs [channels, height, width]; use mlp for tables");
  }
  int64_t outputs = spec.num_outputs();
  if (outputs == 0) outputs = data.regression ? 1 : data.num_classes;
  if (!data.regression && outputs < data.num_classes) {
    return absl::InvalidArgumentError(absl::StrCat("model.num_outputs: ", outputs,
                                                   " is fewer than the ", data.num_classes,
                                                   " classes in the data"));
  }
  return CreateBuiltinNet(spec, data.input_shape, outputs);
}

absl::StatusOr<DataAndModel> LoadDataAndModel(const trainer::v1::JobSpec& spec) {
  std::optional<TokenSpace> tokens;
  std::optional<HfConfig> hf_config;  // read once: it fixes the data's tokens and builds the model
  if (spec.model().type() == "hf") {
    absl::StatusOr<HfConfig> config = ReadHfConfig(spec.model().name_or_path());
    if (!config.ok()) {
      return absl::Status(config.status().code(), absl::StrCat("model.name_or_path: ", config.status().message()));
    }
    absl::StatusOr<HfTokenizerConfig> tokenizer = ReadHfTokenizerConfig(spec.model().name_or_path(), *config);
    if (!tokenizer.ok()) {
      return absl::Status(tokenizer.status().code(), absl::StrCat("model.name_or_path: ", tokenizer.status().message()));
    }
    const std::string sentencepiece = spec.model().name_or_path() + "/tokenizer.model";
    const std::string tokenizer_json = spec.model().name_or_path() + "/tokenizer.json";
    const std::string wordpiece = spec.model().name_or_path() + "/vocab.txt";
    tokens = TokenSpace{config->vocab_size,
                        config->pad_token_id,
                        ::access(sentencepiece.c_str(), F_OK) == 0 ? sentencepiece : "",
                        ::access(tokenizer_json.c_str(), F_OK) == 0 ? spec.model().name_or_path() : "",
                        tokenizer->add_bos,
                        tokenizer->add_eos,
                        config->kind == HfArchitecture::kBertForSequenceClassification &&
                                ::access(wordpiece.c_str(), F_OK) == 0
                            ? wordpiece
                            : "",
                        tokenizer->do_lower_case,
                        config->kind == HfArchitecture::kBertForSequenceClassification ? config->type_vocab_size : 0};
    hf_config = *std::move(config);
  }
  DataAndModel out;
  absl::StatusOr<DatasetBundle> data =
      LoadDatasets(spec.data(), spec.training_args().data_seed(), tokens ? &*tokens : nullptr);
  if (!data.ok()) return data.status();
  out.data = *std::move(data);
  std::optional<trainer::v1::PeftConfig> peft;
  if (hf_config) {
    // The adapter is fitted to the model as the task makes it: a causal LM's folder
    // trained on labels is its family's classifier.
    HfConfig task = *hf_config;
    if (!out.data.causal_lm && task.kind == HfArchitecture::kLlamaForCausalLM) {
      task.kind = HfArchitecture::kLlamaForSequenceClassification;
    }
    absl::StatusOr<std::optional<trainer::v1::PeftConfig>> effective = EffectivePeftConfig(spec, task);
    if (!effective.ok()) return effective.status();
    peft = *std::move(effective);
  }
  // Only the sharding reads the blocks' weights, each rank its slices of them.
  const FsdpOptions fsdp = ResolveFsdp(spec.training_args());
  const bool defer = fsdp.enabled && fsdp.cpu_ram_efficient_loading;
  if (defer && !hf_config) {
    spdlog::warn("training_args.fsdp_config.cpu_ram_efficient_loading: model.type {} is not loaded from a folder; "
                 "its weights are initialised on every rank", spec.model().type());
  }
  absl::StatusOr<std::unique_ptr<Model>> model =
      hf_config ? CreateHfModel(spec.model(), *std::move(hf_config), out.data, defer)
                : CreateModel(spec.model(), out.data);
  if (!model.ok()) return model.status();
  out.model = *std::move(model);
  if (!peft) return out;
  absl::StatusOr<std::unique_ptr<Model>> lora = CreateLoraModel(std::move(out.model), *peft, spec.model().name_or_path());
  if (!lora.ok()) return lora.status();
  out.model = *std::move(lora);
  const std::string& adapter = spec.model().adapter_name_or_path();
  if (!adapter.empty()) {
    if (absl::Status s = LoadAdapterWeights(*out.model, adapter); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("model.adapter_name_or_path: ", s.message()));
    }
  }
  return out;
}

}  // namespace trainerd
