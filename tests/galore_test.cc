// GaLore: the SVD projector, equivalence with the inner optimizer at full rank, the
// state it saves at low rank, the layer-wise variant, resume, and the spec's refusals.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "spec/spec_defaults.h"
#include "spec/spec_loader.h"
#include "spec/spec_validator.h"
#include "tests/test_util.h"
#include "tests/trainer_test_util.h"
#include "worker/optim/adafactor.h"
#include "worker/optim/galore.h"
#include "worker/optim/optimizer_factory.h"
#include "worker/trainer/trainer.h"

namespace trainerd {
namespace {

using ::testing::HasSubstr;
using testing::Args;
using testing::LoggedLosses;
using testing::MakeTrainer;
using testing::Spec;
using testing::TempDir;

TEST(GaLoreProjector, KeepsTheBestRankRApproximationAndIsLosslessAtFullRank) {
  torch::manual_seed(0);
  for (auto shape : {std::vector<int64_t>{12, 5}, std::vector<int64_t>{5, 12}}) {
    torch::Tensor g = torch::randn(shape);
    const bool right = shape[0] >= shape[1];
    auto [u, s, vh] = torch::linalg::svd(g, false, c10::nullopt);
    const int64_t r = 2;
    torch::Tensor best = torch::matmul(u.narrow(1, 0, r) * s.narrow(0, 0, r), vh.narrow(0, 0, r));
    torch::Tensor basis = GaLoreBasis(g, r);
    torch::Tensor low = GaLoreProject(g, basis);
    EXPECT_EQ(low.numel(), r * std::max(shape[0], shape[1]));
    EXPECT_TRUE(torch::allclose(GaLoreProjectBack(low, basis, right), best, 1e-4, 1e-5));
    torch::Tensor full = GaLoreBasis(g, 5);
    EXPECT_TRUE(torch::allclose(GaLoreProjectBack(GaLoreProject(g, full), full, right), g, 1e-4, 1e-5));
  }
}

// Steps a 6x4 weight and a bias with `optimizer` on a fixed quadratic; returns the weights.
torch::Tensor Train(torch::optim::Optimizer& optimizer, torch::Tensor w, torch::Tensor b) {
  torch::manual_seed(1);
  torch::Tensor x = torch::randn({16, 4}), y = torch::randn({16, 6});
  for (int i = 0; i < 8; ++i) {
    optimizer.zero_grad();
    (torch::matmul(x, w.t()) + b - y).square().mean().backward();
    optimizer.step();
  }
  return torch::cat({w.detach().flatten(), b.detach()});
}

TEST(GaLore, AtFullRankIsItsInnerOptimizer) {
  auto params = [] {
    torch::manual_seed(3);
    return NamedTensors{{"layer.weight", torch::randn({6, 4}, torch::requires_grad())},
                        {"layer.bias", torch::randn({6}, torch::requires_grad())}};
  };
  const std::string common = "learning_rate: 0.05, weight_decay: 0.1, optim_target_modules: [layer]";
  for (const auto& [galore, plain] : std::vector<std::pair<std::string, std::string>>{
           {"galore_adamw", "adamw_torch"}, {"galore_adafactor", "adafactor"}}) {
    NamedTensors a = params(), b = params();
    // rank 4 = the full width of the 6x4 weight; scale 1 so nothing is rescaled.
    auto g = CreateOptimizer(
        Args("training_args: {optim: " + galore + ", optim_args: 'rank=4, scale=1', " + common + "}"), a);
    auto p = CreateOptimizer(Args("training_args: {optim: " + plain + ", " + common + "}"), b);
    ASSERT_TRUE(g.ok() && p.ok()) << g.status() << p.status();
    torch::Tensor wg = Train(**g, a[0].second, a[1].second), wp = Train(**p, b[0].second, b[1].second);
    EXPECT_TRUE(torch::allclose(wg, wp, 1e-5, 1e-6)) << galore << "\n" << wg << "\n" << wp;
  }
}

TEST(GaLore, LowRankStateIsSmallAndUpdatesStayInTheSubspace) {
  torch::manual_seed(0);
  torch::Tensor w = torch::randn({32, 16}, torch::requires_grad());
  NamedTensors params = {{"proj.weight", w}};
  auto created = CreateOptimizer(
      Args("training_args: {optim: galore_adamw, optim_args: 'rank=2, update_proj_gap=50', "
           "optim_target_modules: ['pro.*'], weight_decay: 0, learning_rate: 0.01}"),
      params);
  ASSERT_TRUE(created.ok()) << created.status();
  auto& galore = dynamic_cast<GaLore&>(**created);
  torch::Tensor before = w.detach().clone();
  torch::Tensor x = torch::randn({64, 16}), y = torch::randn({64, 32});
  for (int i = 0; i < 5; ++i) {
    galore.zero_grad();
    (torch::matmul(x, w.t()) - y).square().mean().backward();
    galore.step();
  }
  // Two fp32 moments of 32x2 and a 2x16 basis, against AdamW's two 32x16 moments.
  EXPECT_EQ(galore.ProjectedStateBytes(), (2 * 32 * 2 + 2 * 16) * 4);
  EXPECT_EQ(galore.ProjectedAdamWBytes(), 2 * 32 * 16 * 4);
  // Within one projection period every update lies in a rank-2 row space.
  torch::Tensor s = torch::linalg::svdvals(w.detach() - before, c10::nullopt);
  EXPECT_GT(s[1].item<double>(), 1e-6);
  EXPECT_LT(s[2].item<double>(), 1e-4 * s[0].item<double>());
}

std::string GptYaml(const std::string& output_dir, const std::string& optim, int64_t steps) {
  return absl::StrCat(R"(
training_args:
  output_dir: )", output_dir, R"(
  max_steps: )", steps, R"(
  per_device_train_batch_size: 8
  learning_rate: 1.0e-2
  lr_scheduler_type: constant
  logging_steps: 1
  save_strategy: 'no'
  torch_num_threads: 2
  max_grad_norm: 0
  optim: )", optim, R"(
  optim_args: 'rank=8, update_proj_gap=4, scale=0.5'
  optim_target_modules: [qkv, out, gate, up, down]
model: {type: gpt, hidden_size: 64, num_layers: 2, num_heads: 4}
data:
  train: {path: /usr/share/games/fortunes/cookie, format: text, limit: 400}
  max_seq_length: 32
  tokenizer: {vocab_size: 500}
)");
}

TEST(GaLore, TrainsAGptWithLessStateAndTheLayerwiseVariantMatches) {
  TempDir dir;
  auto plain = MakeTrainer(Spec(GptYaml(dir / "plain", "galore_adamw", 16)));
  auto result = plain->train();
  ASSERT_TRUE(result.ok()) << result.status();
  std::vector<double> losses = LoggedLosses(*plain);
  ASSERT_EQ(losses.size(), 16u);
  EXPECT_LT(losses.back(), losses.front() - 0.5);
  const double state = result->metrics.at("train_galore_state_mb");
  const double adamw = result->metrics.at("train_galore_adamw_state_mb");
  EXPECT_LT(state, 0.4 * adamw) << state << " vs " << adamw;

  // Stepping each weight during backward changes nothing but when it happens.
  auto layerwise = MakeTrainer(Spec(GptYaml(dir / "layerwise", "galore_adamw_layerwise", 16)));
  ASSERT_TRUE(layerwise->train().ok());
  std::vector<double> layerwise_losses = LoggedLosses(*layerwise);
  ASSERT_EQ(layerwise_losses.size(), losses.size());
  for (size_t i = 0; i < losses.size(); ++i) EXPECT_NEAR(layerwise_losses[i], losses[i], 1e-4) << "step " << i + 1;
  // Its gradients are freed as soon as they are spent.
  for (const torch::Tensor& p : layerwise->model().Parameters()) EXPECT_FALSE(p.grad().defined());
}

class GaLoreResume : public ::testing::TestWithParam<const char*> {};

TEST_P(GaLoreResume, IsExactWithTheProjectionsSaved) {
  TempDir dir;
  auto spec = Spec(GptYaml(dir / "full", GetParam(), 6));
  auto full = MakeTrainer(spec);
  ASSERT_TRUE(full->train().ok());

  spec.mutable_training_args()->set_output_dir(dir / "resumed");
  spec.mutable_training_args()->set_save_strategy("steps");
  spec.mutable_training_args()->set_save_steps(3);
  auto* stop = spec.add_callbacks();  // a job stopped at step 3 ...
  stop->set_name("stop_after_steps");
  stop->set_steps(3);
  ASSERT_TRUE(MakeTrainer(spec)->train().ok());
  spec.clear_callbacks();
  spec.mutable_training_args()->set_resume_from_checkpoint("true");  // ... and resumed
  auto resumed = MakeTrainer(spec);
  ASSERT_TRUE(resumed->train().ok());
  std::vector<double> a = LoggedLosses(*full), b = LoggedLosses(*resumed);
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);  // the first 3 come from the checkpoint's log history
  for (size_t i = 3; i < 6; ++i) EXPECT_NEAR(b[i], a[i], 1e-5) << "step " << i + 1;
}

INSTANTIATE_TEST_SUITE_P(Optimizers, GaLoreResume, ::testing::Values("galore_adafactor", "galore_adamw_layerwise"));

TEST(GaLore, RefusesWhatItCannotDoNamingTheField) {
  auto problems = [](const std::vector<std::string>& sets) {
    auto spec = ParseJobSpec(GptYaml("/tmp/x", "galore_adamw_layerwise", 1), sets);
    EXPECT_TRUE(spec.ok()) << spec.status();
    ApplyDefaults(&*spec);
    return std::string(ValidateJobSpec(*spec).message());
  };
  EXPECT_THAT(problems({"training_args.gradient_accumulation_steps=2"}),
              HasSubstr("training_args.gradient_accumulation_steps: galore_adamw_layerwise"));
  EXPECT_THAT(problems({"training_args.optim_args=rank=0.5"}), HasSubstr("rank must be an integer >= 1"));
  EXPECT_THAT(problems({"training_args.optim_args=rank=8, beta=2"}), HasSubstr("\"beta\" is not an argument"));

  auto args = Args("training_args: {optim: galore_adamw}");
  auto spec = ParseJobSpec(GptYaml("/tmp/x", "galore_adamw", 1));
  spec->mutable_training_args()->clear_optim_target_modules();
  spec->mutable_training_args()->add_optim_target_modules("(");
  ApplyDefaults(&*spec);
  EXPECT_THAT(std::string(ValidateJobSpec(*spec).message()),
              HasSubstr("training_args.optim_target_modules[0]: not a regular expression"));
  spec->mutable_training_args()->clear_optim_target_modules();
  EXPECT_THAT(std::string(ValidateJobSpec(*spec).message()),
              HasSubstr("training_args.optim_target_modules: galore_adamw needs the weights to project"));

  args.add_optim_target_modules("attention");
  NamedTensors params = {{"layer.weight", torch::zeros({4, 4}, torch::requires_grad())}};
  EXPECT_THAT(std::string(CreateOptimizer(args, params).status().message()),
              HasSubstr("training_args.optim_target_modules: matched none of the model's 2-D weights"));
}

}  // namespace
}  // namespace trainerd
