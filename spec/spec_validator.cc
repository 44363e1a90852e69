#include "spec/spec_validator.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spec/dataset_format.h"
#include "spec/input_checks.h"
#include "spec/lora_config.h"
#include "spec/shard_size.h"
#include "spec/spec_checker.h"
#include "spec/spec_defaults.h"
#include "spec/training_args_checks.h"

namespace trainerd {
namespace {

using trainer::v1::DatasetSource;
using trainer::v1::JobSpec;

void CheckSource(const std::string& field, const DatasetSource& s, Checker* c) {
  c->File(field + ".path", s.path());
  const std::string format = DatasetFormat(s);
  if (!s.format().empty()) {
    c->Choice(field + ".format", s.format(), DatasetFormats());
  } else if (format.empty()) {
    c->Add(field + ".format", absl::StrCat("the file name does not tell the format; set it: ", Choices(DatasetFormats())));
  }
  if (format == "idx") {
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
  c->Choice("model.type", m.type(), {"mlp", "cnn", "torchscript", "gpt", "text_classifier", "hf"});
  if (m.type() == "hf") {
    if (m.name_or_path().empty()) c->Add("model.name_or_path", "required for an hf model (a save_pretrained folder)");
    // Its files (config.json, weights, tokenizer) are input_checks.cc's: they say more
    // than "no such file" (a Hub id, a folder with only tokenizer.json).
    if (!m.torch_dtype().empty()) {
      c->Choice("model.torch_dtype", m.torch_dtype(), {"float32", "bfloat16", "float16", "auto"});
    }
    if (!m.max_shard_size().empty()) {
      if (absl::StatusOr<int64_t> size = ParseShardSize(m.max_shard_size()); !size.ok()) {
        c->problems.push_back(std::string(size.status().message()));
      }
    }
  } else {
    for (const auto& [field, value] : std::vector<std::pair<std::string, std::string>>{
             {"model.name_or_path", m.name_or_path()}, {"model.torch_dtype", m.torch_dtype()},
             {"model.adapter_name_or_path", m.adapter_name_or_path()},
             {"model.max_shard_size", m.max_shard_size()}}) {
      if (!value.empty()) c->Add(field, "only for model.type hf");
    }
  }
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

// LoRA (the peft section, or an adapter folder to start from). The files (the folder's
// layers against target_modules) are input_checks.cc's.
void CheckPeft(const JobSpec& spec, Checker* c) {
  const std::string& adapter = spec.model().adapter_name_or_path();
  if (!spec.has_peft() && adapter.empty()) return;
  if (spec.model().type() != "hf") {
    return c->Add(spec.has_peft() ? "peft" : "model.adapter_name_or_path",
                  "LoRA adapts a pretrained hf model (model.name_or_path); the built-in models start from random "
                  "weights: train them in full");
  }
  FindPeftProblems(spec.peft(), &c->problems);
  if (!adapter.empty() && spec.has_peft()) {
    trainer::v1::PeftConfig rest = spec.peft();
    rest.clear_merge_on_save();
    if (rest.ByteSizeLong() != 0) {
      c->Add("peft", "model.adapter_name_or_path's adapter_config.json sets the adapter; only peft.merge_on_save may "
                     "be given with it");
    }
  }
  const std::string& optim = spec.training_args().optim();
  if (optim.rfind("galore_", 0) == 0) {
    c->Add("training_args.optim", absl::StrCat(optim, " projects the gradients of full weights, and with LoRA the "
                                               "base weights are frozen (the adapters are low-rank already): use "
                                               "adamw_torch"));
  }
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

SpecCheckResult CheckJobSpec(const JobSpec& spec, const SpecCheckOptions& options) {
  Checker c(options);
  // Out-of-bounds values are reported alone: the checks below assume sane sizes.
  FindBoundsProblems(spec, options.policy.limits, &c.problems);
  if (!c.problems.empty()) return {c.problems, std::nullopt};
  // A built-in model is sized from the spec; an hf folder from its config (below).
  if (spec.model().type() != "hf") c.Memory(BuiltinFootprint(spec), spec);
  if (!c.problems.empty()) return {c.problems, c.memory};
  // A refused path is never looked up: the answer must not tell whether a path outside
  // the allowed folders exists.
  FindPathProblems(spec, options.policy, &c.problems);
  for (const std::string& p : c.problems) c.SkipFile(p.substr(0, p.find(':')));
  CheckTrainingArgs(spec, &c);
  CheckData(spec, &c);
  CheckModel(spec, &c);
  CheckPeft(spec, &c);
  CheckLossAndMetrics(spec, &c);
  if (options.gpus_per_rank == 0 && spec.training_args().fp16()) {
    c.Add("training_args.fp16", "needs a CUDA GPU (fp16 autocast is CUDA-only in LibTorch), and this job gets none "
                                "(trainer-cli --gpus-per-rank, resources.gpus_per_rank); on the CPU use bf16");
  }
  // The files are looked at once the spec itself is sound: its checks assume sane
  // fields, and their answers would only repeat what is already said.
  if (options.check_files && c.problems.empty()) {
    CheckInputFiles(spec, ReadRoots(spec.training_args().output_dir(), options.policy), &c);
  }
  return {c.problems, c.memory};
}

std::vector<std::string> FindSpecProblems(const JobSpec& spec, const SpecCheckOptions& options) {
  return CheckJobSpec(spec, options).problems;
}

absl::Status ValidateJobSpec(const JobSpec& spec, const SpecCheckOptions& options) {
  std::vector<std::string> problems = FindSpecProblems(spec, options);
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
}

}  // namespace trainerd
