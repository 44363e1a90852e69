// The memory and speed options on Hugging Face folders (tests/fixtures/hf):
// gradient_checkpointing on every architecture, and the fused (Liger) kernels on the
// Llama family. Each must compute what the plain model computes, and must really be in
// the autograd graph (its nodes are looked for), so that neither can pass by doing
// nothing.
#include <deque>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "tests/hf_test_util.h"
#include "tests/test_util.h"
#include "tests/trainer_test_util.h"
#include "worker/models/liger_kernels.h"

namespace trainerd {
namespace {

using ::testing::HasSubstr;
using testing::FineTuneYaml;
using testing::Fixture;
using testing::Load;
using testing::WriteTokenRows;

// How many nodes of the autograd graph behind `t` have a name containing `name` (a
// custom function's node is named after its class).
int CountNodes(const torch::Tensor& t, const std::string& name) {
  std::deque<torch::autograd::Node*> todo = {t.grad_fn().get()};
  std::set<torch::autograd::Node*> seen;
  int count = 0;
  while (!todo.empty()) {
    torch::autograd::Node* node = todo.front();
    todo.pop_front();
    if (node == nullptr || !seen.insert(node).second) continue;
    if (node->name().find(name) != std::string::npos) ++count;
    for (const auto& edge : node->next_edges()) todo.push_back(edge.function.get());
  }
  return count;
}

// Token ids [2, 12] in [3, vocab) (no padding, so every architecture reads them the same).
torch::Tensor Ids(int64_t vocab) {
  torch::manual_seed(3);
  return torch::randint(3, vocab, {2, 12}, torch::kLong);
}

struct Gradients {
  double loss;
  std::vector<torch::Tensor> grads;
  int checkpoints;  // CheckpointFunction nodes in the graph
};

// The gradients of a scalar of the training-mode output (dropout on), with the RNG
// seeded so that both runs draw the same masks.
Gradients Backward(Model& model, const torch::Tensor& ids) {
  for (torch::Tensor& p : model.Parameters()) p.mutable_grad() = torch::Tensor();
  torch::manual_seed(7);
  torch::Tensor loss = model.Forward(ids).pow(2).mean();
  Gradients out{loss.item<double>(), {}, CountNodes(loss, "CheckpointFunction")};
  loss.backward();
  for (const torch::Tensor& p : model.Parameters()) out.grads.push_back(p.grad().clone());
  return out;
}

TEST(HfGradientCheckpointing, RecomputingGivesTheSameGradientsForEveryArchitecture) {
  // Layers per fixture: each layer is one checkpoint. gpt2 and bert-seqcls have dropout
  // in their configs: the replay must draw the masks the first run drew.
  for (const std::string name : {"llama-gqa", "qwen2", "llama-seqcls", "gpt2", "bert-seqcls"}) {
    std::unique_ptr<Model> model = Load(Fixture(name));
    ASSERT_NE(model, nullptr) << name;
    absl::StatusOr<HfConfig> config = ReadHfConfig(Fixture(name));
    ASSERT_TRUE(config.ok());
    model->SetTraining(true);
    const torch::Tensor ids = Ids(config->vocab_size);
    ASSERT_TRUE(model->SetGradientCheckpointing(false));
    const Gradients plain = Backward(*model, ids);
    ASSERT_TRUE(model->SetGradientCheckpointing(true));
    const Gradients checkpointed = Backward(*model, ids);
    EXPECT_EQ(plain.checkpoints, 0) << name;
    EXPECT_EQ(checkpointed.checkpoints, config->num_hidden_layers) << name;
    EXPECT_DOUBLE_EQ(plain.loss, checkpointed.loss) << name;
    ASSERT_EQ(plain.grads.size(), checkpointed.grads.size());
    for (size_t i = 0; i < plain.grads.size(); ++i) {
      EXPECT_TRUE(torch::allclose(plain.grads[i], checkpointed.grads[i], 1e-5, 1e-7)) << name << " parameter " << i;
    }
    // Evaluation records no graph: nothing is checkpointed there.
    model->SetTraining(false);
    torch::Tensor eval = model->Forward(ids).sum();
    EXPECT_EQ(CountNodes(eval, "CheckpointFunction"), 0) << name;
  }
}

// The losses FineTuneYaml's run logs with `extra` training_args, saving nothing.
std::vector<double> FineTuneLosses(const std::string& out, const std::string& data, const std::string& extra) {
  auto trainer = testing::MakeTrainer(testing::Spec(FineTuneYaml(out, data, extra + ", save_strategy: 'no'")));
  EXPECT_TRUE(trainer->train().ok()) << extra;
  return testing::LoggedLosses(*trainer);
}

// gradient_checkpointing through the spec and the Trainer: the same losses, step by
// step, as without it (llama-gqa has no dropout, so they agree to rounding).
TEST(HfGradientCheckpointing, FineTuningLogsTheSameLosses) {
  testing::TempDir dir;
  WriteTokenRows(dir / "train.jsonl", 60, 7);
  auto losses = [&](const std::string& extra) { return FineTuneLosses(dir / "out", dir / "train.jsonl", extra); };
  const std::vector<double> plain = losses(""), checkpointed = losses(", gradient_checkpointing: true");
  ASSERT_EQ(plain.size(), 6u);
  ASSERT_EQ(checkpointed.size(), plain.size());
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_NEAR(checkpointed[i], plain[i], 1e-5) << "log " << i;
}

// Liger's defaults: rope, swiglu, rms_norm and the fused linear + loss.
constexpr LigerKernels kAllKernels{true, true, true, false, true};

// The fused kernels compute the plain ops' values: the same logits bit for bit (the
// same arithmetic in the same order, also in bfloat16), and the fused loss the plain
// loss; each kernel is in the graph.
TEST(HfLigerKernels, TheLlamaFamilyComputesTheSameWithTheKernels) {
  for (const std::string& name : {"llama-gqa", "llama-tied", "qwen2", "mistral", "llama-gqa-bf16"}) {
    std::unique_ptr<Model> model = Load(Fixture(name), name == "llama-gqa-bf16" ? "bfloat16" : "");
    ASSERT_NE(model, nullptr) << name;
    absl::StatusOr<HfConfig> config = ReadHfConfig(Fixture(name));
    ASSERT_TRUE(config.ok());
    const torch::Tensor ids = Ids(config->vocab_size);
    model->SetTraining(false);
    torch::NoGradGuard no_grad;
    const torch::Tensor plain = model->Forward(ids);
    EXPECT_FALSE(model->CausalLmLossSum(ids, ids, 0).defined()) << "no fused loss without the kernels";
    ASSERT_TRUE(model->SetLigerKernels(kAllKernels));
    EXPECT_TRUE(torch::equal(model->Forward(ids), plain)) << name;
    const torch::Tensor fused = model->CausalLmLossSum(ids, ids, 0);
    ASSERT_TRUE(fused.defined()) << name;
    const torch::Tensor reference = torch::nn::functional::cross_entropy(
        plain.narrow(1, 0, 11).reshape({-1, plain.size(-1)}), ids.narrow(1, 1, 11).reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    EXPECT_NEAR(fused.item<double>(), reference.item<double>(), 1e-4 * reference.item<double>()) << name;
  }
  // In training, the graph is made of the kernels: one RMSNorm per norm (2 per layer and
  // the final one), rotary embeddings on q and k, one SwiGLU per layer, one fused loss.
  std::unique_ptr<Model> model = Load(Fixture("llama-gqa"));
  ASSERT_NE(model, nullptr);
  ASSERT_TRUE(model->SetLigerKernels(kAllKernels));
  model->SetTraining(true);
  const torch::Tensor ids = Ids(256);
  torch::Tensor loss = model->CausalLmLossSum(ids, ids, 0);
  absl::StatusOr<HfConfig> config = ReadHfConfig(Fixture("llama-gqa"));
  ASSERT_TRUE(config.ok());
  const int layers = static_cast<int>(config->num_hidden_layers);
  EXPECT_EQ(CountNodes(loss, "RmsNormFunction"), 2 * layers + 1);
  EXPECT_EQ(CountNodes(loss, "RopeFunction"), 2 * layers);
  EXPECT_EQ(CountNodes(loss, "SwiGluFunction"), layers);
  EXPECT_EQ(CountNodes(loss, "FusedLinearCrossEntropyFunction"), 1);
}

// use_liger_kernel through the spec and the Trainer: the same losses as without, for a
// causal LM (fused loss) and the sequence classifier (kernels in the blocks only); an
// architecture without kernels is refused, naming the field.
TEST(HfLigerKernels, FineTuningLogsTheSameLossesAndOtherArchitecturesAreRefused) {
  testing::TempDir dir;
  WriteTokenRows(dir / "train.jsonl", 60, 7);
  auto losses = [&](const std::string& extra) { return FineTuneLosses(dir / "out", dir / "train.jsonl", extra); };
  const std::vector<double> plain = losses("");
  ASSERT_EQ(plain.size(), 6u);
  for (const std::string& extra : {std::string(", use_liger_kernel: true"),
                                   std::string(", use_liger_kernel: true, liger_kernel_config: {cross_entropy: true, "
                                               "fused_linear_cross_entropy: false}"),
                                   std::string(", use_liger_kernel: true, gradient_checkpointing: true")}) {
    const std::vector<double> fused = losses(extra);
    ASSERT_EQ(fused.size(), plain.size()) << extra;
    for (size_t i = 0; i < plain.size(); ++i) EXPECT_NEAR(fused[i], plain[i], 1e-4) << extra << " log " << i;
  }

  // GPT-2 has none: refused when the spec is checked (at submission), naming the field,
  // and again by the Trainer should a spec reach it unchecked.
  std::string yaml = FineTuneYaml(dir / "gpt2", dir / "train.jsonl", ", use_liger_kernel: true, save_strategy: 'no'");
  yaml.replace(yaml.find("llama-gqa"), std::string("llama-gqa").size(), "gpt2");
  trainer::v1::JobSpec spec = *ParseJobSpec(yaml);
  ApplyDefaults(&spec);
  EXPECT_THAT(std::string(ValidateJobSpec(spec).message()),
              HasSubstr("training_args.use_liger_kernel: GPT2LMHeadModel has no fused kernels here"));
  absl::StatusOr<DataAndModel> loaded = LoadDataAndModel(spec);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  Trainer gpt2(spec, std::move(loaded->model), std::move(loaded->data));
  const absl::Status refused = gpt2.train().status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("training_args.use_liger_kernel: this model has no fused kernels"));
}

}  // namespace
}  // namespace trainerd
