#include "worker/models/hf/hf_model_loader.h"

#include <algorithm>
#include <map>
#include <optional>

#include <spdlog/spdlog.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/models/deferred_weights.h"
#include "worker/models/hf/bert_model.h"
#include "worker/models/hf/gpt2_model.h"
#include "worker/models/hf/hf_weights.h"
#include "worker/models/hf/llama_model.h"

namespace trainerd {

namespace {

// What one architecture's folder holds besides the shared body: its base model's prefix
// (hub checkpoints of GPT-2 store names without it), its own task head (a base
// checkpoint may lack it) and the heads of other tasks (left unused).
// `ignored`: name endings of buffers older checkpoints hold that the model computes
// (transformers' _keys_to_ignore_on_load_unexpected).
struct Layout {
  std::string base_prefix;
  std::set<std::string> own_head, other_heads;
  std::vector<std::string> ignored;
};

Layout LayoutOf(HfArchitecture kind) {
  switch (kind) {
    case HfArchitecture::kLlamaForCausalLM: return {"model.", {"lm_head."}, {"score."}, {".rotary_emb.inv_freq"}};
    case HfArchitecture::kLlamaForSequenceClassification:
      return {"model.", {"score."}, {"lm_head."}, {".rotary_emb.inv_freq"}};
    case HfArchitecture::kGpt2LMHeadModel: return {"transformer.", {}, {"lm_head."}, {".attn.bias", ".attn.masked_bias"}};
    case HfArchitecture::kBertForSequenceClassification:
      return {"bert.", {"classifier.", "bert.pooler."}, {"cls."}, {".position_ids"}};
  }
  return {};
}

std::unique_ptr<Model> CreateNetwork(const HfConfig& config, torch::ScalarType dtype) {
  switch (config.kind) {
    case HfArchitecture::kGpt2LMHeadModel: return CreateGpt2Model(config, dtype);
    case HfArchitecture::kBertForSequenceClassification: return CreateBertModel(config, dtype);
    default: return CreateLlamaModel(config, dtype);
  }
}

// The parameters a model was built without, read from the folder they came from.
class FolderWeights : public DeferredWeights {
 public:
  FolderWeights(std::unique_ptr<HfWeightsFolder> folder, std::map<const c10::TensorImpl*, std::string> names)
      : folder_(std::move(folder)), names_(std::move(names)) {}
  bool Has(const torch::Tensor& param) const override { return names_.count(param.unsafeGetTensorImpl()) > 0; }
  absl::Status ReadSlice(const torch::Tensor& param, int64_t begin, torch::Tensor out) const override {
    auto it = names_.find(param.unsafeGetTensorImpl());
    if (it == names_.end()) return absl::NotFoundError("a parameter without data is not in the model's folder");
    return folder_->ReadSlice(it->second, begin, std::move(out));
  }

 private:
  std::unique_ptr<HfWeightsFolder> folder_;
  std::map<const c10::TensorImpl*, std::string> names_;  // parameter -> its name in the folder
};

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> LoadHfModel(const std::string& dir, const HfConfig& config,
                                                   const std::string& torch_dtype, bool defer_block_weights) {
  absl::StatusOr<torch::ScalarType> dtype = HfDtype(torch_dtype, config.torch_dtype);
  if (!dtype.ok()) return dtype.status();
  std::unique_ptr<Model> model;
  {
    std::optional<DeferBlockWeights> defer;
    if (defer_block_weights) defer.emplace();
    model = CreateNetwork(config, *dtype);
  }
  absl::StatusOr<std::unique_ptr<HfWeightsFolder>> folder = HfWeightsFolder::Open(dir);
  if (!folder.ok()) return folder.status();
  const Layout layout = LayoutOf(config.kind);
  std::vector<std::string> names;
  for (const std::string& name : (*folder)->names()) {
    const bool ignored = std::any_of(layout.ignored.begin(), layout.ignored.end(),
                                     [&](const std::string& end) { return absl::EndsWith(name, end); });
    if (!ignored) names.push_back(name);
  }
  // A folder saved from the base model alone ("h.0.attn...", not "transformer.h.0...").
  const bool prefixed = std::any_of(names.begin(), names.end(),
                                    [&](const std::string& name) { return absl::StartsWith(name, layout.base_prefix); });
  const NamedTensors targets = model->NamedState();
  std::map<std::string, torch::Tensor> by_name(targets.begin(), targets.end());
  // Tensors the model has data for are read whole; the others stand in by their shape
  // (AssignHfWeights checks it) and are read later, slice by slice, by the sharding.
  NamedTensors weights;
  std::map<const c10::TensorImpl*, std::string> deferred;
  for (const std::string& name : names) {
    const std::string model_name = prefixed ? name : layout.base_prefix + name;
    auto target = by_name.find(model_name);
    if (target != by_name.end() && !HasData(target->second)) {
      const SafetensorsEntry* entry = (*folder)->Find(name);
      weights.emplace_back(model_name, TensorWithoutData(entry->shape, target->second.options()));
      deferred[target->second.unsafeGetTensorImpl()] = name;
    } else {
      weights.emplace_back(model_name, (*folder)->Read(name, *dtype));
    }
  }
  for (const auto& [name, t] : targets) {
    if (!HasData(t) && !deferred.count(t.unsafeGetTensorImpl())) {
      return absl::InvalidArgumentError(absl::StrCat("model.name_or_path: ", dir, ": lacks ", name,
                                                     ", which cpu_ram_efficient_loading reads from it"));
    }
  }
  absl::StatusOr<WeightsReport> report = AssignHfWeights(targets, weights, layout.own_head, layout.other_heads);
  if (!report.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("model.name_or_path: ", dir, ": the weights do not fit ",
                                                   config.architecture, ": ", report.status().message()));
  }
  if (!deferred.empty()) {
    spdlog::info("cpu_ram_efficient_loading: {} of {} tensors are left in {} for each rank to read its slices",
                 deferred.size(), names.size(), dir);
    model->set_deferred_weights(std::make_unique<FolderWeights>(*std::move(folder), std::move(deferred)));
  }
  if (!report->unused.empty()) {
    spdlog::warn("Some weights of the model checkpoint at {} were not used when initializing {}: [{}]", dir,
                 config.architecture, absl::StrJoin(report->unused, ", "));
  }
  if (!report->resized.empty()) {
    spdlog::warn("Some weights of {} were not initialized from the model checkpoint at {} and are newly initialized "
                 "because the shapes did not match (ignore_mismatched_sizes): {}. You should probably TRAIN this model "
                 "on a down-stream task to be able to use it for predictions and inference.",
                 config.architecture, dir, absl::StrJoin(report->resized, "; "));
  }
  if (!report->newly_initialized.empty()) {
    spdlog::warn("Some weights of {} were not initialized from the model checkpoint at {} and are newly "
                 "initialized: [{}]. You should probably TRAIN this model on a down-stream task to be able to use "
                 "it for predictions and inference.",
                 config.architecture, dir, absl::StrJoin(report->newly_initialized, ", "));
  }
  return model;
}

absl::StatusOr<std::unique_ptr<Model>> CreateHfModel(const trainer::v1::ModelSpec& spec, HfConfig config,
                                                     const DatasetBundle& data, bool defer_block_weights) {
  const bool classifier = IsSequenceClassifier(config.kind);
  if (data.causal_lm && classifier) {
    return absl::InvalidArgumentError(absl::StrCat("model.name_or_path: ", config.architecture,
                                                   " classifies; the data has no labels (data.train.label_field)"));
  }
  if (!data.causal_lm) {
    if (data.regression) return absl::InvalidArgumentError("data.task: regression is not supported for hf models");
    if (config.kind == HfArchitecture::kGpt2LMHeadModel) {
      return absl::InvalidArgumentError(
          "model.name_or_path: GPT2ForSequenceClassification is not implemented; GPT-2 trains as a causal LM");
    }
    if (!classifier) {
      // AutoModelForSequenceClassification over a causal LM's folder.
      std::string family = config.architecture.substr(0, config.architecture.find("For"));
      config.architecture = family + "ForSequenceClassification";
      config.kind = HfArchitecture::kLlamaForSequenceClassification;
      config.num_labels = data.num_classes;
    } else if (config.num_labels != data.num_classes) {
      // As from_pretrained(num_labels=N, ignore_mismatched_sizes=True): the head gets the
      // data's number of labels and starts afresh; the body keeps its weights.
      spdlog::warn("num_labels: {} has {} labels and the data {} classes: its classifier head is resized to {} "
                   "and newly initialized", config.architecture, config.num_labels, data.num_classes,
                   data.num_classes);
      config.num_labels = data.num_classes;
    }
    // config.json names the labels as the data does (id2label, label2id), as a model
    // fine-tuned with HF's run_classification script has them.
    if (static_cast<int64_t>(data.class_names.size()) == config.num_labels) config.id2label = data.class_names;
  }
  const int64_t length = data.input_shape.empty() ? 0 : data.input_shape.back();
  if (config.sliding_window > 0 && length > config.sliding_window) {
    return absl::InvalidArgumentError(absl::StrCat("data.max_seq_length: ", length, " is longer than the model's ",
                                                   "sliding_window ", config.sliding_window, ", which is not implemented"));
  }
  return LoadHfModel(spec.name_or_path(), config, spec.torch_dtype(), defer_block_weights);
}

}  // namespace trainerd
