// Text-model optimizations, measured side by side in one run:
//
//  1. gradient_checkpointing on a GPT (hidden 256, 4 layers, 128 tokens, batch 16): the
//     memory the forward pass keeps for backward and the peak of forward + backward
//     (LibTorch's CPU bytes, CpuMemoryTracker), and their time, median of alternating
//     rounds.
//  2. torch_compile on the CNN and a GPT: training samples/s off and on.
//  3. neftune_noise_alpha: a small GPT trained on the fortunes with alpha 0 and 5, same
//     seed and steps; the eval perplexity of each.
//
//   text_bench [--rounds R]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "bench/bench_util.h"
#include "worker/models/model_factory.h"
#include "worker/data/dataset_factory.h"
#include "worker/trainer/cpu_memory_tracker.h"
#include "worker/data/dataset_reader.h"
#include "worker/models/model.h"
#include "worker/trainer/trainer.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using bench::Median;
using bench::Spec;
using Clock = std::chrono::steady_clock;

std::string Yaml(const std::string& output_dir, int64_t hidden, int64_t layers, int64_t length, int64_t steps) {
  return absl::StrCat("training_args: {output_dir: ", output_dir, ", max_steps: ", steps,
                      ", per_device_train_batch_size: 16, learning_rate: 0.003, lr_scheduler_type: cosine,"
                      " warmup_steps: 10, logging_steps: 100000, save_strategy: 'no', log_level: warning}\n",
                      "model: {type: gpt, hidden_size: ", hidden, ", num_layers: ", layers, ", num_heads: 4}\n",
                      "data: {train: {path: /usr/share/games/fortunes/cookie, format: text}, eval_split: 0.1,",
                      " max_seq_length: ", length, ", tokenizer: {vocab_size: 1000}}\n",
                      "metrics: [perplexity]\n");
}

void Checkpointing(int rounds, const fs::path& dir) {
  trainer::v1::JobSpec spec = Spec(Yaml((dir / "ckpt").string(), 256, 4, 128, 1));
  auto data = LoadDatasets(spec.data(), 42);
  auto model = CreateModel(spec.model(), *data);
  if (!data.ok() || !model.ok()) {
    std::fprintf(stderr, "setup failed\n");
    std::exit(1);
  }
  Model& m = **model;
  m.SetTraining(true);
  torch::Tensor ids = data->train.inputs.slice(0, 0, 16);
  CpuMemoryTracker& memory = CpuMemoryTracker::Install();
  std::vector<double> kept[2], peak[2], seconds[2];
  for (int round = 0; round < rounds; ++round) {
    for (int on = 0; on < 2; ++on) {
      m.SetGradientCheckpointing(on == 1);
      for (torch::Tensor& p : m.Parameters()) p.mutable_grad() = torch::Tensor();
      memory.ResetPeak();
      const int64_t before = memory.current();
      const auto start = Clock::now();
      torch::Tensor loss = m.Forward(ids).logsumexp(-1).mean();
      const int64_t after_forward = memory.current();
      loss.backward();
      seconds[on].push_back(std::chrono::duration<double>(Clock::now() - start).count());
      kept[on].push_back(static_cast<double>(after_forward - before));
      peak[on].push_back(static_cast<double>(memory.peak() - before));
    }
  }
  const double mb = 1024.0 * 1024.0;
  std::printf("gradient_checkpointing (GPT 256 x 4 layers, batch 16 x 128 tokens, median of %d):\n", rounds);
  std::printf("  kept for backward: off %.1f MB, on %.1f MB (%.0f%% less)\n", Median(kept[0]) / mb,
              Median(kept[1]) / mb, 100.0 * (1 - Median(kept[1]) / Median(kept[0])));
  std::printf("  peak of forward + backward: off %.1f MB, on %.1f MB (%.0f%% less)\n", Median(peak[0]) / mb,
              Median(peak[1]) / mb, 100.0 * (1 - Median(peak[1]) / Median(peak[0])));
  std::printf("  forward + backward: off %.0f ms, on %.0f ms (x%.2f time)\n", 1000 * Median(seconds[0]),
              1000 * Median(seconds[1]), Median(seconds[1]) / Median(seconds[0]));
}

[[noreturn]] void Fail(const std::string& what, const absl::Status& status) {
  std::fprintf(stderr, "%s failed: %s\n", what.c_str(), status.ToString().c_str());
  std::exit(1);
}

// Training steps per second with torch_compile off and on, alternating rounds.
void Compile(int rounds, const fs::path& dir) {
  const std::string d = "/usr/share/datasets/fashion-mnist";
  const std::vector<std::pair<std::string, std::string>> models = {
      {"CNN [32, 64] + [128] on Fashion-MNIST",
       absl::StrCat("training_args: {output_dir: ", (dir / "compile").string(),
                    ", max_steps: 60, per_device_train_batch_size: 64, logging_steps: 100000, save_strategy: 'no',"
                    " log_level: warning}\nmodel: {type: cnn, conv_channels: [32, 64], hidden_sizes: [128]}\n",
                    "data: {train: {path: ", d, "/train-images-idx3-ubyte.gz, labels_path: ", d,
                    "/train-labels-idx1-ubyte.gz, limit: 4000}, mean: 0.286, std: 0.353}\n")},
      {"GPT 128 x 2 layers, 16 x 64 tokens", Yaml((dir / "compile").string(), 128, 2, 64, 30)}};
  std::printf("torch_compile (TorchScript graph executor), training samples/s, median of %d:\n", rounds);
  for (const auto& [name, yaml] : models) {
    std::vector<double> rate[2];
    for (int round = 0; round < rounds; ++round) {
      for (int on = 0; on < 2; ++on) {
        trainer::v1::JobSpec spec = Spec(yaml);
        spec.mutable_training_args()->set_torch_compile(on == 1);
        spec.mutable_training_args()->set_overwrite_output_dir(true);
        torch::manual_seed(42);
        auto data = LoadDatasets(spec.data(), 42);
        auto model = CreateModel(spec.model(), *data);
        Trainer trainer(spec, std::move(*model), std::move(*data));
        auto out = trainer.train();
        if (!out.ok()) Fail(name, out.status());
        rate[on].push_back(out->metrics.at("train_samples_per_second"));
      }
    }
    std::printf("  %s: off %.0f, on %.0f (x%.2f)\n", name.c_str(), Median(rate[0]), Median(rate[1]),
                Median(rate[1]) / Median(rate[0]));
  }
}

void Neftune(const fs::path& dir) {
  std::printf("neftune_noise_alpha (GPT 64 x 2 layers on fortunes/cookie, 400 steps, same seed):\n");
  for (double alpha : {0.0, 5.0}) {
    trainer::v1::JobSpec spec = Spec(Yaml((dir / absl::StrCat("neftune", alpha)).string(), 64, 2, 32, 400));
    spec.mutable_training_args()->set_neftune_noise_alpha(alpha);
    torch::manual_seed(42);
    auto data = LoadDatasets(spec.data(), 42);
    auto model = CreateModel(spec.model(), *data);
    Trainer trainer(spec, std::move(*model), std::move(*data));
    if (auto out = trainer.train(); !out.ok()) Fail("neftune", out.status());
    auto eval = trainer.evaluate();
    if (!eval.ok()) Fail("neftune evaluation", eval.status());
    std::printf("  alpha %.0f: eval perplexity %.1f\n", alpha, eval->at("eval_perplexity"));
  }
}

}  // namespace
}  // namespace trainerd

int main(int argc, char** argv) {
  const int rounds = trainerd::bench::Flags(argc, argv, "text_bench [--rounds R]", {{"--rounds", 5}}).Int("--rounds");
  torch::set_num_threads(2);
  const auto dir = std::filesystem::temp_directory_path() / absl::StrCat("text-bench-", getpid());
  trainerd::Checkpointing(rounds, dir);
  trainerd::Compile(rounds, dir);
  trainerd::Neftune(dir);
  std::filesystem::remove_all(dir);
  return 0;
}
