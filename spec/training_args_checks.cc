#include "spec/training_args_checks.h"

#include <cmath>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "spec/deepspeed_config.h"
#include "spec/fsdp_options.h"
#include "spec/spec_defaults.h"
#include "spec/target_modules.h"

namespace trainerd {
namespace {

using trainer::v1::JobSpec;

const std::map<std::string, std::vector<std::string>>& OptimizerArgNames() {
  static const auto* names = new std::map<std::string, std::vector<std::string>>{
      {"adamw_torch", {"amsgrad"}},
      {"sgd", {"momentum", "dampening", "nesterov"}},
      {"adagrad", {"lr_decay", "initial_accumulator_value", "eps"}},
      {"rmsprop", {"alpha", "eps", "momentum", "centered"}},
      {"adafactor",
       {"eps1", "eps2", "clip_threshold", "decay_rate", "beta1", "scale_parameter",
        "relative_step", "warmup_init"}},
      {"galore_adamw", {"rank", "update_proj_gap", "scale"}},
      {"galore_adamw_layerwise", {"rank", "update_proj_gap", "scale"}},
      {"galore_adafactor", {"rank", "update_proj_gap", "scale"}},
  };
  return *names;
}

void CheckCheckpointArgs(const JobSpec& spec, Checker* c) {
  const auto& a = spec.training_args();
  const std::string p = "training_args.";
  c->Choice(p + "save_strategy", a.save_strategy(), {"no", "steps", "epoch", "best"});
  if (a.save_strategy() == "steps") c->StepsOrRatio(p + "save_steps", a.save_steps());
  if (a.save_total_limit() < 0) c->Add(p + "save_total_limit", "must be >= 0 (0 keeps every checkpoint)");
  const std::string& resume = a.resume_from_checkpoint();
  if (!resume.empty() && resume != "true" && resume != "false") c->File(p + "resume_from_checkpoint", resume);
  c->Choice(p + "hub_strategy", a.hub_strategy(), {"end", "every_save", "checkpoint", "all_checkpoints"});
  for (int i = 0; i < a.report_to_size(); ++i) {
    c->Choice(absl::StrCat(p, "report_to[", i, "]"), a.report_to(i), {"tensorboard", "all", "none"});
  }
  // The event files stay inside the job's folder: a path that leaves it is refused.
  const std::string& logging_dir = a.logging_dir();
  const bool inside = logging_dir.empty() || (logging_dir[0] != '/' && logging_dir.find("..") == std::string::npos) ||
                      (logging_dir.rfind(a.output_dir() + "/", 0) == 0 && logging_dir.find("..") == std::string::npos);
  if (!inside) c->Add(p + "logging_dir", "must be a folder inside output_dir (a relative path is taken from it)");

  const bool wants_best = a.load_best_model_at_end() || a.save_strategy() == "best";
  if (wants_best && a.eval_strategy() == "no") {
    c->Add(p + "eval_strategy", "load_best_model_at_end and save_strategy: best need evaluations (steps or epoch)");
  }
  if (a.load_best_model_at_end() && a.save_strategy() != "best" && a.eval_strategy() != "no") {
    if (a.save_strategy() != a.eval_strategy()) {
      c->Add(p + "save_strategy", "must match eval_strategy when load_best_model_at_end is set (as in HF)");
    } else if (a.save_strategy() == "steps" && a.save_steps() >= 1 && a.eval_steps() >= 1 &&
               static_cast<int64_t>(a.save_steps()) % static_cast<int64_t>(a.eval_steps()) != 0) {
      c->Add(p + "save_steps", "must be a multiple of eval_steps when load_best_model_at_end is set");
    }
  }
  if (a.has_metric_for_best_model()) {
    std::string m = a.metric_for_best_model();
    if (m.rfind("eval_", 0) == 0) m = m.substr(5);
    const bool known = m == "loss" ||
                       std::find(spec.metrics().begin(), spec.metrics().end(), m) != spec.metrics().end();
    if (!known) {
      c->Add(p + "metric_for_best_model",
             absl::StrCat("\"", a.metric_for_best_model(), "\" is not computed; use loss or one of metrics"));
    }
  }
  for (int i = 0; i < spec.callbacks_size(); ++i) {
    const auto& cb = spec.callbacks(i);
    const std::string f = absl::StrCat("callbacks[", i, "]");
    c->Choice(f + ".name", cb.name(), {"early_stopping", "stop_after_steps"});
    if (cb.name() == "early_stopping") {
      if (a.eval_strategy() == "no") c->Add(f, "early_stopping needs an eval_strategy (steps or epoch)");
      if (cb.early_stopping_patience() < 1) c->Add(f + ".early_stopping_patience", "must be >= 1");
      c->NonNegative(f + ".early_stopping_threshold", cb.early_stopping_threshold());
    }
    if (cb.name() == "stop_after_steps" && cb.steps() < 1) c->Add(f + ".steps", "must be >= 1");
  }
}

void CheckGaLoreArgs(const JobSpec& spec, const std::map<std::string, double>& optim_args, Checker* c) {
  const auto& a = spec.training_args();
  const std::string p = "training_args.";
  if (a.optim_target_modules().empty()) {
    c->Add(p + "optim_target_modules", absl::StrCat(a.optim(), " needs the weights to project (names or regexes)"));
  }
  for (int i = 0; i < a.optim_target_modules_size(); ++i) {
    if (absl::Status s = CheckTargetPattern(a.optim_target_modules(i)); !s.ok()) {
      c->Add(absl::StrCat(p, "optim_target_modules[", i, "]"), std::string(s.message()));
    }
  }
  for (const char* key : {"rank", "update_proj_gap"}) {
    auto it = optim_args.find(key);
    if (it != optim_args.end() && !(it->second >= 1 && it->second == std::floor(it->second))) {
      c->Add(p + "optim_args", absl::StrCat(key, " must be an integer >= 1"));
    }
  }
  if (optim_args.count("scale") && !(optim_args.at("scale") > 0)) c->Add(p + "optim_args", "scale must be > 0");
  if (a.optim() == "galore_adamw_layerwise") {
    // Each weight steps as soon as its gradient is ready, so nothing can accumulate or
    // be all-reduced or unscaled first (HF refuses the same).
    if (a.gradient_accumulation_steps() > 1) {
      c->Add(p + "gradient_accumulation_steps",
             "galore_adamw_layerwise steps each weight during backward and cannot accumulate gradients; use 1");
    }
    if (a.fp16()) {
      c->Add(p + "fp16", "galore_adamw_layerwise cannot unscale gradients before its per-weight steps; use bf16");
    }
  }
}

void CheckOptimizer(const JobSpec& spec, Checker* c) {
  const auto& a = spec.training_args();
  const std::string p = "training_args.";
  std::vector<std::string> optimizers;
  for (const auto& [name, unused] : OptimizerArgNames()) optimizers.push_back(name);
  c->Choice(p + "optim", a.optim(), optimizers);
  auto optim_args = ParseOptimArgs(a.optim_args());
  if (!optim_args.ok()) {
    c->Add(p + "optim_args", std::string(optim_args.status().message()));
  } else if (OptimizerArgNames().count(a.optim())) {
    const auto& allowed = OptimizerArgNames().at(a.optim());
    for (const auto& [key, unused] : *optim_args) {
      if (!OneOf(key, allowed)) {
        c->Add(p + "optim_args", absl::StrCat("\"", key, "\" is not an argument of ", a.optim(),
                                              "; ", Choices(allowed)));
      }
    }
  }

  if (absl::StartsWith(a.optim(), "galore_")) {
    CheckGaLoreArgs(spec, optim_args.ok() ? *optim_args : std::map<std::string, double>{}, c);
  }
}

void CheckSchedule(const trainer::v1::TrainingArguments& a, Checker* c) {
  const std::string p = "training_args.";
  const std::vector<std::string>& kSchedules = SupportedSchedules();
  c->Choice(p + "lr_scheduler_type", a.lr_scheduler_type(), kSchedules);
  const auto& kwarg_names = SchedulerKwargNames(a.lr_scheduler_type());
  for (const auto& [key, value] : a.lr_scheduler_kwargs().fields()) {
    if (OneOf(a.lr_scheduler_type(), kSchedules) && !OneOf(key, kwarg_names)) {
      c->Add(p + "lr_scheduler_kwargs." + key,
             absl::StrCat("not an argument of ", a.lr_scheduler_type(),
                          kwarg_names.empty() ? " (it takes none)" : "; " + Choices(kwarg_names)));
    }
  }
  if (a.lr_scheduler_type() == "cosine_with_min_lr") {
    const auto& f = a.lr_scheduler_kwargs().fields();
    if (f.count("min_lr") + f.count("min_lr_rate") != 1) {
      c->Add(p + "lr_scheduler_kwargs", "cosine_with_min_lr needs exactly one of min_lr, min_lr_rate");
    }
  }
  if (a.lr_scheduler_type() == "warmup_stable_decay" &&
      !a.lr_scheduler_kwargs().fields().count("num_decay_steps")) {
    c->Add(p + "lr_scheduler_kwargs.num_decay_steps", "required by warmup_stable_decay");
  }
  if (a.lr_scheduler_type() == "reduce_lr_on_plateau" && a.eval_strategy() == "no") {
    c->Add(p + "eval_strategy", "reduce_lr_on_plateau needs an evaluation strategy (steps or epoch)");
  }
  if (a.warmup_steps() < 0) c->Add(p + "warmup_steps", "must be >= 0");
  if (!(a.warmup_ratio() >= 0 && a.warmup_ratio() <= 1)) c->Add(p + "warmup_ratio", "must be in [0, 1]");
}

// Precision, NEFTune, torch_compile, fused kernels, checkpointing of activations.
void CheckSpeedOptions(const JobSpec& spec, Checker* c) {
  const auto& a = spec.training_args();
  const std::string p = "training_args.";
  if (a.fp16() && a.bf16()) c->Add(p + "fp16", "choose one of fp16 and bf16");
  if (!(a.neftune_noise_alpha() >= 0)) c->Add(p + "neftune_noise_alpha", "must be >= 0");
  const bool token_model = spec.model().type() == "gpt" || spec.model().type() == "text_classifier";
  const bool hf_model = spec.model().type() == "hf";
  if (a.neftune_noise_alpha() > 0 && !token_model && !hf_model) {
    c->Add(p + "neftune_noise_alpha", "needs a model with token embeddings (gpt, text_classifier or hf)");
  }
  if (a.torch_compile_backend() != "torchscript") {
    c->Add(p + "torch_compile_backend", absl::StrCat("\"", a.torch_compile_backend(),
                                                     "\" is not available in LibTorch; use torchscript"));
  }
  c->Choice(p + "torch_compile_mode", a.torch_compile_mode(), {"default"});
  if (a.torch_compile()) {
    if (spec.model().type() == "torchscript") {
      c->Add(p + "torch_compile", "a torchscript model already runs in the graph executor");
    }
    if (hf_model) c->Add(p + "torch_compile", "is not available for hf models yet");
    if (spec.model().dropout() > 0) c->Add(p + "torch_compile", "the compiled graph has no dropout: set model.dropout: 0");
    if (a.neftune_noise_alpha() > 0 || a.gradient_checkpointing()) {
      c->Add(p + "torch_compile", "cannot be combined with neftune_noise_alpha or gradient_checkpointing");
    }
  }
  if (a.use_liger_kernel()) {
    if (!token_model && !hf_model) {
      c->Add(p + "use_liger_kernel", "needs a text model (gpt, text_classifier, or an hf model of the Llama family)");
    }
    if (a.torch_compile()) c->Add(p + "use_liger_kernel", "cannot be combined with torch_compile");
    if (a.liger_kernel_config().cross_entropy() && a.liger_kernel_config().fused_linear_cross_entropy()) {
      c->Add(p + "liger_kernel_config", "cross_entropy and fused_linear_cross_entropy cannot both be on");
    }
  }
  if (a.gradient_checkpointing() && !token_model && !hf_model) {
    c->Add(p + "gradient_checkpointing", "needs a model made of blocks (gpt, text_classifier or hf)");
  }
}

}  // namespace

void CheckTrainingArgs(const JobSpec& spec, Checker* c) {
  const auto& a = spec.training_args();
  const std::string p = "training_args.";
  if (a.output_dir().empty()) c->Add(p + "output_dir", "must not be empty");
  if (a.max_steps() <= 0) c->Positive(p + "num_train_epochs", a.num_train_epochs());
  if (a.max_steps() == 0) c->Add(p + "max_steps", "must be > 0, or -1 to train for num_train_epochs");
  if (a.max_steps() < -1) c->Add(p + "max_steps", "must be > 0, or -1 to train for num_train_epochs");
  if (a.per_device_train_batch_size() < 1) c->Add(p + "per_device_train_batch_size", "must be >= 1");
  if (a.per_device_eval_batch_size() < 1) c->Add(p + "per_device_eval_batch_size", "must be >= 1");
  if (a.gradient_accumulation_steps() < 1) c->Add(p + "gradient_accumulation_steps", "must be >= 1");
  c->Positive(p + "learning_rate", a.learning_rate());
  c->NonNegative(p + "weight_decay", a.weight_decay());
  if (!(a.adam_beta1() >= 0 && a.adam_beta1() < 1)) c->Add(p + "adam_beta1", "must be in [0, 1)");
  if (!(a.adam_beta2() >= 0 && a.adam_beta2() < 1)) c->Add(p + "adam_beta2", "must be in [0, 1)");
  c->Positive(p + "adam_epsilon", a.adam_epsilon());
  c->NonNegative(p + "max_grad_norm", a.max_grad_norm());

  CheckOptimizer(spec, c);

  CheckSchedule(a, c);
  static const std::vector<std::string> kStrategies = {"no", "steps", "epoch"};
  c->Choice(p + "eval_strategy", a.eval_strategy(), kStrategies);
  c->Choice(p + "logging_strategy", a.logging_strategy(), kStrategies);
  if (a.eval_strategy() == "steps") c->StepsOrRatio(p + "eval_steps", a.eval_steps());
  if (a.logging_strategy() == "steps") c->StepsOrRatio(p + "logging_steps", a.logging_steps());
  c->Choice(p + "log_level", a.log_level(), {"debug", "info", "warning", "error", "critical"});
  c->NonNegative(p + "seed", static_cast<double>(a.seed()));
  c->NonNegative(p + "data_seed", static_cast<double>(a.data_seed()));
  c->NonNegative(p + "dataloader_num_workers", static_cast<double>(a.dataloader_num_workers()));
  if (!(a.label_smoothing_factor() >= 0 && a.label_smoothing_factor() < 1)) {
    c->Add(p + "label_smoothing_factor", "must be in [0, 1)");
  }
  c->NonNegative(p + "torch_num_threads", static_cast<double>(a.torch_num_threads()));
  c->Choice(p + "log_level_replica", a.log_level_replica(), {"debug", "info", "warning", "error", "critical"});
  if (a.ddp_timeout() <= 0) c->Add(p + "ddp_timeout", "must be > 0 (seconds)");
  CheckSpeedOptions(spec, c);
  for (const std::string& problem : FindFsdpProblems(spec)) c->problems.push_back(problem);
  for (const std::string& problem : FindDeepSpeedProblems(spec)) c->problems.push_back(problem);
  if (!(a.ddp_bucket_cap_mb() > 0)) c->Add(p + "ddp_bucket_cap_mb", "must be > 0");

  CheckCheckpointArgs(spec, c);

  const bool has_eval_data = !spec.data().eval().path().empty() || spec.data().eval_split() > 0;
  if ((a.eval_strategy() != "no" || a.eval_on_start()) && !has_eval_data) {
    c->Add(p + "eval_strategy", "evaluation needs data.eval or data.eval_split");
  }
  if (a.do_eval() && !has_eval_data) c->Add(p + "do_eval", "needs data.eval or data.eval_split");
  if (a.do_predict() && spec.data().test().path().empty()) c->Add(p + "do_predict", "needs data.test");
}

std::vector<std::string> SupportedOptimizers() {
  std::vector<std::string> names;
  for (const auto& [name, args] : OptimizerArgNames()) names.push_back(name);
  return names;
}

const std::vector<std::string>& SupportedSchedules() {
  static const auto* names = new std::vector<std::string>{
      "linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
      "constant_with_warmup", "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr",
      "warmup_stable_decay"};
  return *names;
}

const std::vector<std::string>& SchedulerKwargNames(const std::string& type) {
  static const auto* names = new std::map<std::string, std::vector<std::string>>{
      {"cosine", {"num_cycles"}},
      {"cosine_with_restarts", {"num_cycles"}},
      {"polynomial", {"lr_end", "power"}},
      {"inverse_sqrt", {"timescale"}},
      {"reduce_lr_on_plateau",
       {"mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps"}},
      {"cosine_with_min_lr", {"num_cycles", "min_lr", "min_lr_rate"}},
      {"warmup_stable_decay",
       {"num_decay_steps", "num_stable_steps", "warmup_type", "decay_type", "min_lr_ratio",
        "num_cycles"}},
  };
  static const std::vector<std::string> kNone;
  auto it = names->find(type);
  return it == names->end() ? kNone : it->second;
}

}  // namespace trainerd
