// Bounds and confinement of job specs: hostile values are refused naming the field,
// without crashing and without telling whether a refused path exists.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spec/memory_estimate.h"
#include "spec/spec_defaults.h"
#include "spec/spec_loader.h"
#include "spec/spec_validator.h"
#include "spec/target_modules.h"
#include "tests/spec_fuzz_util.h"
#include "tests/test_util.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

trainer::v1::JobSpec Valid(const std::string& extra_yaml = "") {
  auto spec = ParseJobSpec(extra_yaml);
  EXPECT_TRUE(spec.ok()) << spec.status();
  if (spec->model().type().empty()) spec->mutable_model()->set_type("mlp");
  if (spec->data().train().path().empty()) {
    spec->mutable_data()->mutable_train()->set_path(testing::TableFile());
    spec->mutable_data()->mutable_train()->set_format("csv");
  }
  ApplyDefaults(&*spec);
  return *spec;
}

std::string Problems(const trainer::v1::JobSpec& spec, const SpecCheckOptions& options = {}) {
  return absl::StrJoin(FindSpecProblems(spec, options), "\n");
}

std::string NestedPattern(int depth) {
  std::string p(depth, '(');
  p += "a";
  for (int i = 0; i < depth; ++i) p += ")*";
  return p;
}

TEST(SpecBounds, NestedRegexBombIsRefusedWithoutRecursion) {
  auto spec = Valid("training_args: {optim: galore_adamw}");
  spec.mutable_training_args()->add_optim_target_modules(NestedPattern(100000));  // 300 KB
  EXPECT_THAT(Problems(spec), HasSubstr("training_args.optim_target_modules[0]: is 300001 bytes long; at most 4096"));

  auto patterns = Valid("training_args: {optim: galore_adamw}");
  patterns.mutable_training_args()->add_optim_target_modules(NestedPattern(1000));  // 3 KB
  patterns.mutable_training_args()->add_optim_target_modules("(((((a*)*)*)*)*)*b");  // fine: RE2 never backtracks
  patterns.mutable_training_args()->add_optim_target_modules("blocks.(");
  patterns.mutable_training_args()->add_optim_target_modules(NestedPattern(300));  // 901 bytes: compiled or refused
  const std::string problems = Problems(patterns);
  EXPECT_THAT(problems, HasSubstr("training_args.optim_target_modules[0]: is 3001 bytes long; at most 1024"));
  EXPECT_THAT(problems, Not(HasSubstr("optim_target_modules[1]")));
  EXPECT_THAT(problems, HasSubstr("training_args.optim_target_modules[2]: not a regular expression: unbalanced"));
  EXPECT_THAT(problems, Not(HasSubstr("blocks.(")));  // the pattern is not echoed

  TargetModules targets({"qkv", "blocks\\.[0-9]+\\.out", "blocks.("});
  EXPECT_TRUE(targets.Matches("blocks.0.qkv.weight"));
  EXPECT_TRUE(targets.Matches("blocks.12.out.weight"));
  EXPECT_FALSE(targets.Matches("blocks.1.gate.weight"));
}

TEST(SpecBounds, NumbersMustBeFiniteAndNormal) {
  for (double bad : {std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
                     std::nan(""), std::numeric_limits<double>::denorm_min()}) {
    auto spec = Valid();
    spec.mutable_training_args()->set_learning_rate(bad);
    EXPECT_THAT(Problems(spec), HasSubstr("training_args.learning_rate: ")) << bad;
    EXPECT_THAT(Problems(spec), Not(HasSubstr("must be > 0"))) << "bounds are reported alone";
  }
  auto spec = Valid("training_args: {lr_scheduler_type: cosine, lr_scheduler_kwargs: {num_cycles: 1}}");
  (*spec.mutable_training_args()->mutable_lr_scheduler_kwargs()->mutable_fields())["num_cycles"].set_number_value(
      std::numeric_limits<double>::infinity());
  EXPECT_THAT(Problems(spec), HasSubstr("training_args.lr_scheduler_kwargs.num_cycles: must be a finite number"));
  auto weights = Valid();
  weights.mutable_loss()->add_class_weights(1);
  weights.mutable_loss()->add_class_weights(std::nan(""));
  EXPECT_THAT(Problems(weights), HasSubstr("loss.class_weights[1]: must be a finite number"));
}

// Every number becomes a 32-bit float (or a bounded integer): 1e308 passed the bounds,
// overflowed at run time, exited 1 and was retried; now it is refused at submission.
TEST(SpecBounds, NumbersAreBoundedByTheFloatTheyBecome) {
  for (double bad : {1e308, -1e39, 1e-40}) {
    auto spec = Valid();
    spec.mutable_training_args()->set_learning_rate(bad);
    EXPECT_THAT(Problems(spec), HasSubstr("training_args.learning_rate: is too")) << bad;
  }
  for (double good : {3.0e38, 1e-37, 0.0}) {
    auto spec = Valid();
    spec.mutable_training_args()->set_weight_decay(good);
    EXPECT_THAT(Problems(spec), Not(HasSubstr("training_args.weight_decay"))) << good;
  }
}

TEST(SpecBounds, LongStringsListsAndSpecsAreRefused) {
  auto spec = Valid();
  spec.mutable_training_args()->set_optim(std::string(5000, 'x'));
  EXPECT_THAT(Problems(spec), HasSubstr("training_args.optim: is 5000 bytes long; at most 4096"));
  auto list = Valid();
  for (int i = 0; i < 5000; ++i) list.add_metrics("accuracy");
  EXPECT_THAT(Problems(list), HasSubstr("metrics: has 5000 items; at most 4096"));
  auto huge = Valid();
  for (int i = 0; i < 300; ++i) huge.mutable_data()->mutable_train()->add_feature_columns(std::string(4000, 'c'));
  EXPECT_THAT(Problems(huge), HasSubstr("spec: is "));
  auto enum_junk = Valid();
  enum_junk.mutable_training_args()->set_lr_scheduler_type(std::string(1000, 'z'));
  EXPECT_LT(Problems(enum_junk).size(), 400u) << "a junk value is shown cut short";
}

TEST(SpecBounds, AbsurdSizesAreRefusedWithTheEstimate) {
  SpecCheckOptions options;
  options.policy.limits.max_job_memory_bytes = int64_t{1} << 30;
  options.policy.limits.max_threads = 2;
  auto spec = Valid("model: {type: mlp, hidden_sizes: [1000000, 1000000]}");
  EXPECT_THAT(Problems(spec, options), HasSubstr("model: the job would need about 16000"));
  EXPECT_THAT(Problems(spec, options), HasSubstr("the limit is 1074 MB"));
  auto outputs = Valid("model: {type: mlp, num_outputs: 16000000, hidden_sizes: [4096]}");
  EXPECT_THAT(Problems(outputs, options), HasSubstr("model: the job would need about"));
  auto ceiling = Valid("model: {type: mlp, num_outputs: 1000000000}");
  EXPECT_THAT(Problems(ceiling, options), HasSubstr("model.num_outputs: must be at most"));
  auto text = Valid("model: {type: gpt, hidden_size: 4096, num_layers: 64}");
  EXPECT_THAT(Problems(text, options), HasSubstr("model: the job would need about"));
  auto seq = Valid("model: {type: gpt}\ndata: {max_seq_length: 1000000}\ntraining_args: {per_device_train_batch_size: 64}");
  EXPECT_THAT(Problems(seq, options), HasSubstr("model: the job would need about"));
  auto threads = Valid("training_args: {torch_num_threads: 64}");
  EXPECT_THAT(Problems(threads, options), HasSubstr("training_args.torch_num_threads: must be at most 2"));
  auto small = Valid("model: {type: mlp, hidden_sizes: [256]}");
  EXPECT_EQ(Problems(small, options), "");
  EXPECT_GT(EstimateJobMemoryBytes(small), 0);
}

// The estimate is per rank and knows how the ranks share the model: ZeRO-1 divides the
// optimizer state, shard_grad_op the gradients too, full_shard the parameters too (less
// the root kept whole and the gathered blocks). A job too large for DDP is told how many
// full_shard ranks it needs, and is admitted with them.
TEST(MemoryEstimate, ShardingDividesWhatEachRankHoldsAndAdmitsWhatDdpCannot) {
  const auto spec = Valid("model: {type: gpt, hidden_size: 1024, num_layers: 16}\n"
                          "data: {tokenizer: {vocab_size: 32000}, max_seq_length: 128}\n"
                          "training_args: {per_device_train_batch_size: 1, per_device_eval_batch_size: 1}");
  const ModelFootprint model = BuiltinFootprint(spec);
  auto with = [&](const std::string& yaml) {
    trainer::v1::JobSpec s = spec;
    auto extra = ParseJobSpec(yaml);
    EXPECT_TRUE(extra.ok()) << extra.status();
    s.mutable_training_args()->MergeFrom(extra->training_args());
    return s.training_args();
  };
  const RankMemory ddp = EstimateRankMemory(model, spec.training_args(), 4);
  const RankMemory zero1 = EstimateRankMemory(model, with("training_args: {optimizer_sharding: true}"), 4);
  const RankMemory grad_op = EstimateRankMemory(model, with("training_args: {fsdp: shard_grad_op}"), 4);
  const RankMemory full = EstimateRankMemory(model, with("training_args: {fsdp: full_shard}"), 4);
  const RankMemory stage3 =
      EstimateRankMemory(model, with("training_args: {deepspeed: {zero_optimization: {stage: 3}}}"), 4);
  EXPECT_EQ(ddp.strategy, "ddp");
  EXPECT_EQ(zero1.strategy, "zero1");
  EXPECT_EQ(full.strategy, "full_shard");
  EXPECT_EQ(stage3.total_bytes(), full.total_bytes());
  EXPECT_LT(zero1.total_bytes(), ddp.total_bytes());
  EXPECT_LT(grad_op.total_bytes(), zero1.total_bytes());
  EXPECT_LT(full.total_bytes(), grad_op.total_bytes());
  EXPECT_DOUBLE_EQ(full.optimizer_state, ddp.optimizer_state / 4);
  EXPECT_GT(full.gathered_unit, 0);
  std::printf("gpt %.0fM parameters, 4 ranks: ddp %s\nfull_shard %s\n", model.all_parameters / 1e6,
              ddp.Describe().c_str(), full.Describe().c_str());

  // Under a limit DDP does not fit, the refusal names the full_shard ranks that do.
  SpecCheckOptions options;
  options.policy.limits.max_job_memory_bytes = full.total_bytes() + (ddp.total_bytes() - full.total_bytes()) / 4;
  options.ranks = 2;
  const std::string refused = Problems(spec, options);
  EXPECT_THAT(refused, HasSubstr("model: the job would need about"));
  EXPECT_THAT(refused, HasSubstr("per rank (ddp on 2 ranks)"));
  const size_t at = refused.find("with training_args.fsdp full_shard on ");
  ASSERT_NE(at, std::string::npos) << refused;
  const int ranks = std::stoi(refused.substr(at + std::string("with training_args.fsdp full_shard on ").size()));
  EXPECT_GE(ranks, 2);
  EXPECT_LE(ranks, 4);
  trainer::v1::JobSpec sharded = spec;
  sharded.mutable_training_args()->add_fsdp("full_shard");
  options.ranks = ranks;
  const SpecCheckResult admitted = CheckJobSpec(sharded, options);
  EXPECT_THAT(absl::StrJoin(admitted.problems, "\n"), Not(HasSubstr("the job would need")));
  ASSERT_TRUE(admitted.memory_per_rank.has_value());
  EXPECT_EQ(admitted.memory_per_rank->strategy, "full_shard");
  EXPECT_LE(admitted.memory_per_rank->total_bytes(), options.policy.limits.max_job_memory_bytes);
}

class SpecPaths : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(root() / "data");
    fs::create_directories(root() / "outside");
    fs::create_directories(root() / "state/jobs/j1/output/checkpoint-5");
    fs::create_directories(root() / "state/jobs/j2/output");
    fs::create_directories(root() / "state/registry");
    std::ofstream(root() / "data/train.csv") << "x,label\n1,0\n";
    std::ofstream(root() / "outside/secret.csv") << "x,label\n1,0\n";
    std::ofstream(root() / "state/admin.token") << "t\n";
    fs::create_symlink(root() / "outside/secret.csv", root() / "data/link.csv");
    policy_.data_dirs = {(root() / "data").string(), root().string() + "/state"};
    policy_.private_paths = {(root() / "state").string()};
    policy_.registry_dir = (root() / "state/registry").string();
  }
  fs::path root() const { return dir_.path(); }
  std::string Check(const std::string& field_yaml) {
    auto spec = Valid(field_yaml);
    if (spec.data().train().path() == testing::TableFile()) {
      spec.mutable_data()->mutable_train()->set_path((root() / "data/train.csv").string());
    }
    spec.mutable_training_args()->set_output_dir((root() / "state/jobs/j1/output").string());
    SpecCheckOptions options;
    options.policy = policy_;
    return Problems(spec, options);
  }
  std::string Train(const fs::path& p) { return "data: {train: {path: " + p.string() + ", format: csv}}"; }

  testing::TempDir dir_;
  SpecPolicy policy_;
};

TEST_F(SpecPaths, OnlyAllowedFoldersAreRead) {
  EXPECT_EQ(Check(Train(root() / "data/train.csv")), "");
  const std::string refused = "data.train.path: is not under a folder this trainerd allows";
  EXPECT_THAT(Check(Train(root() / "outside/secret.csv")), HasSubstr(refused));
  EXPECT_THAT(Check(Train(root() / "data/../outside/secret.csv")), HasSubstr(refused));
  EXPECT_THAT(Check(Train(root() / "data/link.csv")), HasSubstr(refused));
  EXPECT_THAT(Check("data: {train: {path: relative.csv, format: csv}}"), HasSubstr("data.train.path: must be an absolute path"));
  // The same answer whether or not the file exists, also through a link.
  EXPECT_EQ(Check(Train(root() / "outside/secret.csv")), Check(Train(root() / "outside/nothing.csv")));
  fs::create_symlink(root() / "outside/nothing.csv", root() / "data/dangling.csv");
  EXPECT_EQ(Check(Train(root() / "data/dangling.csv")), Check(Train(root() / "data/link.csv")));
  fs::create_symlink("../outside", root() / "data/relative");
  EXPECT_THAT(Check(Train(root() / "data/relative/secret.csv")), HasSubstr(refused));
  fs::create_symlink(root() / "data/loop", root() / "data/loop");
  EXPECT_THAT(Check(Train(root() / "data/loop/x.csv")), HasSubstr(refused));
  // Inside an allowed folder a missing file is reported as missing.
  EXPECT_THAT(Check(Train(root() / "data/nothing.csv")), HasSubstr("data.train.path: no such file"));
  EXPECT_THAT(Check(Train(root() / ("data/" + std::string(300, 'a')))), HasSubstr("longer than 255 bytes"));
}

TEST_F(SpecPaths, TrainerdsOwnFolderIsPrivateExceptTheJobsOutput) {
  const std::string refused = "is not under a folder this trainerd allows";
  EXPECT_THAT(Check(Train(root() / "state/admin.token")), HasSubstr(refused));
  EXPECT_THAT(Check(Train(root() / "state/jobs/j2/output/x.csv")), HasSubstr(refused));
  EXPECT_THAT(Check("training_args: {resume_from_checkpoint: " + (root() / "state/jobs/j2/output").string() + "}"),
              HasSubstr("training_args.resume_from_checkpoint: " + refused));
  EXPECT_EQ(Check("training_args: {resume_from_checkpoint: " +
                  (root() / "state/jobs/j1/output/checkpoint-5").string() + "}"), "");
  EXPECT_THAT(Check("model: {type: torchscript, path: " + (root() / "state/jobs/j2/output/model.pt").string() + "}"),
              HasSubstr("model.path: " + refused));
}

TEST_F(SpecPaths, ExportsGoOnlyToTheRegistry) {
  EXPECT_EQ(Check("training_args: {hub_dir: " + (root() / "state/registry").string() + "}"), "");
  EXPECT_THAT(Check("training_args: {hub_dir: " + (root() / "state/jobs/j2/output").string() + "}"),
              HasSubstr("training_args.hub_dir: is not under the registry folder"));
  EXPECT_THAT(Check("training_args: {hub_dir: " + (root() / "state/registry/../jobs/j2").string() + "}"),
              HasSubstr("training_args.hub_dir: is not under the registry folder"));
  EXPECT_THAT(Check("training_args: {hub_dir: " + (root() / "state/registry").string() + ", hub_model_id: ../j2}"),
              HasSubstr("training_args.hub_model_id: must be a plain name"));
  EXPECT_TRUE(IsPlainName("my-model_v1.2"));
  EXPECT_FALSE(IsPlainName(".."));
  EXPECT_FALSE(IsPlainName("a/b"));
  EXPECT_FALSE(IsPlainName(std::string(257, 'a')));
}

TEST(SpecPolicyEnvironment, RoundTrips) {
  SpecPolicy policy;
  policy.data_dirs = {"/a", "/b c"};
  policy.registry_dir = "/r";
  policy.private_paths = {"/p", "/q/r"};
  policy.limits.max_job_memory_bytes = 123456789;
  policy.limits.max_threads = 3;
  for (const auto& [k, v] : SpecPolicyToEnvironment(policy)) ::setenv(k.c_str(), v.c_str(), 1);
  const SpecPolicy back = SpecPolicyFromEnvironment();
  EXPECT_EQ(back.data_dirs, policy.data_dirs);
  EXPECT_EQ(back.registry_dir, "/r");
  EXPECT_EQ(back.private_paths, (std::vector<std::string>{"/p", "/q/r"}));
  EXPECT_EQ(back.limits.max_job_memory_bytes, 123456789);
  EXPECT_EQ(back.limits.max_threads, 3);
}

}  // namespace
}  // namespace trainerd

namespace trainerd {
namespace {

TEST(SpecFuzz, EveryAnswerIsValidOrNamesAField) {
  std::mt19937_64 rng(12345);
  SpecCheckOptions options;
  options.policy.data_dirs = {"/usr/share/datasets"};
  options.policy.registry_dir = "/tmp";
  options.policy.private_paths = {"/var/lib"};
  options.policy.limits.max_job_memory_bytes = int64_t{4} << 30;
  options.policy.limits.max_threads = 2;
  const std::vector<std::string> tops = {"training_args", "model", "data",   "loss",
                                         "metrics",       "callbacks", "spec", "peft"};
  int valid = 0;
  for (int n = 0; n < 3000; ++n) {
    trainer::v1::JobSpec spec = Valid(absl::StrCat("data: {train: {path: ", testing::kFashionDir,
                                                   "/train-images-idx3-ubyte.gz, labels_path: ", testing::kFashionDir,
                                                   "/train-labels-idx1-ubyte.gz}}"));
    const int fields = 1 + static_cast<int>(rng() % 12);
    for (int i = 0; i < fields; ++i) testing::SetRandomField(&spec, rng, 0);
    ApplyDefaults(&spec);
    const std::vector<std::string> problems = FindSpecProblems(spec, options);
    valid += problems.empty();
    for (const std::string& p : problems) {
      const size_t colon = p.find(": ");
      ASSERT_NE(colon, std::string::npos) << p.substr(0, 200);
      const std::string field = p.substr(0, colon);
      const std::string top = field.substr(0, field.find_first_of(".["));
      EXPECT_TRUE(std::find(tops.begin(), tops.end(), top) != tops.end()) << p.substr(0, 200);
      EXPECT_LT(p.size(), 600u) << p.substr(0, 200);
    }
  }
  std::printf("%d of 3000 fuzzed specs are valid\n", valid);
  EXPECT_GT(valid, 0);
}

}  // namespace
}  // namespace trainerd
