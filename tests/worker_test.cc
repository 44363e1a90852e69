// Worker library tests on real (small) data: optimizers, metrics, data loading, the
// training loop's arithmetic (gradient accumulation), customisation by subclassing,
// TorchScript models, bf16.
#include <cmath>
#include <cstring>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <c10/core/CPUAllocator.h>
#include <torch/script.h>
#include <torch/torch.h>

#include "absl/strings/str_split.h"
#include "spec/spec_defaults.h"
#include "spec/spec_loader.h"
#include "spec/spec_validator.h"
#include "tests/test_util.h"
#include "tests/trainer_test_util.h"
#include "worker/models/model_factory.h"
#include "worker/data/dataset_factory.h"
#include "worker/optim/adafactor.h"
#include "spec/confined_file.h"
#include "worker/data/data_loader.h"
#include "worker/data/dataset_reader.h"
#include "worker/trainer/large_block_cache.h"
#include "worker/trainer/loss_scaler.h"
#include "worker/trainer/metrics.h"
#include "worker/optim/optimizer_factory.h"
#include "worker/trainer/trainer.h"

namespace trainerd {
namespace {

using testing::Args;
using testing::MakeTrainer;
using testing::Spec;
using testing::TempDir;

std::string FashionYaml(int64_t limit) {
  const std::string d = testing::kFashionDir;
  return absl::StrCat("data: {train: {path: ", d, "/train-images-idx3-ubyte.gz, labels_path: ", d,
                      "/train-labels-idx1-ubyte.gz, limit: ", limit, "}, mean: 0.286, std: 0.353",
                      ", eval_split: 0.2}\n");
}


// ---------------------------------------------------------------- optimizers

TEST(Optimizers, WeightDecaySkipsBiasesAndNorms) {
  EXPECT_TRUE(UsesWeightDecay("layers.0.weight", torch::zeros({4, 4})));
  EXPECT_FALSE(UsesWeightDecay("layers.0.bias", torch::zeros({4})));
  EXPECT_FALSE(UsesWeightDecay("norm.weight", torch::zeros({4})));
}

TEST(Optimizers, EachOptimIsWiredWithItsArguments) {
  NamedTensors params = {{"w", torch::randn({3, 3}, torch::requires_grad())},
                         {"b", torch::zeros({3}, torch::requires_grad())}};
  auto args = Args("training_args: {optim: adamw_torch, learning_rate: 0.01, weight_decay: 0.1, "
                   "adam_beta1: 0.8, adam_beta2: 0.95, adam_epsilon: 1e-6}");
  auto adamw = CreateOptimizer(args, params);
  ASSERT_TRUE(adamw.ok()) << adamw.status();
  auto* a = dynamic_cast<torch::optim::AdamW*>(adamw->get());
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->param_groups().size(), 2u);
  auto& decay = static_cast<torch::optim::AdamWOptions&>(a->param_groups()[0].options());
  auto& no_decay = static_cast<torch::optim::AdamWOptions&>(a->param_groups()[1].options());
  EXPECT_DOUBLE_EQ(decay.weight_decay(), 0.1);
  EXPECT_DOUBLE_EQ(no_decay.weight_decay(), 0.0);
  EXPECT_DOUBLE_EQ(std::get<0>(decay.betas()), 0.8);
  EXPECT_DOUBLE_EQ(std::get<1>(decay.betas()), 0.95);
  EXPECT_DOUBLE_EQ(decay.eps(), 1e-6);
  SetLearningRate(**adamw, 0.5);
  EXPECT_DOUBLE_EQ(no_decay.lr(), 0.5);

  auto sgd = CreateOptimizer(Args("training_args: {optim: sgd, optim_args: 'momentum=0.9, nesterov=true'}"), params);
  auto* s = dynamic_cast<torch::optim::SGD*>(sgd->get());
  ASSERT_NE(s, nullptr);
  auto& so = static_cast<torch::optim::SGDOptions&>(s->param_groups()[0].options());
  EXPECT_DOUBLE_EQ(so.momentum(), 0.9);
  EXPECT_TRUE(so.nesterov());
  EXPECT_NE(dynamic_cast<torch::optim::Adagrad*>(
                CreateOptimizer(Args("training_args: {optim: adagrad}"), params)->get()),
            nullptr);
  EXPECT_NE(dynamic_cast<torch::optim::RMSprop*>(
                CreateOptimizer(Args("training_args: {optim: rmsprop}"), params)->get()),
            nullptr);
  EXPECT_NE(dynamic_cast<Adafactor*>(
                CreateOptimizer(Args("training_args: {optim: adafactor}"), params)->get()),
            nullptr);
}

TEST(Optimizers, EveryOptimTheValidatorAcceptsIsBuiltAndNoOther) {
  NamedTensors params = {{"w", torch::randn({4, 4}, torch::requires_grad())},
                         {"b", torch::zeros({4}, torch::requires_grad())}};
  for (const std::string& name : SupportedOptimizers()) {
    trainer::v1::JobSpec spec;
    spec.mutable_training_args()->set_optim(name);
    spec.mutable_training_args()->add_optim_target_modules("w");
    ApplyDefaults(&spec);
    OptimizerCapabilities* capabilities = nullptr;
    auto created = CreateOptimizer(spec.training_args(), params, &capabilities);
    EXPECT_TRUE(created.ok()) << name << ": " << created.status();
    EXPECT_NE(capabilities, nullptr) << name;
    if (created.ok()) EXPECT_EQ(capabilities->StepsDuringBackward(), name == "galore_adamw_layerwise") << name;
  }
  const std::vector<std::string> accepted = SupportedOptimizers();
  EXPECT_EQ(OptimizerNames(), std::set<std::string>(accepted.begin(), accepted.end()));
  for (const std::string& name : {"adamw_hf", "adamw_torch_fused", "lion_32bit", "galore_lion"}) {
    EXPECT_FALSE(CreateOptimizer(Args(absl::StrCat("training_args: {optim: ", name, "}")), params).ok()) << name;
  }
}

// Adafactor's first step from HF's update rule, worked by hand for a 1-D parameter:
// beta2_1 = 1 - 1^-0.8 = 0, so v = g^2 + eps1 and the update is g / sqrt(v) ~ sign(g),
// clipped to RMS 1, times lr.
TEST(Optimizers, AdafactorFirstStepMatchesHfRule) {
  torch::Tensor p = torch::tensor({1.0f, -2.0f, 3.0f}).requires_grad_();
  p.mutable_grad() = torch::tensor({0.5f, -0.25f, 2.0f});
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{p});
  Adafactor opt(groups, AdafactorOptions(0.1));
  opt.step();
  EXPECT_TRUE(torch::allclose(p.detach(), torch::tensor({0.9f, -1.9f, 2.9f}), 1e-5, 1e-6)) << p;
}

TEST(Optimizers, AdafactorFactoredReducesLoss) {
  torch::manual_seed(0);
  torch::Tensor w = torch::randn({8, 6}, torch::requires_grad());
  torch::Tensor target = torch::randn({8, 6});
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{w});
  Adafactor opt(groups, AdafactorOptions(0.05));
  const double before = (w - target).square().sum().item<double>();
  for (int i = 0; i < 50; ++i) {
    opt.zero_grad();
    (w - target).square().sum().backward();
    opt.step();
  }
  EXPECT_LT((w - target).square().sum().item<double>(), before * 0.2);
}

// ---------------------------------------------------------------- metrics

TEST(Metrics, ClassificationMacroScores) {
  // Predictions: class 0 for examples 0,1,2; class 1 for 3; labels 0,0,1,1.
  torch::Tensor logits = torch::tensor({{2.f, 0.f}, {2.f, 0.f}, {2.f, 0.f}, {0.f, 2.f}});
  torch::Tensor labels = torch::tensor({0, 0, 1, 1}, torch::kLong);
  Metrics m = ComputeMetrics({"accuracy", "precision", "recall", "f1", "perplexity"}, logits, labels,
                             std::log(3.0), /*regression=*/false);
  EXPECT_DOUBLE_EQ(m["accuracy"], 0.75);
  // class 0: p = 2/3, r = 1, f1 = 0.8; class 1: p = 1, r = 0.5, f1 = 2/3.
  EXPECT_NEAR(m["precision"], (2.0 / 3 + 1) / 2, 1e-12);
  EXPECT_NEAR(m["recall"], 0.75, 1e-12);
  EXPECT_NEAR(m["f1"], (0.8 + 2.0 / 3) / 2, 1e-12);
  EXPECT_NEAR(m["perplexity"], 3.0, 1e-12);
}

TEST(Metrics, Regression) {
  Metrics m = ComputeMetrics({"mse", "mae"}, torch::tensor({{1.f}, {2.f}, {4.f}}),
                             torch::tensor({1.f, 3.f, 2.f}), 0, /*regression=*/true);
  EXPECT_NEAR(m["mse"], 5.0 / 3, 1e-6);
  EXPECT_NEAR(m["mae"], 1.0, 1e-6);
}

// ---------------------------------------------------------------- data

// Files are checked where they really are when opened: a link that leads out of the
// allowed folders is refused, in the same words whether or not its target exists.
TEST(Data, FilesAreConfinedWhenOpened) {
  testing::TempDir dir;
  namespace fs = std::filesystem;
  fs::create_directories(dir / "data");
  fs::create_directories(dir / "outside");
  testing::WriteFile(dir / "data/in.txt", "hello\n");
  testing::WriteFile(dir / "outside/secret.txt", "the secret\n");
  fs::create_symlink(dir / "outside/secret.txt", dir / "data/link.txt");
  fs::create_symlink(dir / "outside/missing.txt", dir / "data/dangling.txt");
  SpecPolicy policy;
  policy.data_dirs = {dir / "data"};
  ConfineReads(ReadRoots("", policy));
  EXPECT_EQ(*ReadMaybeGzipped(dir / "data/in.txt"), "hello\n");
  const absl::Status link = ReadMaybeGzipped(dir / "data/link.txt").status();
  const absl::Status dangling = ReadMaybeGzipped(dir / "data/dangling.txt").status();
  EXPECT_EQ(link.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(link.message()), ::testing::HasSubstr("is not under a folder this trainerd allows"));
  EXPECT_THAT(std::string(link.message()), ::testing::Not(::testing::HasSubstr("the secret")));
  EXPECT_EQ(dangling.code(), link.code());
  EXPECT_EQ(std::string(dangling.message()), absl::StrCat(dir / "data/dangling.txt", ": ", ReadRoots::kRefusal));
  trainer::v1::DatasetSource csv;
  csv.set_path(dir / "data/link.txt");
  std::map<std::string, int64_t> labels;
  EXPECT_EQ(ReadTableDataset(csv, ',', false, &labels).status().code(), absl::StatusCode::kPermissionDenied);
  ConfineReads(ReadRoots("", SpecPolicy{}));  // unconfined again for the other tests
  EXPECT_EQ(*ReadMaybeGzipped(dir / "data/link.txt"), "the secret\n");
}

TEST(Data, ReadsFashionMnistIdx) {
  const std::string d = testing::kFashionDir;
  auto ds = ReadIdxDataset(d + "/t10k-images-idx3-ubyte.gz", d + "/t10k-labels-idx1-ubyte.gz", 0);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->inputs.sizes(), (std::vector<int64_t>{10000, 1, 28, 28}));
  EXPECT_EQ(ds->labels.max().item<int64_t>(), 9);
  // Every class has 1000 test images.
  EXPECT_TRUE(torch::bincount(ds->labels).eq(1000).all().item<bool>());
  auto bad = ReadIdxDataset(d + "/t10k-labels-idx1-ubyte.gz", d + "/t10k-labels-idx1-ubyte.gz", 0);
  EXPECT_FALSE(bad.ok());
}

TEST(Data, ReadsCsvWithStringLabelsAndCarvesEvalSplit) {
  TempDir dir;
  std::string csv = "x1,x2,species\n";
  for (int i = 0; i < 20; ++i) absl::StrAppend(&csv, i, ",", i * 2, ",", i % 2 ? "b" : "a", "\n");
  testing::WriteFile(dir / "t.csv", csv);
  auto spec = Spec(absl::StrCat("data: {train: {path: ", dir / "t.csv",
                                ", label_column: species}, eval_split: 0.25, standardize: true}\nmodel: {type: mlp}"));
  auto b = LoadDatasets(spec.data(), 1);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->train.size(), 15);
  EXPECT_EQ(b->eval->size(), 5);
  EXPECT_EQ(b->num_classes, 2);
  EXPECT_EQ(b->class_names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(b->input_shape, (std::vector<int64_t>{2}));
  torch::Tensor x = b->normalization.Apply(b->train.inputs);
  EXPECT_NEAR(x.mean(0).abs().max().item<double>(), 0, 1e-5);

  testing::WriteFile(dir / "bad.csv", "x1,label\n1,0\nfast,1\n");
  trainer::v1::DatasetSource bad;
  bad.set_path(dir / "bad.csv");
  std::map<std::string, int64_t> ids;
  auto r = ReadTableDataset(bad, ',', false, &ids);
  ASSERT_FALSE(r.ok());
  // File, line and column; never the cell's content (the file may be somebody's secret).
  EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("bad.csv:3:1: column 1 is not a number"));
  EXPECT_THAT(std::string(r.status().message()), ::testing::Not(::testing::HasSubstr("fast")));
  testing::WriteFile(dir / "labels.csv", "x1,label\n1,0\n2,s3cret\n");
  trainer::v1::DatasetSource labels;
  labels.set_path(dir / "labels.csv");
  labels.set_limit(0);
  auto regression = ReadTableDataset(labels, ',', true, &ids);
  ASSERT_FALSE(regression.ok());
  EXPECT_THAT(std::string(regression.status().message()), ::testing::HasSubstr("data row 2, column 2"));
  EXPECT_THAT(std::string(regression.status().message()), ::testing::Not(::testing::HasSubstr("s3cret")));
}

// Fashion-MNIST pixels normalised as torchvision's ToTensor + Normalize compute them,
// bit for bit, checked against a Python reference that reads the IDX file itself: a
// Python user who feeds the same images to HF Trainer gets the same float32 inputs.
TEST(Data, PixelsNormaliseBitForBitAsTorchvision) {
  constexpr int kImages = 16;
  const std::string images = absl::StrCat(testing::kFashionDir, "/train-images-idx3-ubyte.gz");
  auto spec = Spec(absl::StrCat("data: {train: {path: ", images, ", labels_path: ", testing::kFashionDir,
                                "/train-labels-idx1-ubyte.gz, limit: ", kImages,
                                "}, mean: 0.2860, std: 0.3530}\nmodel: {type: mlp}"));
  auto b = LoadDatasets(spec.data(), 1);
  ASSERT_TRUE(b.ok()) << b.status();
  const torch::Tensor raw = torch::cat({b->train.inputs.flatten(), torch::arange(256).to(torch::kUInt8)});
  const torch::Tensor ours = b->normalization.Apply(raw).contiguous();
  ASSERT_EQ(ours.scalar_type(), torch::kFloat);

  auto py = testing::RunCommand(absl::StrCat("/usr/bin/python3 ", testing::SourceDir(), "/tests/normalize_reference.py ",
                                             images, " ", kImages, " 0.2860 0.3530"));
  ASSERT_EQ(py.exit_code, 0) << py.output;
  const std::vector<std::string> lines = absl::StrSplit(py.output, '\n', absl::SkipEmpty());
  ASSERT_EQ(static_cast<int64_t>(lines.size()), ours.numel());
  // The fused multiply-add trainerd used before, to show that the check can fail.
  const torch::Tensor mean = torch::tensor(0.2860f), std = torch::tensor(0.3530f);
  const torch::Tensor fused = torch::addcmul(-mean / std, raw, torch::scalar_tensor(1.0 / 255) / std).contiguous();
  int64_t differ = 0, fused_differ = 0;
  for (int64_t i = 0; i < ours.numel(); ++i) {
    uint32_t ours_bits, fused_bits;
    std::memcpy(&ours_bits, ours.data_ptr<float>() + i, 4);
    std::memcpy(&fused_bits, fused.data_ptr<float>() + i, 4);
    const uint32_t reference = static_cast<uint32_t>(std::stoul(lines[i], nullptr, 16));
    differ += ours_bits != reference;
    fused_differ += fused_bits != reference;
  }
  EXPECT_EQ(differ, 0) << "of " << ours.numel() << " pixels";
  EXPECT_GT(fused_differ, 100);
}

// Freed blocks of 4 MiB and more come back to the next allocation of their size (no new
// mmap to fault in); small ones and raw allocations (NNPACK's) pass through; values are
// the same.
TEST(Data, LargeBlockCacheReusesFreedBlocksAndChangesNoValue) {
  LargeBlockCache& cache = LargeBlockCache::Install(int64_t{256} << 20);
  const int64_t reuses = cache.reuses();
  void* first = nullptr;
  {
    torch::Tensor big = torch::ones({10, 1000, 1000});  // 40 MB
    first = big.data_ptr();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % 64, 0u);
  }
  EXPECT_GE(cache.cached_bytes(), int64_t{40} << 20);
  torch::Tensor again = torch::zeros({10, 1000, 1000});
  EXPECT_EQ(again.data_ptr(), first);
  EXPECT_EQ(cache.reuses(), reuses + 1);
  EXPECT_EQ(again.sum().item<double>(), 0);
  void* raw = c10::GetCPUAllocator()->raw_allocate(100);
  c10::GetCPUAllocator()->raw_deallocate(raw);
  torch::manual_seed(3);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(1, 32, 3));
  const torch::Tensor x = torch::randn({1000, 1, 28, 28});
  const torch::Tensor a = conv->forward(x), b = conv->forward(x);  // b partly in blocks a freed
  EXPECT_TRUE(torch::equal(a, b));
}

TEST(Data, LoaderOrderIsPerEpochAndPrefetchKeepsIt) {
  Dataset ds{torch::arange(100, torch::kFloat).unsqueeze(1), torch::arange(100, torch::kLong)};
  Normalization norm;
  DataLoaderOptions o;
  o.batch_size = 8;
  o.shuffle = true;
  o.seed = 5;
  DataLoader plain(&ds, &norm, o);
  o.num_workers = 3;
  DataLoader prefetching(&ds, &norm, o);
  EXPECT_EQ(plain.num_batches(), 13);
  for (int64_t epoch : {0, 1}) {
    plain.StartEpoch(epoch);
    prefetching.StartEpoch(epoch);
    std::vector<int64_t> seen;
    while (auto b = plain.Next()) {
      auto p = prefetching.Next();
      ASSERT_TRUE(p.has_value());
      EXPECT_TRUE(torch::equal(b->labels, p->labels));
      for (int64_t i = 0; i < b->size(); ++i) seen.push_back(b->labels[i].item<int64_t>());
    }
    EXPECT_FALSE(prefetching.Next().has_value());
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(seen.size(), 100u);
    EXPECT_EQ(seen.front(), 0);
    EXPECT_EQ(seen.back(), 99);
  }
  // Starting mid-epoch yields exactly the rest of that epoch's batches.
  plain.StartEpoch(1);
  for (int i = 0; i < 5; ++i) plain.Next();
  auto sixth = plain.Next();
  prefetching.StartEpoch(1, /*first_batch=*/5);
  EXPECT_TRUE(torch::equal(prefetching.Next()->labels, sixth->labels));
  // A different epoch has a different order.
  plain.StartEpoch(0);
  auto e0 = plain.Next();
  plain.StartEpoch(1);
  EXPECT_FALSE(torch::equal(e0->labels, plain.Next()->labels));
}

TEST(Data, ShardsAreDisjointPaddedAndEqual) {
  // 10 examples on 3 ranks: padded to 12 (two repeated), 4 each, no example on two
  // ranks except the padding.
  Dataset ds{torch::arange(10, torch::kFloat).unsqueeze(1), torch::arange(10, torch::kLong)};
  Normalization norm;
  std::vector<int64_t> seen;
  for (int64_t rank = 0; rank < 3; ++rank) {
    DataLoaderOptions o;
    o.batch_size = 3;
    o.shuffle = true;
    o.seed = 7;
    o.num_replicas = 3;
    o.rank = rank;
    DataLoader loader(&ds, &norm, o);
    EXPECT_EQ(loader.num_examples(), 4);
    EXPECT_EQ(loader.num_batches(), 2);
    loader.StartEpoch(2);
    int64_t count = 0;
    while (auto b = loader.Next()) {
      for (int64_t i = 0; i < b->size(); ++i) seen.push_back(b->labels[i].item<int64_t>());
      count += b->size();
    }
    EXPECT_EQ(count, 4);
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen.size(), 12u);
  EXPECT_EQ(std::unique(seen.begin(), seen.end()) - seen.begin(), 10);  // every example, 2 twice
}

// ---------------------------------------------------------------- training

// An error evaluate() returns during training keeps its code through train(): an
// INVALID_ARGUMENT (exit 2, not retried by trainerd) must not become INTERNAL (exit 1,
// retried).
TEST(Training, AnEvaluateErrorKeepsItsCodeThroughTrain) {
  auto spec = Spec(absl::StrCat("training_args: {max_steps: 4, eval_strategy: steps, eval_steps: 2}\n",
                                "model: {type: mlp, hidden_sizes: [8]}\n", FashionYaml(100)));
  auto data = LoadDatasets(spec.data(), spec.training_args().data_seed());
  ASSERT_TRUE(data.ok()) << data.status();
  data->eval = data->eval->Subset(torch::zeros({0}, torch::kLong));  // what no reader lets through
  auto model = CreateModel(spec.model(), *data);
  ASSERT_TRUE(model.ok());
  Trainer trainer(spec, std::move(*model), std::move(*data));
  absl::StatusOr<TrainOutput> out = trainer.train();
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << out.status();
  EXPECT_THAT(std::string(out.status().message()), ::testing::HasSubstr("the eval dataset is empty"));
}

// HF's 2024 fix: accumulating 4 micro-batches of 8 gives the gradients of one batch of 32.
TEST(Training, GradientAccumulationMatchesBigBatch) {
  const std::string base =
      "training_args: {optim: sgd, learning_rate: 0.1, max_steps: 3, logging_steps: 1,"
      " lr_scheduler_type: constant}\nmodel: {type: mlp, hidden_sizes: [32]}\n" + FashionYaml(400);
  auto big = MakeTrainer(Spec(base, {"training_args.per_device_train_batch_size=32"}));
  auto small = MakeTrainer(Spec(base, {"training_args.per_device_train_batch_size=8",
                                       "training_args.gradient_accumulation_steps=4"}));
  ASSERT_TRUE(big->train().ok());
  ASSERT_TRUE(small->train().ok());
  auto bp = big->model().NamedParameters(), sp = small->model().NamedParameters();
  ASSERT_EQ(bp.size(), sp.size());
  for (size_t i = 0; i < bp.size(); ++i) {
    EXPECT_TRUE(torch::allclose(bp[i].second, sp[i].second, 1e-5, 1e-6)) << bp[i].first;
  }
  for (int step = 0; step < 3; ++step) {
    EXPECT_NEAR(big->state().log_history[step].at("loss"), small->state().log_history[step].at("loss"), 1e-5);
    EXPECT_NEAR(big->state().log_history[step].at("grad_norm"),
                small->state().log_history[step].at("grad_norm"), 1e-4);
  }
}

TEST(Training, LoopFollowsStepsEpochsLoggingAndSchedule) {
  // 320 train examples / batch 32 = 10 batches; accumulation 3 -> 4 updates per epoch.
  auto t = MakeTrainer(Spec(
      "training_args: {num_train_epochs: 1.5, per_device_train_batch_size: 32, "
      "gradient_accumulation_steps: 3, logging_steps: 2, eval_strategy: epoch, "
      "learning_rate: 0.01, warmup_steps: 2}\nmodel: {type: mlp, hidden_sizes: [16]}\n" +
      FashionYaml(400)));
  auto out = t->train();
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(t->state().max_steps, 6);  // ceil(1.5 * 4)
  EXPECT_EQ(out->global_step, 6);
  std::vector<int64_t> logged_steps;
  int evals = 0;
  for (const Metrics& m : t->state().log_history) {
    if (m.count("loss")) {
      logged_steps.push_back(static_cast<int64_t>(m.at("step")));
      // Linear schedule with 2 warmup steps over 6: lr after k updates.
      const double k = m.at("step");
      const double expected = k < 2 ? 0.01 * k / 2 : 0.01 * (6 - k) / 4;
      EXPECT_NEAR(m.at("learning_rate"), expected, 1e-12) << "step " << k;
    }
    if (m.count("eval_loss")) ++evals;
  }
  EXPECT_EQ(logged_steps, (std::vector<int64_t>{2, 4, 6}));
  EXPECT_EQ(evals, 2);  // after epoch 1 and after the half epoch
  EXPECT_NEAR(t->state().epoch, 1.0 + 6.0 / 10.0, 1e-9);
}

// The seed's CustomTrainer: a subclass that changes compute_loss, and sees the change.
class AlwaysClassZeroTrainer : public Trainer {
 public:
  using Trainer::Trainer;
  int calls = 0;
  torch::Tensor compute_loss(Model& model, const Batch& inputs, std::optional<double> num_items,
                             torch::Tensor* outputs) override {
    ++calls;
    torch::Tensor logits = model.Forward(inputs.inputs);
    if (outputs) *outputs = logits;
    return torch::nn::functional::cross_entropy(logits, torch::zeros_like(inputs.labels));
  }
};

TEST(Training, SubclassChangesTheLoss) {
  auto spec = Spec("training_args: {max_steps: 30, learning_rate: 0.01, per_device_train_batch_size: 32}\n"
                   "model: {type: mlp, hidden_sizes: [16]}\nmetrics: [accuracy]\n" + FashionYaml(500));
  torch::manual_seed(1);
  auto data = *LoadDatasets(spec.data(), 42);
  auto model = *CreateModel(spec.model(), data);
  AlwaysClassZeroTrainer trainer(spec, std::move(model), std::move(data));
  ASSERT_TRUE(trainer.train().ok());
  auto eval = trainer.evaluate();
  ASSERT_TRUE(eval.ok()) << eval.status();
  EXPECT_GT(trainer.calls, 30);
  // Everything is predicted as class 0, so accuracy is that class's share (~10%).
  EXPECT_LT(eval->at("eval_accuracy"), 0.2);
}

TEST(Training, LearnsFashionMnistWellAboveChance) {
  auto t = MakeTrainer(Spec("training_args: {num_train_epochs: 3, learning_rate: 2e-3, "
                            "per_device_train_batch_size: 32}\nmodel: {type: mlp, hidden_sizes: [64]}\n"
                            "metrics: [accuracy, f1]\n" + FashionYaml(600)));
  ASSERT_TRUE(t->train().ok());
  auto eval = t->evaluate();
  ASSERT_TRUE(eval.ok());
  EXPECT_GT(eval->at("eval_accuracy"), 0.6);  // chance is 0.1
  EXPECT_GT(eval->at("eval_f1"), 0.5);
}

TEST(Training, TrainsAUserTorchScriptModule) {
  TempDir dir;
  torch::jit::Module m("UserNet");
  torch::manual_seed(3);
  m.register_parameter("w", (torch::randn({784, 10}) * 0.01).requires_grad_(), false);
  m.register_parameter("b", torch::zeros({10}).requires_grad_(), false);
  m.define("def forward(self, x):\n    return torch.matmul(torch.flatten(x, 1), self.w) + self.b\n");
  m.save(dir / "user.pt");
  auto t = MakeTrainer(Spec(absl::StrCat("training_args: {max_steps: 40, learning_rate: 0.01, "
                                         "per_device_train_batch_size: 32}\nmodel: {type: torchscript, path: ",
                                         dir / "user.pt", "}\nmetrics: [accuracy]\n", FashionYaml(600))));
  auto trained = t->train();
  ASSERT_TRUE(trained.ok()) << trained.status();
  auto eval = t->evaluate();
  ASSERT_TRUE(eval.ok());
  EXPECT_GT(eval->at("eval_accuracy"), 0.5);
  ASSERT_TRUE(t->save_model(dir / "out").ok());
  torch::jit::Module reloaded = torch::jit::load(dir / "out/model.pt");
  EXPECT_EQ(reloaded.forward({torch::zeros({2, 1, 28, 28})}).toTensor().sizes(),
            (std::vector<int64_t>{2, 10}));
}

TEST(Training, Bf16AutocastTrains) {
  auto t = MakeTrainer(Spec("training_args: {max_steps: 20, bf16: true, learning_rate: 0.01, "
                            "per_device_train_batch_size: 32, logging_steps: 10}\n"
                            "model: {type: cnn, conv_channels: [4], hidden_sizes: [16]}\n" + FashionYaml(300)));
  auto out = t->train();
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(std::isfinite(out->training_loss));
  EXPECT_LT(t->state().log_history[1].at("loss"), 2.3);
}

TEST(Training, RegressionOnACsvTable) {
  TempDir dir;
  std::string csv = "a,b,target\n";
  torch::manual_seed(0);
  torch::Tensor x = torch::rand({300, 2});
  for (int64_t i = 0; i < 300; ++i) {
    const double a = x[i][0].item<double>(), b = x[i][1].item<double>();
    absl::StrAppend(&csv, a, ",", b, ",", 3 * a - 2 * b + 1, "\n");
  }
  testing::WriteFile(dir / "r.csv", csv);
  auto t = MakeTrainer(Spec(absl::StrCat(
      "training_args: {num_train_epochs: 30, learning_rate: 0.01, per_device_train_batch_size: 16}\n"
      "model: {type: mlp, hidden_sizes: [16]}\nmetrics: [mse, mae]\n"
      "data: {train: {path: ", dir / "r.csv", ", label_column: target}, task: regression, eval_split: 0.2}\n")));
  auto before = t->evaluate();
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_TRUE(t->train().ok());
  auto after = t->evaluate();
  ASSERT_TRUE(after.ok());
  EXPECT_LT(after->at("eval_mse"), before->at("eval_mse") * 0.05);
  EXPECT_LT(after->at("eval_mae"), 0.1);
}

TEST(Training, ClassWeightsGiveTheWeightedMeanLoss) {
  auto spec = Spec("model: {type: mlp, hidden_sizes: [8]}\n"
                   "loss: {class_weights: [1, 2, 3, 1, 1, 1, 1, 1, 1, 5]}\n" + FashionYaml(100));
  auto t = MakeTrainer(spec);
  Batch batch{t->data().normalization.Apply(t->data().train.inputs.slice(0, 0, 16)),
              t->data().train.labels.slice(0, 0, 16)};
  torch::Tensor logits;
  torch::Tensor loss = t->compute_loss(t->model(), batch, std::nullopt, &logits);
  torch::Tensor w = torch::tensor({1.f, 2.f, 3.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 5.f});
  torch::Tensor expected = torch::nn::functional::cross_entropy(
      logits, batch.labels, torch::nn::functional::CrossEntropyFuncOptions().weight(w));
  EXPECT_NEAR(loss.item<double>(), expected.item<double>(), 1e-5);
  torch::Tensor unweighted = torch::nn::functional::cross_entropy(logits, batch.labels);
  EXPECT_GT(std::abs(loss.item<double>() - unweighted.item<double>()), 1e-4);
}

TEST(Training, BadModelFileIsAStatusNotACrash) {
  TempDir dir;
  testing::WriteFile(dir / "junk.pt", "not a model");
  trainer::v1::ModelSpec spec;
  spec.set_type("torchscript");
  spec.set_path(dir / "junk.pt");
  auto model = CreateModel(spec, DatasetBundle{});
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(std::string(model.status().message()), ::testing::HasSubstr("model.path"));
}

}  // namespace
}  // namespace trainerd

namespace trainerd {
namespace {

TEST(LossScaler, SkipsOverflowingStepsBacksOffAndGrows) {
  LossScaler::Options options;
  options.init_scale = 1024;
  options.growth_interval = 3;
  LossScaler scaler(options);
  torch::Tensor w = torch::ones({2}, torch::requires_grad());
  scaler.Scale((w * 3).sum()).backward();
  EXPECT_TRUE(scaler.Unscale({w}));
  EXPECT_TRUE(torch::allclose(w.grad(), torch::full({2}, 3.0)));  // the true gradient again
  scaler.Update(false);

  w.mutable_grad().fill_(std::numeric_limits<float>::infinity());
  EXPECT_FALSE(scaler.Unscale({w}));  // overflow: the step must be skipped
  scaler.Update(true);
  EXPECT_EQ(scaler.scale(), 512);
  EXPECT_EQ(scaler.skipped_steps(), 1);
  for (int i = 0; i < 3; ++i) scaler.Update(false);
  EXPECT_EQ(scaler.scale(), 1024);  // three clean steps in a row: the scale grows back
}

TEST(LossScaler, Fp16WithoutCudaIsRefusedWithTheField) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a GPU is here: fp16 is allowed";
  auto trainer = MakeTrainer(Spec(FashionYaml(200) + "model: {type: mlp, hidden_sizes: [8]}\n" +
                                  "training_args: {max_steps: 2, fp16: true, save_strategy: 'no'}\n"));
  auto out = trainer->train();
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(std::string(out.status().message()), ::testing::HasSubstr("training_args.fp16: needs a CUDA GPU"));
}

// Runs only where LibTorch has CUDA and a GPU is visible (skipped, and so reported, elsewhere).
TEST(LossScaler, Fp16TrainsOnCudaWithFp32MasterWeights) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA GPU (fp16 autocast is CUDA-only in LibTorch)";
  auto trainer = MakeTrainer(Spec(FashionYaml(2000) + "model: {type: mlp, hidden_sizes: [64]}\n" +
                                  "training_args: {max_steps: 60, fp16: true, save_strategy: 'no', logging_steps: 10}\n"));
  auto out = trainer->train();
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_GT(out->metrics.at("train_fp16_loss_scale"), 0);
  EXPECT_LT(out->metrics.at("train_fp16_skipped_steps"), 10);
  std::vector<double> losses = testing::LoggedLosses(*trainer);
  ASSERT_GE(losses.size(), 2u);
  EXPECT_LT(losses.back(), losses.front());
  for (const torch::Tensor& p : trainer->model().Parameters()) {
    EXPECT_TRUE(p.is_cuda());
    EXPECT_EQ(p.scalar_type(), torch::kFloat);  // the optimizer updates fp32 master weights
  }
}

}  // namespace
}  // namespace trainerd
