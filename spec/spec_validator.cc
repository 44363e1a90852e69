#include "spec/spec_validator.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spec/spec_defaults.h"
#include "spec/target_modules.h"

namespace trainerd {
namespace {

using trainer::v1::DatasetSource;
using trainer::v1::JobSpec;

bool OneOf(const std::string& value, const std::vector<std::string>& allowed) {
  return std::find(allowed.begin(), allowed.end(), value) != allowed.end();
}

std::string Choices(const std::vector<std::string>& allowed) {
  return absl::StrCat("must be one of ", absl::StrJoin(allowed, ", "));
}

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

class Checker {
 public:
  explicit Checker(const SpecCheckOptions& options) : options_(options) {}
  std::vector<std::string> problems;

  void Add(const std::string& field, const std::string& what) {
    problems.push_back(absl::StrCat(field, ": ", what));
  }
  void Positive(const std::string& field, double v) {
    if (!(v > 0)) Add(field, "must be > 0");
  }
  void NonNegative(const std::string& field, double v) {
    if (!(v >= 0)) Add(field, "must be >= 0");
  }
  void Choice(const std::string& field, const std::string& v,
              const std::vector<std::string>& allowed) {
    if (OneOf(v, allowed)) return;
    const std::string shown = v.size() <= 64 ? v : v.substr(0, 64) + "...";
    Add(field, absl::StrCat("\"", shown, "\" is not supported; ", Choices(allowed)));
  }
  void SkipFile(const std::string& field) { skip_files_.insert(field); }
  void File(const std::string& field, const std::string& path) {
    if (skip_files_.count(field)) return;
    if (options_.check_files && !path.empty() && !std::filesystem::exists(path)) {
      Add(field, absl::StrCat("no such file: ", path));
    }
  }
  // "steps" values that may be an integer count or a ratio in (0, 1) of total steps.
  void StepsOrRatio(const std::string& field, double v) {
    if (!(v > 0)) {
      Add(field, "must be > 0");
    } else if (v > 1 && v != static_cast<double>(static_cast<int64_t>(v))) {
      Add(field, "must be an integer, or a ratio < 1 of the total steps");
    }
  }

 private:
  SpecCheckOptions options_;
  std::set<std::string> skip_files_;
};

void CheckCheckpointArgs(const JobSpec& spec, Checker* c) {
  const auto& a = spec.training_args();
  const std::string p = "training_args.";
  c->Choice(p + "save_strategy", a.save_strategy(), {"no", "steps", "epoch", "best"});
  if (a.save_strategy() == "steps") c->StepsOrRatio(p + "save_steps", a.save_steps());
  if (a.save_total_limit() < 0) c->Add(p + "save_total_limit", "must be >= 0 (0 keeps every checkpoint)");
  const std::string& resume = a.resume_from_checkpoint();
  if (!resume.empty() && resume != "true" && resume != "false") c->File(p + "resume_from_checkpoint", resume);
  c->Choice(p + "hub_strategy", a.hub_strategy(), {"end", "every_save", "checkpoint", "all_checkpoints"});

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
  if (a.neftune_noise_alpha() > 0 && !token_model) {
    c->Add(p + "neftune_noise_alpha", "needs a model with token embeddings (gpt or text_classifier)");
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
    if (spec.model().dropout() > 0) c->Add(p + "torch_compile", "the compiled graph has no dropout: set model.dropout: 0");
    if (a.neftune_noise_alpha() > 0 || a.gradient_checkpointing()) {
      c->Add(p + "torch_compile", "cannot be combined with neftune_noise_alpha or gradient_checkpointing");
    }
  }
  if (a.use_liger_kernel()) {
    if (!token_model) c->Add(p + "use_liger_kernel", "needs a built-in text model (gpt or text_classifier)");
    if (a.torch_compile()) c->Add(p + "use_liger_kernel", "cannot be combined with torch_compile");
    if (a.liger_kernel_config().cross_entropy() && a.liger_kernel_config().fused_linear_cross_entropy()) {
      c->Add(p + "liger_kernel_config", "cross_entropy and fused_linear_cross_entropy cannot both be on");
    }
  }
  if (a.gradient_checkpointing() && !token_model) {
    c->Add(p + "gradient_checkpointing", "needs a model made of blocks (gpt or text_classifier)");
  }
}

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
  if (!(a.ddp_bucket_cap_mb() > 0)) c->Add(p + "ddp_bucket_cap_mb", "must be > 0");

  CheckCheckpointArgs(spec, c);

  const bool has_eval_data = !spec.data().eval().path().empty() || spec.data().eval_split() > 0;
  if ((a.eval_strategy() != "no" || a.eval_on_start()) && !has_eval_data) {
    c->Add(p + "eval_strategy", "evaluation needs data.eval or data.eval_split");
  }
  if (a.do_eval() && !has_eval_data) c->Add(p + "do_eval", "needs data.eval or data.eval_split");
  if (a.do_predict() && spec.data().test().path().empty()) c->Add(p + "do_predict", "needs data.test");
}

void CheckSource(const std::string& field, const DatasetSource& s, Checker* c) {
  c->File(field + ".path", s.path());
  std::string format = s.format();
  if (!format.empty()) c->Choice(field + ".format", format, {"idx", "csv", "tsv", "text", "jsonl"});
  const bool is_idx = format == "idx" || (format.empty() && s.path().find("idx") != std::string::npos);
  if (is_idx) {
    if (s.labels_path().empty()) c->Add(field + ".labels_path", "required for IDX data");
    c->File(field + ".labels_path", s.labels_path());
  }
  if (s.limit() < 0) c->Add(field + ".limit", "must be >= 0");
}

void CheckData(const JobSpec& spec, Checker* c) {
  const auto& d = spec.data();
  if (spec.training_args().do_train() && d.train().path().empty()) {
    c->Add("data.train.path", "required when do_train is true");
  }
  if (!d.train().path().empty()) CheckSource("data.train", d.train(), c);
  if (!d.eval().path().empty()) CheckSource("data.eval", d.eval(), c);
  if (!d.test().path().empty()) CheckSource("data.test", d.test(), c);
  if (!(d.eval_split() >= 0 && d.eval_split() < 1)) c->Add("data.eval_split", "must be in [0, 1)");
  if (d.eval_split() > 0 && !d.eval().path().empty()) {
    c->Add("data.eval_split", "give either data.eval or data.eval_split, not both");
  }
  c->Choice("data.task", d.task(), {"classification", "regression"});
  c->NonNegative("data.scale", d.scale());
  if (d.max_seq_length() < 0 || d.max_seq_length() == 1) c->Add("data.max_seq_length", "must be >= 2 (0: 128)");
  if (d.tokenizer().vocab_size() < 0) c->Add("data.tokenizer.vocab_size", "must be > 0");
  if (!d.tokenizer().model_type().empty()) {
    c->Choice("data.tokenizer.model_type", d.tokenizer().model_type(), {"unigram", "bpe"});
  }
  c->File("data.tokenizer.path", d.tokenizer().path());
  c->NonNegative("data.std", d.std());
}

void CheckModel(const JobSpec& spec, Checker* c) {
  const auto& m = spec.model();
  c->Choice("model.type", m.type(), {"mlp", "cnn", "torchscript", "gpt", "text_classifier"});
  for (const auto& [field, value] : std::vector<std::pair<std::string, int64_t>>{
           {"model.hidden_size", m.hidden_size()}, {"model.num_layers", m.num_layers()},
           {"model.num_heads", m.num_heads()}, {"model.intermediate_size", m.intermediate_size()}}) {
    if (value < 0) c->Add(field, "must be >= 0 (0: the default)");
  }
  if (m.type() == "torchscript") {
    if (m.path().empty()) c->Add("model.path", "required for a torchscript model");
    c->File("model.path", m.path());
  }
  for (int i = 0; i < m.hidden_sizes_size(); ++i) {
    if (m.hidden_sizes(i) < 1) c->Add(absl::StrCat("model.hidden_sizes[", i, "]"), "must be >= 1");
  }
  for (int i = 0; i < m.conv_channels_size(); ++i) {
    if (m.conv_channels(i) < 1) c->Add(absl::StrCat("model.conv_channels[", i, "]"), "must be >= 1");
  }
  if (!(m.dropout() >= 0 && m.dropout() < 1)) c->Add("model.dropout", "must be in [0, 1)");
  c->Choice("model.activation", m.activation(), {"relu", "gelu", "tanh"});
  if (m.num_outputs() < 0) c->Add("model.num_outputs", "must be >= 0");
}

void CheckLossAndMetrics(const JobSpec& spec, Checker* c) {
  const bool regression = spec.data().task() == "regression";
  c->Choice("loss.type", spec.loss().type(), {"cross_entropy", "mse"});
  if (regression && spec.loss().type() == "cross_entropy") {
    c->Add("loss.type", "cross_entropy needs a classification task");
  }
  for (int i = 0; i < spec.loss().class_weights_size(); ++i) {
    if (!(spec.loss().class_weights(i) >= 0)) {
      c->Add(absl::StrCat("loss.class_weights[", i, "]"), "must be >= 0");
    }
  }
  if (spec.loss().class_weights_size() > 0 && spec.loss().type() != "cross_entropy") {
    c->Add("loss.class_weights", "only cross_entropy takes class weights");
  }
  static const std::vector<std::string> kMetrics = {"accuracy", "f1", "precision", "recall",
                                                    "mse", "mae", "perplexity", "token_accuracy"};
  for (int i = 0; i < spec.metrics_size(); ++i) {
    const std::string field = absl::StrCat("metrics[", i, "]");
    const std::string& m = spec.metrics(i);
    c->Choice(field, m, kMetrics);
    if (regression && OneOf(m, {"accuracy", "f1", "precision", "recall"})) {
      c->Add(field, m + " needs a classification task");
    }
  }
}

}  // namespace

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

std::vector<std::string> FindSpecProblems(const JobSpec& spec, const SpecCheckOptions& options) {
  Checker c(options);
  // Out-of-bounds values are reported alone: the checks below assume sane sizes.
  FindBoundsProblems(spec, options.policy.limits, &c.problems);
  if (!c.problems.empty()) return c.problems;
  // A refused path is never looked up: the answer must not tell whether a path outside
  // the allowed folders exists.
  FindPathProblems(spec, options.policy, &c.problems);
  for (const std::string& p : c.problems) c.SkipFile(p.substr(0, p.find(':')));
  CheckTrainingArgs(spec, &c);
  CheckData(spec, &c);
  CheckModel(spec, &c);
  CheckLossAndMetrics(spec, &c);
  return c.problems;
}

absl::Status ValidateJobSpec(const JobSpec& spec, const SpecCheckOptions& options) {
  std::vector<std::string> problems = FindSpecProblems(spec, options);
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
}

}  // namespace trainerd
