#include "spec/spec_defaults.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/text_format.h"

namespace trainerd {

// HF's TrainingArguments defaults that are constants, written as the README's
// training_args table shows them (strings without quotes). Defaults that follow other
// fields (eval_steps, data_seed, run_name, metric_for_best_model, ...) are rules in
// ApplyDefaults.
const std::vector<ArgumentDefault>& TrainingArgumentDefaults() {
  static const auto* defaults = new std::vector<ArgumentDefault>{
      {"output_dir", "trainer_output"},
      {"overwrite_output_dir", "false"},
      {"do_train", "true"},
      {"do_predict", "false"},
      {"num_train_epochs", "3.0"},
      {"max_steps", "-1"},
      {"per_device_train_batch_size", "8"},
      {"per_device_eval_batch_size", "8"},
      {"gradient_accumulation_steps", "1"},
      {"learning_rate", "5e-5"},
      {"weight_decay", "0.0"},
      {"adam_beta1", "0.9"},
      {"adam_beta2", "0.999"},
      {"adam_epsilon", "1e-8"},
      {"max_grad_norm", "1.0"},
      {"optim", "adamw_torch"},
      {"optim_args", ""},
      {"lr_scheduler_type", "linear"},
      {"warmup_steps", "0"},
      {"warmup_ratio", "0.0"},
      {"eval_strategy", "no"},
      {"logging_strategy", "steps"},
      {"logging_steps", "500"},
      {"eval_on_start", "false"},
      {"logging_first_step", "false"},
      {"log_level", "info"},
      {"seed", "42"},
      {"dataloader_drop_last", "false"},
      {"dataloader_num_workers", "0"},
      {"label_smoothing_factor", "0.0"},
      {"bf16", "false"},
      {"fp16", "false"},
      {"torch_num_threads", "0"},
      {"log_level_replica", "warning"},
      {"log_on_each_node", "true"},
      {"ddp_timeout", "300"},
      {"ddp_bucket_cap_mb", "25"},
      {"optimizer_sharding", "false"},
      {"use_cpu", "false"},
      {"neftune_noise_alpha", "0"},
      {"gradient_checkpointing", "false"},
      {"torch_compile", "false"},
      {"torch_compile_backend", "torchscript"},
      {"torch_compile_mode", "default"},
      {"use_liger_kernel", "false"},
      {"save_strategy", "steps"},
      {"save_steps", "500"},
      {"save_total_limit", "0"},
      {"save_only_model", "false"},
      {"save_on_each_node", "false"},
      {"resume_from_checkpoint", ""},
      {"load_best_model_at_end", "false"},
      {"hub_dir", ""},
      {"hub_strategy", "every_save"},
  };
  return *defaults;
}

namespace {

// Sets every field of `defaults` that `message` leaves unset.
void ApplyConstantDefaults(const std::vector<ArgumentDefault>& defaults, google::protobuf::Message* message) {
  const google::protobuf::Descriptor* descriptor = message->GetDescriptor();
  const google::protobuf::Reflection* reflection = message->GetReflection();
  for (const ArgumentDefault& d : defaults) {
    const google::protobuf::FieldDescriptor* field = descriptor->FindFieldByName(d.field);
    // A name or value that does not fit the message is a bug spec_test finds.
    if (field == nullptr || reflection->HasField(*message, field)) continue;
    if (field->type() == google::protobuf::FieldDescriptor::TYPE_STRING) {
      reflection->SetString(message, field, d.value);
    } else {
      google::protobuf::TextFormat::ParseFieldValueFromString(d.value, field, message);
    }
  }
}

}  // namespace

void ApplyDefaults(trainer::v1::JobSpec* spec) {
  auto* a = spec->mutable_training_args();
  ApplyConstantDefaults(TrainingArgumentDefaults(), a);
  if (!a->has_run_name()) a->set_run_name(a->output_dir());
  // As in HF: eval_steps defaults to logging_steps.
  if (!a->has_eval_steps()) a->set_eval_steps(a->logging_steps());
  if (!a->has_data_seed()) a->set_data_seed(a->seed());
  auto* liger = a->mutable_liger_kernel_config();
  if (!liger->has_rope()) liger->set_rope(true);
  if (!liger->has_swiglu()) liger->set_swiglu(true);
  if (!liger->has_rms_norm()) liger->set_rms_norm(true);
  if (!liger->has_cross_entropy()) liger->set_cross_entropy(false);
  // Liger turns the chunked loss on unless the plain fused loss was asked for.
  if (!liger->has_fused_linear_cross_entropy()) liger->set_fused_linear_cross_entropy(!liger->cross_entropy());
  // HF: metric_for_best_model defaults to "loss" when the best model matters.
  if (!a->has_metric_for_best_model()) {
    const bool needs_metric = a->load_best_model_at_end() || a->save_strategy() == "best" ||
                              a->lr_scheduler_type() == "reduce_lr_on_plateau";
    for (const auto& cb : spec->callbacks()) {
      if (cb.name() == "early_stopping") a->set_metric_for_best_model("loss");
    }
    if (needs_metric) a->set_metric_for_best_model("loss");
  }
  if (!a->has_greater_is_better() && a->has_metric_for_best_model()) {
    const std::string& m = a->metric_for_best_model();
    a->set_greater_is_better(!(m.size() >= 4 && m.compare(m.size() - 4, 4, "loss") == 0));
  }
  if (!a->has_hub_model_id()) {
    std::string dir = a->output_dir();
    while (!dir.empty() && dir.back() == '/') dir.pop_back();
    a->set_hub_model_id(dir.substr(dir.find_last_of('/') + 1));
  }

  auto* data = spec->mutable_data();
  if (data->task().empty()) data->set_task("classification");
  const bool has_eval_data = !data->eval().path().empty() || data->eval_split() > 0;
  // HF: do_eval is true when an evaluation strategy is set; here also when eval data exists.
  if (!a->has_do_eval()) a->set_do_eval(a->eval_strategy() != "no" || has_eval_data);

  auto* model = spec->mutable_model();
  if (model->type().empty() && !model->name_or_path().empty()) model->set_type("hf");
  if (model->activation().empty()) model->set_activation("relu");
  if (model->type() == "mlp" && model->hidden_sizes().empty()) model->add_hidden_sizes(256);
  if (model->type() == "cnn") {
    if (model->conv_channels().empty()) {
      model->add_conv_channels(32);
      model->add_conv_channels(64);
    }
    if (model->hidden_sizes().empty()) model->add_hidden_sizes(128);
  }

  for (auto& cb : *spec->mutable_callbacks()) {
    if (cb.name() == "early_stopping" && cb.early_stopping_patience() == 0) {
      cb.set_early_stopping_patience(1);
    }
  }

  auto* loss = spec->mutable_loss();
  if (loss->type().empty()) {
    loss->set_type(data->task() == "regression" ? "mse" : "cross_entropy");
  }
}

absl::StatusOr<std::map<std::string, double>> ParseOptimArgs(const std::string& text) {
  std::map<std::string, double> out;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::vector<std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    std::string key(absl::StripAsciiWhitespace(kv[0]));
    if (kv.size() != 2 || key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", absl::StripAsciiWhitespace(item), "\" is not key=value"));
    }
    std::string value = absl::AsciiStrToLower(absl::StripAsciiWhitespace(kv[1]));
    double v;
    if (value == "true") {
      v = 1;
    } else if (value == "false") {
      v = 0;
    } else if (!absl::SimpleAtod(value, &v)) {
      return absl::InvalidArgumentError(absl::StrCat(key, "=", value, " is not a number"));
    }
    out[key] = v;
  }
  return out;
}

}  // namespace trainerd
