// Full fine-tuning against LoRA, side by side in one run on the same Llama folder and the
// same data (Debian's fortunes through the folder's 512-piece tokenizer):
//
//  1. Training: full fine-tuning, LoRA r 8 on the attention projections (q, k, v, o) and
//     LoRA r 8 on all-linear: the median step time of alternating rounds, the peak
//     LibTorch CPU memory while training (CpuMemoryTracker), the trained parameters and
//     the bytes of trainable state (weights, gradients and AdamW's two moments of the
//     trained tensors).
//  2. Admission: the largest Llama (32 layers, vocabulary 32000, bfloat16, batch 1 x 512)
//     that trainerd's memory estimate accepts under one --max-job-memory, fine-tuned in
//     full and with LoRA r 8 on q/v: the estimate that trainerd --max-job-memory checks.
//
// The folder is written by this program (random weights, transformers' names), so
// nothing is downloaded.
//
//   lora_bench [--rounds R] [--steps S] [--hidden H]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "bench/bench_flags.h"
#include "bench/bench_util.h"
#include "spec/hf_config.h"
#include "spec/lora_config.h"
#include "spec/memory_estimate.h"
#include "worker/models/hf/hf_weights.h"
#include "worker/models/hf/llama_model.h"
#include "worker/models/model_factory.h"
#include "worker/trainer/cpu_memory_tracker.h"
#include "worker/trainer/trainer.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using bench::LlamaConfigText;
using bench::ParsedOrExit;

// A LlamaForCausalLM folder with random weights and the tests' 512-piece tokenizer.
void WriteLlamaFolder(const fs::path& dir, int64_t hidden) {
  fs::create_directories(dir);
  const std::string config = LlamaConfigText(hidden, 4, 512, "float32");
  std::unique_ptr<Model> model = CreateLlamaModel(ParsedOrExit(config), torch::kFloat);
  std::ofstream(dir / "config.json") << config;
  for (const auto& [name, bytes] : EncodeWeightFiles(model->HfState(), int64_t{1} << 40)) {
    std::ofstream(dir / name, std::ios::binary) << bytes;
  }
  const fs::path fixture = fs::path(TRAINERD_SOURCE_DIR) / "tests/fixtures/hf/llama-gqa/tokenizer.model";
  fs::copy_file(fixture, dir / "tokenizer.model", fs::copy_options::overwrite_existing);
}

struct Way {
  const char* name;
  const char* peft;  // the spec's peft section ("" for full fine-tuning)
};
constexpr Way kWays[] = {
    {"full fine-tuning", ""},
    {"LoRA r 8, q/k/v/o", "peft: {r: 8, lora_alpha: 16, target_modules: [q_proj, k_proj, v_proj, o_proj]}\n"},
    {"LoRA r 8, all-linear", "peft: {r: 8, lora_alpha: 16, target_modules: all-linear}\n"},
};

struct Measured {
  std::vector<double> step_seconds;
  double peak_mb = 0;
  int64_t trainable = 0, all = 0;
};

void RunOnce(const Way& way, const fs::path& folder, const fs::path& out, int steps, Measured* m) {
  trainer::v1::JobSpec spec = bench::Spec(absl::StrCat(
      "training_args: {output_dir: ", out.string(), ", max_steps: ", steps,
      ", per_device_train_batch_size: 8, learning_rate: 0.001, logging_steps: 100000, save_strategy: 'no', "
      "do_eval: false, log_level: warning}\n",
      "model: {name_or_path: ", folder.string(), "}\n", way.peft,
      "data: {train: {path: /usr/share/games/fortunes/cookie, format: text, limit: 2000}, max_seq_length: 128}\n"));
  torch::manual_seed(42);
  absl::StatusOr<DataAndModel> loaded = LoadDataAndModel(spec);
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", std::string(loaded.status().message()).c_str());
    std::exit(1);
  }
  m->trainable = loaded->model->NumParameters();
  m->all = loaded->model->NumAllParameters();
  Trainer trainer(spec, std::move(loaded->model), std::move(loaded->data));
  CpuMemoryTracker& memory = CpuMemoryTracker::Install();
  memory.ResetPeak();
  const int64_t before = memory.current();
  const auto start = Clock::now();
  auto result = trainer.train();
  if (!result.ok()) {
    std::fprintf(stderr, "%s: %s\n", way.name, std::string(result.status().message()).c_str());
    std::exit(1);
  }
  m->step_seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count() / steps);
  m->peak_mb = std::max(m->peak_mb, static_cast<double>(memory.peak() - before) / (1024.0 * 1024.0));
}

void CompareTraining(int rounds, int steps, int64_t hidden, const fs::path& dir) {
  WriteLlamaFolder(dir / "base", hidden);
  std::printf("Llama hidden %lld x 4 layers, vocabulary 512, float32, batch 8 x 128 tokens, AdamW, %d steps, "
              "median of %d alternating rounds:\n",
              static_cast<long long>(hidden), steps, rounds);
  std::vector<Measured> measured(std::size(kWays));
  for (int r = 0; r < rounds; ++r) {
    for (size_t w = 0; w < std::size(kWays); ++w) RunOnce(kWays[w], dir / "base", dir / "out", steps, &measured[w]);
  }
  std::printf("  %-22s %10s %12s %14s %18s %12s\n", "", "step ms", "vs full", "peak MB", "trained params",
              "state MB");
  const double full_ms = bench::Median(measured[0].step_seconds) * 1000;
  for (size_t w = 0; w < std::size(kWays); ++w) {
    const Measured& m = measured[w];
    const double ms = bench::Median(m.step_seconds) * 1000;
    // Weights, gradients and AdamW's two moments of every trained tensor, float32.
    const double state_mb = 16.0 * static_cast<double>(m.trainable) / (1024.0 * 1024.0);
    std::printf("  %-22s %10.1f %11.2fx %14.1f %10lld (%.2f%%) %12.2f\n", kWays[w].name, ms, ms / full_ms,
                m.peak_mb, static_cast<long long>(m.trainable), 100.0 * m.trainable / m.all, state_mb);
  }
}

// The largest hidden size (a multiple of 256) whose estimate fits `limit`.
int64_t LargestAccepted(int64_t limit, bool lora) {
  trainer::v1::JobSpec spec = bench::Spec(
      "training_args: {per_device_train_batch_size: 1, per_device_eval_batch_size: 1}\n"
      "model: {name_or_path: /nonexistent, torch_dtype: bfloat16}\ndata: {max_seq_length: 512}\n");
  int64_t best = 0;
  for (int64_t hidden = 256; hidden <= 65536; hidden += 256) {
    const HfConfig config = ParsedOrExit(LlamaConfigText(hidden, 32, 32000, "bfloat16"));
    int64_t trainable = HfParameterCount(config);
    if (lora) {
      absl::StatusOr<int64_t> n = LoraTrainableParameterCount(WithLoraDefaults({}, "llama", false), config);
      if (!n.ok()) std::exit(1);
      trainable = *n;
    }
    if (EstimateHfJobMemoryBytes(spec, config, trainable) > limit) break;
    best = hidden;
  }
  return best;
}

void CompareAdmission(int64_t limit_gb) {
  const int64_t limit = limit_gb << 30;
  std::printf("Admission under --max-job-memory %lldGiB (Llama, 32 layers, vocabulary 32000, bfloat16, batch 1 x "
              "512):\n",
              static_cast<long long>(limit_gb));
  for (bool lora : {false, true}) {
    const int64_t hidden = LargestAccepted(limit, lora);
    const int64_t params = hidden == 0 ? 0 : HfParameterCount(ParsedOrExit(LlamaConfigText(hidden, 32, 32000, "bfloat16")));
    std::printf("  %-22s largest accepted: hidden %lld, %.2fB parameters\n",
                lora ? "LoRA r 8, q/v" : "full fine-tuning", static_cast<long long>(hidden), params / 1e9);
  }
}

}  // namespace
}  // namespace trainerd

int main(int argc, char** argv) {
  const trainerd::bench::Flags flags(argc, argv, "lora_bench [--rounds R] [--steps S] [--hidden H]",
                                     {{"--rounds", 3}, {"--steps", 10}, {"--hidden", 512}});
  torch::set_num_threads(2);
  spdlog::set_level(spdlog::level::warn);
  const auto dir = std::filesystem::temp_directory_path() / absl::StrCat("lora-bench-", getpid());
  trainerd::CompareTraining(flags.Int("--rounds"), flags.Int("--steps"), flags.Int("--hidden"), dir);
  trainerd::CompareAdmission(80);
  std::filesystem::remove_all(dir);
  return 0;
}
