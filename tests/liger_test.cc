// Fused (Liger) kernels: each one against the plain ops (values and gradients), the
// GPT with every kernel on against the plain GPT, the chunked loss's memory, and the
// spec's refusals.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <c10/core/CPUAllocator.h>
#include <torch/torch.h>

#include "spec/spec_defaults.h"
#include "spec/spec_loader.h"
#include "spec/spec_validator.h"
#include "tests/test_util.h"
#include "tests/trainer_test_util.h"
#include "worker/trainer/cpu_memory_tracker.h"
#include "worker/models/liger_kernels.h"
#include "worker/trainer/trainer.h"

namespace trainerd {
namespace {

namespace F = torch::nn::functional;
using ::testing::HasSubstr;
using testing::MakeTrainer;
using testing::Spec;
using testing::TempDir;

// Runs `f` on fresh leaf copies of `inputs`, back-propagates `weights`-weighted outputs
// and returns the output and the inputs' gradients.
std::vector<torch::Tensor> ValueAndGradients(const std::function<torch::Tensor(std::vector<torch::Tensor>&)>& f,
                                             const std::vector<torch::Tensor>& inputs) {
  std::vector<torch::Tensor> leaves;
  for (const torch::Tensor& t : inputs) leaves.push_back(t.clone().requires_grad_(true));
  torch::Tensor out = f(leaves);
  torch::manual_seed(5);
  torch::Tensor weights = torch::randn_like(out);
  (out * weights).sum().backward();
  std::vector<torch::Tensor> result = {out.detach()};
  for (const torch::Tensor& t : leaves) result.push_back(t.grad());
  return result;
}

void ExpectSame(const std::vector<torch::Tensor>& fused, const std::vector<torch::Tensor>& plain, double rtol = 1e-5,
                double atol = 1e-6) {
  ASSERT_EQ(fused.size(), plain.size());
  for (size_t i = 0; i < fused.size(); ++i) {
    EXPECT_TRUE(torch::allclose(fused[i], plain[i], rtol, atol))
        << (i == 0 ? "value" : "gradient " + std::to_string(i)) << ": max difference "
        << (fused[i] - plain[i]).abs().max().item<double>();
  }
}

TEST(LigerKernels, RmsNormRopeAndSwiGluMatchThePlainOps) {
  torch::manual_seed(0);
  torch::Tensor x = torch::randn({2, 3, 5, 8}), w = torch::randn({8});
  ExpectSame(ValueAndGradients([](auto& t) { return LigerRmsNorm(t[0], t[1], 1e-6); }, {x, w}),
             ValueAndGradients(
                 [](auto& t) { return t[0] * torch::rsqrt(t[0].pow(2).mean(-1, true) + 1e-6) * t[1]; }, {x, w}));

  torch::Tensor angles = torch::randn({5, 8});
  torch::Tensor cos = angles.cos(), sin = angles.sin();
  auto plain_rope = [&](auto& t) {
    torch::Tensor rotated = torch::cat({-t[0].narrow(-1, 4, 4), t[0].narrow(-1, 0, 4)}, -1);
    return t[0] * cos + rotated * sin;
  };
  ExpectSame(ValueAndGradients([&](auto& t) { return LigerRope(t[0], cos, sin); }, {x}),
             ValueAndGradients(plain_rope, {x}));

  torch::Tensor gate = torch::randn({4, 6}), up = torch::randn({4, 6});
  ExpectSame(ValueAndGradients([](auto& t) { return LigerSwiGlu(t[0], t[1]); }, {gate, up}),
             ValueAndGradients([](auto& t) { return torch::silu(t[0]) * t[1]; }, {gate, up}));
}

TEST(LigerKernels, CrossEntropyAndTheChunkedFusedLossMatchThePlainLoss) {
  torch::manual_seed(1);
  const int64_t n = 37, d = 16, v = 100;  // several chunks of rows
  torch::Tensor hidden = torch::randn({n, d}), weight = torch::randn({v, d}) * 0.3;
  torch::Tensor targets = torch::randint(v, {n});
  targets.index_put_({torch::arange(0, n, 5)}, -100);  // ignored positions
  for (double smoothing : {0.0, 0.1}) {
    auto plain_loss = [&](auto& t) {
      return F::cross_entropy(torch::matmul(t[0], t[1].t()), targets,
                              F::CrossEntropyFuncOptions().reduction(torch::kSum).ignore_index(-100).label_smoothing(
                                  smoothing));
    };
    std::vector<torch::Tensor> plain = ValueAndGradients(plain_loss, {hidden, weight});
    ExpectSame(ValueAndGradients(
                   [&](auto& t) { return LigerFusedLinearCrossEntropySum(t[0], t[1], targets, smoothing); },
                   {hidden, weight}),
               plain, 1e-4, 1e-5);
    ExpectSame(ValueAndGradients(
                   [&](auto& t) { return LigerCrossEntropySum(torch::matmul(t[0], t[1].t()), targets, smoothing); },
                   {hidden, weight}),
               plain, 1e-4, 1e-5);
  }
  // Without gradients (evaluation) the loss is the same and nothing is overwritten.
  torch::NoGradGuard no_grad;
  torch::Tensor logits = torch::matmul(hidden, weight.t());
  torch::Tensor copy = logits.clone();
  EXPECT_NEAR(LigerCrossEntropySum(logits, targets, 0).item<double>(),
              F::cross_entropy(copy, targets, F::CrossEntropyFuncOptions().reduction(torch::kSum)).item<double>(),
              1e-3);
  EXPECT_TRUE(torch::equal(logits, copy));
}

TEST(LigerKernels, TheChunkedLossNeverHoldsTheLogits) {
  CpuMemoryTracker& memory = CpuMemoryTracker::Install();
  torch::manual_seed(2);
  const int64_t n = 512, d = 64, v = 8000;
  torch::Tensor hidden = torch::randn({n, d}, torch::requires_grad());
  torch::Tensor weight = (torch::randn({v, d}) * 0.1).requires_grad_();
  torch::Tensor targets = torch::randint(v, {n});
  auto peak = [&](bool fused) {
    hidden.mutable_grad() = torch::Tensor();
    weight.mutable_grad() = torch::Tensor();
    memory.ResetPeak();
    const int64_t before = memory.current();
    torch::Tensor loss = fused ? LigerFusedLinearCrossEntropySum(hidden, weight, targets, 0)
                               : F::cross_entropy(torch::matmul(hidden, weight.t()), targets,
                                                  F::CrossEntropyFuncOptions().reduction(torch::kSum));
    loss.backward();
    return memory.peak() - before;
  };
  const int64_t plain = peak(false), fused = peak(true);
  const int64_t logits_bytes = n * v * 4;
  EXPECT_GE(plain, 2 * logits_bytes);  // logits and their log-softmax, at least
  EXPECT_LT(fused, logits_bytes / 2) << "fused " << fused << " bytes, plain " << plain;
}

std::string LmYaml(const std::string& output_dir) {
  return absl::StrCat(R"(
training_args:
  output_dir: )", output_dir, R"(
  max_steps: 5
  per_device_train_batch_size: 8
  learning_rate: 3.0e-3
  logging_steps: 1
  save_strategy: 'no'
  torch_num_threads: 2
  label_smoothing_factor: 0.05
model: {type: gpt, hidden_size: 64, num_layers: 2, num_heads: 4}
data:
  train: {path: /usr/share/games/fortunes/cookie, format: text, limit: 300}
  max_seq_length: 32
  tokenizer: {vocab_size: 500}
)");
}

TEST(LigerKernels, GptTrainsTheSameWithEveryKernelOn) {
  TempDir dir;
  auto losses = [&](const std::vector<std::string>& sets) {
    auto trainer = MakeTrainer(Spec(LmYaml(dir / "out"), sets));
    EXPECT_TRUE(trainer->train().ok());
    // With kernels on, the model makes its loss itself (the fused loss path).
    torch::Tensor ids = trainer->data().train.inputs.slice(0, 0, 2);
    EXPECT_EQ(trainer->model().CausalLmLossSum(ids, ids, 0).defined(), !sets.empty());
    return testing::LoggedLosses(*trainer);
  };
  const std::vector<double> plain = losses({});
  ASSERT_EQ(plain.size(), 5u);
  for (const auto& kernels : std::vector<std::vector<std::string>>{
           {"training_args.use_liger_kernel=true"},  // rope, swiglu, rms_norm, fused linear + loss
           {"training_args.use_liger_kernel=true", "training_args.liger_kernel_config.cross_entropy=true"}}) {
    const std::vector<double> fused = losses(kernels);
    ASSERT_EQ(fused.size(), plain.size());
    for (size_t i = 0; i < plain.size(); ++i) EXPECT_NEAR(fused[i], plain[i], 1e-4) << kernels.back() << " step " << i;
  }
}

TEST(LigerKernels, SpecRefusalsNameTheField) {
  auto problems = [](const std::string& yaml, const std::vector<std::string>& sets) {
    auto spec = ParseJobSpec(yaml, sets);
    EXPECT_TRUE(spec.ok()) << spec.status();
    ApplyDefaults(&*spec);
    return std::string(ValidateJobSpec(*spec).message());
  };
  EXPECT_THAT(problems(LmYaml("/tmp/x"), {"training_args.use_liger_kernel=true",
                                          "training_args.liger_kernel_config.cross_entropy=true",
                                          "training_args.liger_kernel_config.fused_linear_cross_entropy=true"}),
              HasSubstr("training_args.liger_kernel_config: cross_entropy and fused_linear_cross_entropy"));
  EXPECT_THAT(problems(LmYaml("/tmp/x"), {"training_args.use_liger_kernel=true", "model.type=mlp"}),
              HasSubstr("training_args.use_liger_kernel: needs a text model"));
}

// The tracker counts LibTorch's CPU memory without breaking kernels that allocate
// through raw_allocate (NNPACK's convolutions: a CNN trained after the tracker was
// installed hit "dptr.get() == dptr.get_context()" before).
TEST(CpuMemoryTracker, ServesRawAllocationsAndConvolutions) {
  CpuMemoryTracker& tracker = CpuMemoryTracker::Install();
  const int64_t before = tracker.current();
  void* raw = c10::GetCPUAllocator()->raw_allocate(1000);
  ASSERT_NE(raw, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(raw) % 64, 0u);
  EXPECT_EQ(tracker.current(), before + 1000);
  c10::GetCPUAllocator()->raw_deallocate(raw);
  EXPECT_EQ(tracker.current(), before);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(1, 8, 3));
  torch::Tensor y = conv->forward(torch::randn({16, 1, 28, 28}));
  y.sum().backward();
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{16, 8, 26, 26}));
}

}  // namespace
}  // namespace trainerd
