// GaLore against AdamW on a GPT trained on the fortunes, side by side in one run: the
// optimizer state (all of it, and the targeted weights' against what AdamW would keep
// for them), the peak LibTorch CPU memory while training, the speed and the eval
// perplexity, for adamw_torch, galore_adamw, galore_adafactor and
// galore_adamw_layerwise (no clipping there, so all four run without it).
//
//   galore_bench [--steps N] [--rank R]
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/bench_util.h"
#include "worker/models/model_factory.h"
#include "worker/data/dataset_factory.h"
#include "worker/trainer/cpu_memory_tracker.h"
#include "worker/data/dataset_reader.h"
#include "worker/models/model.h"
#include "worker/trainer/trainer.h"

namespace trainerd {
namespace {

void Compare(int steps, int rank, const std::filesystem::path& dir) {
  std::printf("GPT hidden 256 x 2 layers, vocab 2000, 16 x 64 tokens, %d steps; GaLore rank %d on qkv, out, gate, "
              "up, down:\n",
              steps, rank);
  std::printf("  %-24s %12s %22s %12s %10s %9s\n", "optim", "state MB", "targeted MB (AdamW)", "peak MB",
              "samples/s", "eval ppl");
  CpuMemoryTracker& memory = CpuMemoryTracker::Install();
  for (const char* optim : {"adamw_torch", "galore_adamw", "galore_adafactor", "galore_adamw_layerwise"}) {
    auto spec = bench::Spec(absl::StrCat(
        "training_args: {output_dir: ", (dir / optim).string(), ", max_steps: ", steps,
        ", per_device_train_batch_size: 16, learning_rate: 0.003, lr_scheduler_type: cosine, warmup_steps: 10,"
        " max_grad_norm: 0, logging_steps: 100000, save_strategy: 'no', log_level: warning, optim: ", optim,
        ", optim_args: 'rank=", rank, ", update_proj_gap=50, scale=0.25', optim_target_modules: [qkv, out, gate, up, "
        "down]}\n",
        "model: {type: gpt, hidden_size: 256, num_layers: 2, num_heads: 4}\n",
        "data: {train: {path: /usr/share/games/fortunes/cookie, format: text}, eval_split: 0.1, max_seq_length: 64,"
        " tokenizer: {vocab_size: 2000}}\nmetrics: [perplexity]\n"));
    if (std::string(optim) == "adamw_torch") spec.mutable_training_args()->clear_optim_args();
    torch::manual_seed(42);
    auto data = LoadDatasets(spec.data(), 42);
    auto model = CreateModel(spec.model(), *data);
    if (!data.ok() || !model.ok()) std::exit(1);
    Trainer trainer(spec, std::move(*model), std::move(*data));
    memory.ResetPeak();
    const int64_t before = memory.current();
    auto out = trainer.train();
    const double peak_mb = static_cast<double>(memory.peak() - before) / (1024.0 * 1024.0);
    auto eval = trainer.evaluate();
    if (!out.ok() || !eval.ok()) {
      std::fprintf(stderr, "%s failed\n", optim);
      std::exit(1);
    }
    const auto& m = out->metrics;
    const std::string targeted =
        m.count("train_galore_state_mb")
            ? absl::StrFormat("%.2f (%.2f) %+.0f%%", m.at("train_galore_state_mb"), m.at("train_galore_adamw_state_mb"),
                              100.0 * (m.at("train_galore_state_mb") / m.at("train_galore_adamw_state_mb") - 1))
            : "";
    std::printf("  %-24s %12.2f %22s %12.1f %10.0f %9.1f\n", optim, m.at("train_optimizer_state_mb"),
                targeted.c_str(), peak_mb, m.at("train_samples_per_second"), eval->at("eval_perplexity"));
  }
}

}  // namespace
}  // namespace trainerd

int main(int argc, char** argv) {
  const trainerd::bench::Flags flags(argc, argv, "galore_bench [--steps N] [--rank R]",
                                     {{"--steps", 150}, {"--rank", 64}});
  const int steps = flags.Int("--steps"), rank = flags.Int("--rank");
  torch::set_num_threads(2);
  spdlog::set_level(spdlog::level::warn);
  const auto dir = std::filesystem::temp_directory_path() / absl::StrCat("galore-bench-", getpid());
  trainerd::Compare(steps, rank, dir);
  std::filesystem::remove_all(dir);
  return 0;
}
