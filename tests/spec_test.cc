// Spec parsing, defaults and validation: every problem reported, each naming its field.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/text_format.h"
#include "spec/deepspeed_config.h"
#include "spec/fsdp_options.h"
#include "spec/spec_defaults.h"
#include "spec/sentencepiece_pad.h"
#include "spec/spec_loader.h"
#include "spec/spec_validator.h"
#include "tests/test_util.h"

namespace trainerd {
namespace {

using ::testing::HasSubstr;

// A valid spec (model and training data filled in) plus `extra_yaml`, with defaults.
trainer::v1::JobSpec Valid(const std::string& extra_yaml = "") {
  auto spec = ParseJobSpec(extra_yaml);
  EXPECT_TRUE(spec.ok()) << spec.status();
  spec->mutable_model()->set_type("mlp");
  spec->mutable_data()->mutable_train()->set_path(testing::TableFile());
  spec->mutable_data()->mutable_train()->set_format("csv");
  ApplyDefaults(&*spec);
  return *spec;
}

TEST(SpecLoader, ParsesYamlWithHfNames) {
  auto spec = ParseJobSpec(R"(
training_args:
  learning_rate: 1e-3
  num_train_epochs: 0.5
  per_device_train_batch_size: 64
  bf16: yes
  lr_scheduler_type: cosine
  lr_scheduler_kwargs: {num_cycles: 0.25}
model: {type: cnn, conv_channels: [8, 16]}
metrics: [accuracy, f1]
)");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_DOUBLE_EQ(spec->training_args().learning_rate(), 1e-3);
  EXPECT_DOUBLE_EQ(spec->training_args().num_train_epochs(), 0.5);
  EXPECT_EQ(spec->training_args().per_device_train_batch_size(), 64);
  EXPECT_TRUE(spec->training_args().bf16());
  EXPECT_DOUBLE_EQ(
      spec->training_args().lr_scheduler_kwargs().fields().at("num_cycles").number_value(), 0.25);
  EXPECT_EQ(spec->model().conv_channels_size(), 2);
  EXPECT_EQ(spec->metrics(1), "f1");
}

TEST(SpecLoader, ParsesJson) {
  auto spec = ParseJobSpec(R"({"training_args": {"max_steps": 10}, "model": {"type": "mlp"}})");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->training_args().max_steps(), 10);
}

TEST(SpecLoader, ReportsEveryUnknownFieldAndBadTypeWithItsPath) {
  auto spec = ParseJobSpec(R"(
training_args:
  learning_rat: 1e-3
  max_steps: ten
  bf16: maybe
  seed: 1
  seed: 2
model: {type: mlp, hidden_sizes: 12}
colour: blue
)");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string msg(spec.status().message());
  EXPECT_THAT(msg, HasSubstr("training_args.learning_rat: unknown field"));
  EXPECT_THAT(msg, HasSubstr("training_args.max_steps: expected an integer, got \"ten\""));
  EXPECT_THAT(msg, HasSubstr("training_args.bf16: expected true or false"));
  EXPECT_THAT(msg, HasSubstr("model.hidden_sizes: expected a list"));
  EXPECT_THAT(msg, HasSubstr("colour: unknown field"));
  EXPECT_THAT(msg, HasSubstr("training_args.seed: given more than once"));
}

// An HF script's arguments load as they are: those that change nothing here are
// accepted with a warning each, HF's old names read as the new ones.
TEST(SpecLoader, AcceptsHfArgumentsThatChangeNothingWithAWarning) {
  std::vector<std::string> warnings;
  auto spec = trainerd::ParseJobSpec(
      "training_args: {report_to: [wandb], evaluation_strategy: steps, save_safetensors: true, push_to_hub: false, "
      "dataloader_pin_memory: true, remove_unused_columns: false, group_by_length: false, disable_tqdm: true, "
      "logging_dir: runs}\n",
      {}, &warnings);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->training_args().eval_strategy(), "steps");
  ASSERT_EQ(warnings.size(), 8u);  // logging_dir is read: TensorBoard's folder
  EXPECT_EQ(spec->training_args().logging_dir(), "runs");
  EXPECT_THAT(warnings, ::testing::Contains(::testing::HasSubstr(
                            "training_args.evaluation_strategy: HF's old name for eval_strategy")));
  EXPECT_THAT(warnings, ::testing::Contains(::testing::HasSubstr(
                            "training_args.report_to[0]: \"wandb\" is not available here (tensorboard is); ignored")));
  EXPECT_EQ(spec->training_args().report_to_size(), 0);
  // One name or a list, as HF takes it.
  auto one = trainerd::ParseJobSpec("training_args: {report_to: tensorboard}\n");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->training_args().report_to(0), "tensorboard");
  // none is HF's "no integration": read as it is, without a warning (as the README and
  // the llama example say; an example once promised a warning that never came).
  std::vector<std::string> none_warnings;
  auto none = trainerd::ParseJobSpec("training_args: {report_to: none}\n", {}, &none_warnings);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->training_args().report_to(0), "none");
  EXPECT_TRUE(none_warnings.empty());
  // Both names at once is the same field twice; other unknown fields stay errors.
  auto both = trainerd::ParseJobSpec("training_args: {evaluation_strategy: steps, eval_strategy: epoch}\n");
  ASSERT_FALSE(both.ok());
  EXPECT_THAT(std::string(both.status().message()), ::testing::HasSubstr("eval_strategy: given more than once"));
  EXPECT_FALSE(trainerd::ParseJobSpec("training_args: {report_too: [wandb]}\n").ok());
  EXPECT_FALSE(trainerd::ParseJobSpec("model: {report_to: x}\n").ok());  // only TrainingArguments
}

TEST(SpecLoader, OverridesApplyBeforeConversion) {
  auto spec = ParseJobSpec("training_args: {learning_rate: 0.1}\n",
                           {"training_args.learning_rate=0.5", "model.hidden_sizes=[64, 32]",
                            "training_args.optim=sgd"});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_DOUBLE_EQ(spec->training_args().learning_rate(), 0.5);
  EXPECT_EQ(spec->model().hidden_sizes_size(), 2);
  EXPECT_EQ(spec->training_args().optim(), "sgd");
  auto bad = ParseJobSpec("", {"training_args.learning_rate"});
  EXPECT_FALSE(bad.ok());
  auto typo = ParseJobSpec("", {"training_args.lr=1"});
  ASSERT_FALSE(typo.ok());
  EXPECT_THAT(std::string(typo.status().message()), HasSubstr("training_args.lr: unknown field"));
}

TEST(SpecLoader, RejectsMalformedYaml) {
  auto spec = ParseJobSpec("training_args: [unclosed\n");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("not valid YAML"));
}

// Every read of a spec file is bounded and says what is wrong: a folder (once read as
// an empty spec), a device such as /dev/zero (once read without end), a file over 1 MiB.
TEST(SpecLoader, BoundsEveryReadOfASpecFile) {
  testing::TempDir dir;
  auto folder = LoadJobSpecFile(dir.path().string());
  ASSERT_FALSE(folder.ok());
  EXPECT_EQ(folder.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(folder.status().message()), HasSubstr("is a folder"));
  auto zero = LoadJobSpecFile("/dev/zero");
  ASSERT_FALSE(zero.ok());
  EXPECT_THAT(std::string(zero.status().message()), HasSubstr("is not a regular file"));
  testing::WriteFile(dir / "big.yaml", "# " + std::string(2 << 20, 'x') + "\n");
  auto big = LoadJobSpecFile(dir / "big.yaml");
  ASSERT_FALSE(big.ok());
  EXPECT_THAT(std::string(big.status().message()), HasSubstr("at most 1048576 are accepted"));
  auto missing = LoadJobSpecFile(dir / "none.yaml");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

// A few hundred bytes whose aliases nest nine deep stand for 10^9 values: the bound holds
// while the document is expanded (before, validate allocated until it aborted).
TEST(SpecLoader, AliasesCannotExpandPastTheBound) {
  std::string yaml = "training_args:\n  lr_scheduler_kwargs:\n    a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 9; ++i) {
    std::string items;
    for (int k = 0; k < 10; ++k) items += absl::StrCat(k ? ", " : "", "*a", i - 1);
    yaml += absl::StrCat("    a", i, ": &a", i, " [", items, "]\n");
  }
  ASSERT_LT(yaml.size(), 1000u);
  const auto start = std::chrono::steady_clock::now();
  auto spec = ParseJobSpec(yaml);
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("spec: expands to more than 1048576 bytes"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  // Aliases that stay small are YAML as usual.
  auto small = ParseJobSpec("training_args: {lr_scheduler_kwargs: {a: &a [1, 2], b: *a}}\nmodel: {type: mlp}\n");
  EXPECT_TRUE(small.ok()) << small.status();
}

TEST(SpecDefaults, HuggingFaceDefaults) {
  trainer::v1::JobSpec spec = Valid();
  const auto& a = spec.training_args();
  EXPECT_DOUBLE_EQ(a.learning_rate(), 5e-5);
  EXPECT_DOUBLE_EQ(a.num_train_epochs(), 3.0);
  EXPECT_EQ(a.max_steps(), -1);
  EXPECT_EQ(a.per_device_train_batch_size(), 8);
  EXPECT_DOUBLE_EQ(a.max_grad_norm(), 1.0);
  EXPECT_DOUBLE_EQ(a.adam_beta2(), 0.999);
  EXPECT_EQ(a.optim(), "adamw_torch");
  EXPECT_EQ(a.lr_scheduler_type(), "linear");
  EXPECT_EQ(a.logging_steps(), 500);
  EXPECT_EQ(a.eval_steps(), a.logging_steps());
  EXPECT_EQ(a.seed(), 42);
  EXPECT_EQ(a.data_seed(), 42);
  EXPECT_EQ(spec.loss().type(), "cross_entropy");
  // Values the user set are kept, including zero.
  auto set = ParseJobSpec("training_args: {max_grad_norm: 0, seed: 7}");
  ApplyDefaults(&*set);
  EXPECT_DOUBLE_EQ(set->training_args().max_grad_norm(), 0.0);
  EXPECT_EQ(set->training_args().data_seed(), 7);
}

// The README's training_args table: each field named in a row's first cell, with the
// default its second cell gives it ("" where the cell says nothing for it).
std::map<std::string, std::string> ReadmeDefaults() {
  const char* source = std::getenv("TRAINERD_SOURCE_DIR");
  std::ifstream in(std::string(source == nullptr ? "." : source) + "/README.md");
  std::stringstream text;
  text << in.rdbuf();
  const std::string readme = text.str();
  const size_t start = readme.find("### training_args");
  const std::string section = readme.substr(start, readme.find("\n### ", start + 1) - start);
  auto unquote = [](absl::string_view v) {
    v = absl::StripAsciiWhitespace(v);
    absl::ConsumePrefix(&v, "`");
    absl::ConsumeSuffix(&v, "`");
    return std::string(v);
  };
  std::map<std::string, std::string> out;
  for (absl::string_view line : absl::StrSplit(section, '\n')) {
    if (!absl::StartsWith(line, "| `")) continue;
    std::vector<absl::string_view> cells = absl::StrSplit(line, '|');
    std::vector<absl::string_view> fields = absl::StrSplit(cells[1], ',');
    std::vector<absl::string_view> values = absl::StrSplit(cells[2], ',');
    for (size_t i = 0; i < fields.size(); ++i) {
      out[unquote(fields[i])] = values.size() == fields.size() ? unquote(values[i]) : "";
    }
  }
  return out;
}

TEST(SpecDefaults, OneTableServesApplyDefaultsAndTheReadme) {
  trainer::v1::JobSpec spec;
  ApplyDefaults(&spec);
  const trainer::v1::TrainingArguments& applied = spec.training_args();
  const std::map<std::string, std::string> readme = ReadmeDefaults();
  ASSERT_GT(readme.size(), 30u) << "the README's training_args table was not found";
  for (const ArgumentDefault& d : TrainingArgumentDefaults()) {
    SCOPED_TRACE(d.field);
    const auto* field = trainer::v1::TrainingArguments::descriptor()->FindFieldByName(d.field);
    ASSERT_NE(field, nullptr) << "not a TrainingArguments field";
    trainer::v1::TrainingArguments expected;
    if (field->type() == google::protobuf::FieldDescriptor::TYPE_STRING) {
      expected.GetReflection()->SetString(&expected, field, d.value);
    } else {
      ASSERT_TRUE(google::protobuf::TextFormat::ParseFieldValueFromString(d.value, field, &expected));
    }
    std::string want, got;
    google::protobuf::TextFormat::PrintFieldValueToString(expected, field, -1, &want);
    google::protobuf::TextFormat::PrintFieldValueToString(applied, field, -1, &got);
    EXPECT_EQ(got, want) << "ApplyDefaults does not apply the table's value";
    auto row = readme.find(d.field);
    ASSERT_NE(row, readme.end()) << "missing from the README's training_args table";
    if (row->second.empty()) continue;  // the row explains it elsewhere
    double a = 0, b = 0;
    if (absl::SimpleAtod(row->second, &a) && absl::SimpleAtod(d.value, &b)) {
      EXPECT_DOUBLE_EQ(a, b) << "the README says " << row->second;
    } else {
      EXPECT_EQ(row->second == "none" ? "" : row->second, d.value) << "the README says " << row->second;
    }
  }
}

TEST(SpecValidator, ValidSpecHasNoProblems) {
  EXPECT_TRUE(FindSpecProblems(Valid()).empty()) << ValidateJobSpec(Valid());
}

TEST(SpecValidator, ListsEveryProblemByField) {
  trainer::v1::JobSpec spec = Valid(R"(
training_args:
  learning_rate: -1
  per_device_train_batch_size: 0
  optim: adam_typo
  lr_scheduler_type: cosine
  lr_scheduler_kwargs: {power: 2}
  eval_strategy: steps
  label_smoothing_factor: 1.5
)");
  spec.mutable_data()->mutable_train()->set_path("/no/such/file.csv");
  spec.mutable_model()->set_dropout(2);
  spec.add_metrics("bleu");
  const absl::Status s = ValidateJobSpec(spec);
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  const std::string msg(s.message());
  EXPECT_THAT(msg, HasSubstr("training_args.learning_rate: must be > 0"));
  EXPECT_THAT(msg, HasSubstr("training_args.per_device_train_batch_size: must be >= 1"));
  EXPECT_THAT(msg, HasSubstr("training_args.optim: \"adam_typo\" is not supported"));
  EXPECT_THAT(msg, HasSubstr("training_args.lr_scheduler_kwargs.power: not an argument of cosine"));
  EXPECT_THAT(msg, HasSubstr("training_args.eval_strategy: evaluation needs data.eval"));
  EXPECT_THAT(msg, HasSubstr("training_args.label_smoothing_factor: must be in [0, 1)"));
  EXPECT_THAT(msg, HasSubstr("data.train.path: no such file"));
  EXPECT_THAT(msg, HasSubstr("model.dropout: must be in [0, 1)"));
  EXPECT_THAT(msg, HasSubstr("metrics[0]: \"bleu\" is not supported"));
  EXPECT_GE(FindSpecProblems(spec).size(), 9u);
}

TEST(SpecValidator, ChecksOptimArgsAndScheduleRequirements) {
  auto problems = FindSpecProblems(Valid(R"(
training_args:
  optim: sgd
  optim_args: "momentum=0.9, betas=3"
  lr_scheduler_type: warmup_stable_decay
)"));
  std::string all;
  for (const auto& p : problems) all += p + "\n";
  EXPECT_THAT(all, HasSubstr("training_args.optim_args: \"betas\" is not an argument of sgd"));
  EXPECT_THAT(all, HasSubstr("training_args.lr_scheduler_kwargs.num_decay_steps: required"));
  auto plateau = FindSpecProblems(Valid("training_args: {lr_scheduler_type: reduce_lr_on_plateau}"));
  ASSERT_FALSE(plateau.empty());
  EXPECT_THAT(plateau[0], HasSubstr("reduce_lr_on_plateau needs an evaluation strategy"));
}

TEST(SpecValidator, EvalStepsRatio) {
  auto ok = Valid("training_args: {eval_strategy: steps, eval_steps: 0.25}\ndata: {eval_split: 0.1}");
  EXPECT_TRUE(FindSpecProblems(ok).empty()) << ValidateJobSpec(ok);
  auto bad = Valid("training_args: {eval_strategy: steps, eval_steps: 2.5}\ndata: {eval_split: 0.1}");
  EXPECT_THAT(std::string(ValidateJobSpec(bad).message()),
              HasSubstr("training_args.eval_steps: must be an integer, or a ratio < 1"));
}

// HF's fsdp forms: a string of options, a list, a bool, and fsdp_config keys with or
// without their "fsdp_" prefix; each resolves to one sharding.
TEST(Fsdp, ReadsHfsFormsOfFsdpAndFsdpConfig) {
  auto text = Valid("training_args: {fsdp: full_shard auto_wrap, fsdp_config: {fsdp_transformer_layer_cls_to_wrap: "
                    "[LlamaDecoderLayer], backward_prefetch: backward_pre}}");
  ASSERT_EQ(text.training_args().fsdp_size(), 2);
  EXPECT_EQ(text.training_args().fsdp(1), "auto_wrap");
  EXPECT_EQ(text.training_args().fsdp_config().transformer_layer_cls_to_wrap(0), "LlamaDecoderLayer");
  EXPECT_TRUE(FindSpecProblems(text).empty()) << ValidateJobSpec(text);
  EXPECT_EQ(ResolveFsdp(text.training_args()).StrategyName(), "full_shard");
  EXPECT_FALSE(FsdpNoOpWarnings(text.training_args()).empty());  // auto_wrap
  EXPECT_TRUE(ResolveFsdp(text.training_args()).backward_prefetch);
  EXPECT_FALSE(ResolveFsdp(text.training_args()).forward_prefetch);
  auto prefetch = Valid("training_args: {fsdp: full_shard, fsdp_config: {backward_prefetch: NO_PREFETCH, "
                        "forward_prefetch: true}}");
  EXPECT_FALSE(ResolveFsdp(prefetch.training_args()).backward_prefetch);
  EXPECT_TRUE(ResolveFsdp(prefetch.training_args()).forward_prefetch);

  auto list = Valid("training_args: {fsdp: [shard_grad_op, offload]}");
  EXPECT_EQ(ResolveFsdp(list.training_args()).StrategyName(), "shard_grad_op");
  EXPECT_TRUE(ResolveFsdp(list.training_args()).offload);
  // FSDP2's form: true, with reshard_after_forward false meaning ZeRO-2.
  auto v2 = Valid("training_args: {fsdp: true, fsdp_config: {version: 2, reshard_after_forward: false}}");
  EXPECT_EQ(ResolveFsdp(v2.training_args()).StrategyName(), "shard_grad_op");
  EXPECT_EQ(ResolveFsdp(Valid("training_args: {fsdp: true}").training_args()).StrategyName(), "full_shard");
  EXPECT_FALSE(ResolveFsdp(Valid("training_args: {fsdp: false}").training_args()).enabled);
  EXPECT_FALSE(ResolveFsdp(Valid().training_args()).enabled);
}

TEST(Fsdp, RefusesBadConfigsByName) {
  auto all = [](const std::string& yaml) {
    std::string out;
    for (const auto& p : FindSpecProblems(Valid(yaml))) out += p + "\n";
    return out;
  };
  EXPECT_THAT(all("training_args: {fsdp: [full_shard, hybrid_shard]}"),
              HasSubstr("training_args.fsdp[1]: \"hybrid_shard\" is not supported"));
  EXPECT_THAT(all("training_args: {fsdp: full_shard shard_grad_op}"),
              HasSubstr("training_args.fsdp: choose one of full_shard and shard_grad_op"));
  EXPECT_THAT(all("training_args: {fsdp: offload}"), HasSubstr("training_args.fsdp: needs full_shard or shard_grad_op"));
  EXPECT_THAT(all("training_args: {fsdp_config: {version: 2}}"), HasSubstr("training_args.fsdp_config: needs"));
  EXPECT_THAT(all("training_args: {fsdp: full_shard, fsdp_config: {version: 3}}"),
              HasSubstr("training_args.fsdp_config.version: must be 1 or 2"));
  EXPECT_THAT(all("training_args: {fsdp: full_shard, fsdp_config: {transformer_layer_cls_to_wrap: [T5Block]}}"),
              HasSubstr("training_args.fsdp_config.transformer_layer_cls_to_wrap[0]: \"T5Block\" is not"));
  EXPECT_THAT(all("training_args: {fsdp: full_shard, fsdp_config: {state_dict_type: LOCAL_STATE_DICT}}"),
              HasSubstr("training_args.fsdp_config.state_dict_type: must be FULL_STATE_DICT or SHARDED_STATE_DICT"));
  EXPECT_EQ(all("training_args: {fsdp: full_shard, fsdp_config: {state_dict_type: SHARDED_STATE_DICT}}"), "");
  EXPECT_THAT(all("training_args: {fsdp: full_shard, optimizer_sharding: true}"),
              HasSubstr("training_args.optimizer_sharding: fsdp shards the optimizer state already"));
  EXPECT_THAT(all("training_args: {fsdp: full_shard, optim: adafactor}"), HasSubstr("training_args.optim: adafactor"));
  // An unknown key of fsdp_config is refused by the loader, with its path.
  auto unknown = ParseJobSpec("training_args: {fsdp: full_shard, fsdp_config: {fsdp_no_such_key: 1}}");
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("training_args.fsdp_config.no_such_key: unknown field"));
}

// A DeepSpeed config picks the same sharding by its ZeRO stage; "auto" values take the
// training arguments', values that disagree with them and keys trainerd does not read are
// refused by name.
TEST(DeepSpeed, StagesMapToTheShardingOfTheSameStage) {
  auto stage = [](int n) {
    return Valid(absl::StrCat("training_args: {deepspeed: {zero_optimization: {stage: ", n, "}}}"));
  };
  EXPECT_EQ(ResolveFsdp(stage(3).training_args()).StrategyName(), "full_shard");
  EXPECT_EQ(ResolveFsdp(stage(2).training_args()).StrategyName(), "shard_grad_op");
  EXPECT_FALSE(ResolveFsdp(stage(1).training_args()).enabled);
  EXPECT_EQ(ResolveDeepSpeed(stage(1).training_args()).stage, 1);
  auto offload = Valid(
      "training_args: {deepspeed: {zero_optimization: {stage: 3, offload_optimizer: {device: cpu, pin_memory: true}, "
      "overlap_comm: true}, train_micro_batch_size_per_gpu: auto, gradient_accumulation_steps: auto, "
      "bf16: {enabled: auto}, train_batch_size: auto}}");
  EXPECT_TRUE(FindSpecProblems(offload).empty()) << absl::StrJoin(FindSpecProblems(offload), "\n");
  EXPECT_TRUE(ResolveFsdp(offload.training_args()).offload);
  EXPECT_THAT(absl::StrJoin(DeepSpeedNoOpWarnings(offload.training_args()), "\n"),
              HasSubstr("training_args.deepspeed.zero_optimization.overlap_comm: accepted"));
}

TEST(DeepSpeed, RefusesBadConfigsByName) {
  auto all = [](const std::string& yaml) { return absl::StrJoin(FindSpecProblems(Valid(yaml)), "\n"); };
  EXPECT_THAT(all("training_args: {deepspeed: {zero_optimization: {stage: 4}}}"),
              HasSubstr("training_args.deepspeed.zero_optimization.stage: must be 0, 1, 2 or 3"));
  EXPECT_THAT(all("training_args: {deepspeed: {zero_optimization: {stage: 3}, optimizer: {type: AdamW}}}"),
              HasSubstr("training_args.deepspeed.optimizer: DeepSpeed's optimizers are not available"));
  EXPECT_THAT(all("training_args: {deepspeed: {zero_optimization: {stage: 3, offload_param: {device: cpu}}}}"),
              HasSubstr("training_args.deepspeed.zero_optimization.offload_param.device: offloading parameters"));
  EXPECT_THAT(all("training_args: {deepspeed: {zero_optimization: {stage: 2}, no_such_key: 1}}"),
              HasSubstr("training_args.deepspeed.no_such_key: is not a DeepSpeed key trainerd reads"));
  EXPECT_THAT(all("training_args: {per_device_train_batch_size: 4, deepspeed: {train_micro_batch_size_per_gpu: 8}}"),
              HasSubstr("training_args.deepspeed.train_micro_batch_size_per_gpu: is 8 and "
                        "training_args.per_device_train_batch_size is 4"));
  EXPECT_THAT(all("training_args: {bf16: false, deepspeed: {bf16: {enabled: true}}}"),
              HasSubstr("training_args.deepspeed.bf16.enabled: is true and training_args.bf16 is false"));
  EXPECT_THAT(all("training_args: {fsdp: full_shard, deepspeed: {zero_optimization: {stage: 3}}}"),
              HasSubstr("training_args.deepspeed: choose one of fsdp and deepspeed"));
  EXPECT_THAT(all("training_args: {deepspeed: {zero_optimization: {stage: 3}}, torch_compile: true}"),
              HasSubstr("training_args.torch_compile: cannot be combined with fsdp"));
  // Without a spec file there is nothing to read a path against.
  auto path = ParseJobSpec("training_args: {deepspeed: ds_config.json}");
  ASSERT_FALSE(path.ok());
  EXPECT_THAT(std::string(path.status().message()), HasSubstr("training_args.deepspeed: give the DeepSpeed config"));
}

// A spec file may name the config file, as HF's --deepspeed ds_config.json does: it is
// read (beside the spec) into the spec, so that the daemon receives the config itself.
TEST(DeepSpeed, ASpecFileReadsTheConfigFileBesideIt) {
  testing::TempDir dir;
  testing::WriteFile(dir / "ds_config.json", R"({"zero_optimization": {"stage": 3}, "train_batch_size": "auto"})");
  testing::WriteFile(dir / "job.yaml", "training_args: {deepspeed: ds_config.json}\n");
  auto spec = LoadJobSpecFile(dir / "job.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(ResolveDeepSpeed(spec->training_args()).stage, 3);
  testing::WriteFile(dir / "missing.yaml", "training_args: {deepspeed: nowhere.json}\n");
  auto missing = LoadJobSpecFile(dir / "missing.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("training_args.deepspeed: "));
  testing::WriteFile(dir / "list.json", "[1, 2]");
  testing::WriteFile(dir / "list.yaml", "training_args: {deepspeed: list.json}\n");
  auto list = LoadJobSpecFile(dir / "list.yaml");
  ASSERT_FALSE(list.ok());
  EXPECT_THAT(std::string(list.status().message()), HasSubstr("is not a JSON object"));
}

TEST(OptimArgs, Parses) {
  auto args = ParseOptimArgs("momentum=0.9, nesterov=true");
  ASSERT_TRUE(args.ok());
  EXPECT_DOUBLE_EQ(args->at("momentum"), 0.9);
  EXPECT_DOUBLE_EQ(args->at("nesterov"), 1.0);
  EXPECT_FALSE(ParseOptimArgs("momentum").ok());
  EXPECT_FALSE(ParseOptimArgs("momentum=fast").ok());
}

// The pad id of a tokenizer.model, read without sentencepiece: the fixtures' Llama
// tokenizer has none (sentencepiece's own answer, from Python: -1), and hand-made
// ModelProto bytes give theirs.
TEST(SentencePiecePad, ReadsTheTrainerSpecsPadId) {
  auto fixture = SentencePiecePadId(testing::SourceDir() + "/tests/fixtures/hf/llama-gqa/tokenizer.model", ReadRoots("", {}));
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  EXPECT_EQ(*fixture, -1);
  // trainer_spec (field 2) { pad_id (field 43): 3 }
  EXPECT_EQ(*SentencePiecePadIdOf(std::string("\x12\x03\xd8\x02\x03", 5)), 3);
  // pad_id: -1 written out (a ten-byte varint), after a piece (field 1) that is skipped.
  const std::string minus_one("\xd8\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12);
  EXPECT_EQ(*SentencePiecePadIdOf(std::string("\x0a\x01\x41\x12\x0c", 5) + minus_one), -1);
  EXPECT_EQ(*SentencePiecePadIdOf(""), -1);  // no trainer_spec: the default
  EXPECT_FALSE(SentencePiecePadIdOf(std::string("\x12\x09\xd8", 3)).ok());
}

}  // namespace
}  // namespace trainerd
