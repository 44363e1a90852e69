#include "proto/spec/spec_defaults.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace trainerd {

void ApplyDefaults(trainer::v1::JobSpec* spec) {
  auto* a = spec->mutable_training_args();
  if (!a->has_output_dir()) a->set_output_dir("trainer_output");
  if (!a->has_overwrite_output_dir()) a->set_overwrite_output_dir(false);
  if (!a->has_do_train()) a->set_do_train(true);
  if (!a->has_do_predict()) a->set_do_predict(false);
  if (!a->has_run_name()) a->set_run_name(a->output_dir());
  if (!a->has_num_train_epochs()) a->set_num_train_epochs(3.0);
  if (!a->has_max_steps()) a->set_max_steps(-1);
  if (!a->has_per_device_train_batch_size()) a->set_per_device_train_batch_size(8);
  if (!a->has_per_device_eval_batch_size()) a->set_per_device_eval_batch_size(8);
  if (!a->has_gradient_accumulation_steps()) a->set_gradient_accumulation_steps(1);
  if (!a->has_learning_rate()) a->set_learning_rate(5e-5);
  if (!a->has_weight_decay()) a->set_weight_decay(0.0);
  if (!a->has_adam_beta1()) a->set_adam_beta1(0.9);
  if (!a->has_adam_beta2()) a->set_adam_beta2(0.999);
  if (!a->has_adam_epsilon()) a->set_adam_epsilon(1e-8);
  if (!a->has_max_grad_norm()) a->set_max_grad_norm(1.0);
  if (!a->has_optim()) a->set_optim("adamw_torch");
  if (!a->has_optim_args()) a->set_optim_args("");
  if (!a->has_lr_scheduler_type()) a->set_lr_scheduler_type("linear");
  if (!a->has_warmup_steps()) a->set_warmup_steps(0);
  if (!a->has_warmup_ratio()) a->set_warmup_ratio(0.0);
  if (!a->has_eval_strategy()) a->set_eval_strategy("no");
  if (!a->has_logging_strategy()) a->set_logging_strategy("steps");
  if (!a->has_logging_steps()) a->set_logging_steps(500);
  // As in HF: eval_steps defaults to logging_steps.
  if (!a->has_eval_steps()) a->set_eval_steps(a->logging_steps());
  if (!a->has_eval_on_start()) a->set_eval_on_start(false);
  if (!a->has_logging_first_step()) a->set_logging_first_step(false);
  if (!a->has_log_level()) a->set_log_level("info");
  if (!a->has_seed()) a->set_seed(42);
  if (!a->has_data_seed()) a->set_data_seed(a->seed());
  if (!a->has_dataloader_drop_last()) a->set_dataloader_drop_last(false);
  if (!a->has_dataloader_num_workers()) a->set_dataloader_num_workers(0);
  if (!a->has_label_smoothing_factor()) a->set_label_smoothing_factor(0.0);
  if (!a->has_bf16()) a->set_bf16(false);
  if (!a->has_fp16()) a->set_fp16(false);
  if (!a->has_torch_num_threads()) a->set_torch_num_threads(0);
  if (!a->has_log_level_replica()) a->set_log_level_replica("warning");
  if (!a->has_log_on_each_node()) a->set_log_on_each_node(true);
  if (!a->has_ddp_timeout()) a->set_ddp_timeout(300);
  if (!a->has_ddp_bucket_cap_mb()) a->set_ddp_bucket_cap_mb(25);
  if (!a->has_optimizer_sharding()) a->set_optimizer_sharding(false);
  if (!a->has_use_cpu()) a->set_use_cpu(false);
  if (!a->has_neftune_noise_alpha()) a->set_neftune_noise_alpha(0);
  if (!a->has_gradient_checkpointing()) a->set_gradient_checkpointing(false);
  if (!a->has_torch_compile()) a->set_torch_compile(false);
  if (!a->has_torch_compile_backend()) a->set_torch_compile_backend("torchscript");
  if (!a->has_torch_compile_mode()) a->set_torch_compile_mode("default");
  if (!a->has_use_liger_kernel()) a->set_use_liger_kernel(false);
  auto* liger = a->mutable_liger_kernel_config();
  if (!liger->has_rope()) liger->set_rope(true);
  if (!liger->has_swiglu()) liger->set_swiglu(true);
  if (!liger->has_rms_norm()) liger->set_rms_norm(true);
  if (!liger->has_cross_entropy()) liger->set_cross_entropy(false);
  // Liger turns the chunked loss on unless the plain fused loss was asked for.
  if (!liger->has_fused_linear_cross_entropy()) liger->set_fused_linear_cross_entropy(!liger->cross_entropy());
  if (!a->has_save_strategy()) a->set_save_strategy("steps");
  if (!a->has_save_steps()) a->set_save_steps(500);
  if (!a->has_save_total_limit()) a->set_save_total_limit(0);
  if (!a->has_save_only_model()) a->set_save_only_model(false);
  if (!a->has_save_on_each_node()) a->set_save_on_each_node(false);
  if (!a->has_resume_from_checkpoint()) a->set_resume_from_checkpoint("");
  if (!a->has_load_best_model_at_end()) a->set_load_best_model_at_end(false);
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
  if (!a->has_hub_dir()) a->set_hub_dir("");
  if (!a->has_hub_strategy()) a->set_hub_strategy("every_save");
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
