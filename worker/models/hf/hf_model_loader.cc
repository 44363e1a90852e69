#include "worker/models/hf/hf_model_loader.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/models/hf/hf_weights.h"
#include "worker/models/hf/llama_model.h"

namespace trainerd {

absl::StatusOr<std::unique_ptr<Model>> LoadHfModel(const std::string& dir, const HfConfig& config,
                                                   const std::string& torch_dtype) {
  absl::StatusOr<torch::ScalarType> dtype = HfDtype(torch_dtype, config.torch_dtype);
  if (!dtype.ok()) return dtype.status();
  std::unique_ptr<Model> model = CreateLlamaModel(config, *dtype);
  absl::StatusOr<NamedTensors> weights = ReadHfWeights(dir, *dtype);
  if (!weights.ok()) return weights.status();
  // The heads of the two tasks: a causal LM's checkpoint fine-tuned for classification
  // has lm_head but no score (and the other way round).
  const bool classifier = config.kind == HfArchitecture::kLlamaForSequenceClassification;
  const std::set<std::string> own_head = {classifier ? "score." : "lm_head."};
  const std::set<std::string> other_head = {classifier ? "lm_head." : "score."};
  absl::StatusOr<WeightsReport> report = AssignHfWeights(model->NamedState(), *weights, own_head, other_head);
  if (!report.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("model.name_or_path: ", dir, ": the weights do not fit ",
                                                   config.architecture, ": ", report.status().message()));
  }
  if (!report->unused.empty()) {
    spdlog::warn("Some weights of the model checkpoint at {} were not used when initializing {}: [{}]", dir,
                 config.architecture, absl::StrJoin(report->unused, ", "));
  }
  if (!report->newly_initialized.empty()) {
    spdlog::warn("Some weights of {} were not initialized from the model checkpoint at {} and are newly "
                 "initialized: [{}]. You should probably TRAIN this model on a down-stream task to be able to use "
                 "it for predictions and inference.",
                 config.architecture, dir, absl::StrJoin(report->newly_initialized, ", "));
  }
  return model;
}

absl::StatusOr<std::unique_ptr<Model>> CreateHfModel(const trainer::v1::ModelSpec& spec, const DatasetBundle& data) {
  absl::StatusOr<HfConfig> config = ReadHfConfig(spec.name_or_path());
  if (!config.ok()) return absl::Status(config.status().code(), absl::StrCat("model.name_or_path: ", config.status().message()));
  if (data.tokenizer && data.vocab_size > config->vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("data.tokenizer: its ", data.vocab_size, " tokens do not fit the ",
                                                   config->vocab_size, " of model.name_or_path's vocabulary"));
  }
  const bool classifier = config->kind == HfArchitecture::kLlamaForSequenceClassification;
  if (data.causal_lm && classifier) {
    return absl::InvalidArgumentError(absl::StrCat("model.name_or_path: ", config->architecture,
                                                   " classifies; the data has no labels (data.train.label_field)"));
  }
  if (!data.causal_lm) {
    if (data.regression) return absl::InvalidArgumentError("data.task: regression is not supported for hf models");
    if (!classifier) {
      // AutoModelForSequenceClassification over a causal LM's folder.
      std::string family = config->architecture.substr(0, config->architecture.find("For"));
      config->architecture = family + "ForSequenceClassification";
      config->kind = HfArchitecture::kLlamaForSequenceClassification;
      config->num_labels = data.num_classes;
    } else if (config->num_labels < data.num_classes) {
      return absl::InvalidArgumentError(absl::StrCat("model.name_or_path: the classifier has ", config->num_labels,
                                                     " labels; the data has ", data.num_classes, " classes"));
    }
  }
  const int64_t length = data.input_shape.empty() ? 0 : data.input_shape[0];
  if (config->sliding_window > 0 && length > config->sliding_window) {
    return absl::InvalidArgumentError(absl::StrCat("data.max_seq_length: ", length, " is longer than the model's ",
                                                   "sliding_window ", config->sliding_window, ", which is not implemented"));
  }
  return LoadHfModel(spec.name_or_path(), *config, spec.torch_dtype());
}

}  // namespace trainerd
