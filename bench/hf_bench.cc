// Hugging Face Llama folders, measured side by side in one run:
//
//  1. A fine-tuning step against the built-in GPT of the same size (hidden 256, 4 layers,
//     4 heads, SwiGLU of the same width, tied embeddings, the same 512-piece tokenizer
//     and the same fortunes): training samples/s of each, median of alternating rounds.
//  2. The memory of one forward + backward of the folder's causal LM loss (batch 16 x 128
//     tokens) plain, with gradient_checkpointing, with the fused (Liger) kernels and with
//     both: what the forward pass keeps for backward and the peak (LibTorch's CPU bytes,
//     CpuMemoryTracker), and the time, median of alternating rounds.
//
// The folder is written by this program (random weights, transformers' names), so
// nothing is downloaded.
//
//   hf_bench [--rounds R] [--steps S]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "bench/bench_util.h"
#include "spec/spec_defaults.h"
#include "spec/hf_config.h"
#include "worker/models/hf/hf_model_loader.h"
#include "worker/models/hf/llama_model.h"
#include "worker/models/model_factory.h"
#include "worker/models/safetensors.h"
#include "worker/trainer/cpu_memory_tracker.h"
#include "worker/trainer/trainer.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int64_t kHidden = 256, kLayers = 4, kHeads = 4, kVocab = 512;

// A LlamaForCausalLM folder of the built-in GPT's shape, with random weights.
void WriteLlamaFolder(const fs::path& dir, const std::string& tokenizer) {
  fs::create_directories(dir);
  const std::string config = absl::StrCat(
      "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": ", kVocab,
      ", \"hidden_size\": ", kHidden, ", \"intermediate_size\": ", DefaultIntermediateSize(kHidden),
      ", \"num_hidden_layers\": ", kLayers, ", \"num_attention_heads\": ", kHeads, ", \"num_key_value_heads\": ", kHeads,
      ", \"max_position_embeddings\": 512, \"rms_norm_eps\": 1e-06, \"rope_theta\": 10000.0, "
      "\"tie_word_embeddings\": true, \"bos_token_id\": 1, \"eos_token_id\": 2, \"torch_dtype\": \"float32\"}");
  absl::StatusOr<HfConfig> parsed = ParseHfConfig(config);
  if (!parsed.ok()) {
    std::fprintf(stderr, "%s\n", std::string(parsed.status().message()).c_str());
    std::exit(1);
  }
  std::unique_ptr<Model> model = CreateLlamaModel(*parsed, torch::kFloat);
  std::ofstream(dir / "config.json") << config;
  std::ofstream(dir / "model.safetensors", std::ios::binary) << EncodeSafetensors(model->NamedState());
  fs::copy_file(tokenizer, dir / "tokenizer.model", fs::copy_options::overwrite_existing);
}

std::string Yaml(const fs::path& out, const std::string& model, const std::string& tokenizer, int steps) {
  return absl::StrCat("training_args: {output_dir: ", out.string(), ", max_steps: ", steps,
                      ", per_device_train_batch_size: 16, learning_rate: 0.001, logging_steps: 100000, "
                      "save_strategy: 'no', do_eval: false, log_level: warning}\n",
                      "model: ", model, "\n",
                      "data: {train: {path: /usr/share/games/fortunes/cookie, format: text, limit: 2000}, "
                      "max_seq_length: 128, tokenizer: {path: ", tokenizer, "}}\n");
}

// Training samples per second of one run of `yaml`.
double SamplesPerSecond(const std::string& yaml, int steps) {
  trainer::v1::JobSpec spec = bench::Spec(yaml);
  torch::manual_seed(42);
  absl::StatusOr<DataAndModel> loaded = LoadDataAndModel(spec);
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", std::string(loaded.status().message()).c_str());
    std::exit(1);
  }
  Trainer trainer(spec, std::move(loaded->model), std::move(loaded->data));
  const auto t0 = Clock::now();
  if (!trainer.train().ok()) std::exit(1);
  return 16.0 * steps / std::chrono::duration<double>(Clock::now() - t0).count();
}

struct MemoryVariant {
  std::string name;
  bool checkpointing;
  bool kernels;
  std::vector<double> kept_mb, peak_mb, ms;
};

// Section 2: one forward + backward of the loss, for each variant in turn.
void Memory(const fs::path& folder, int rounds) {
  absl::StatusOr<HfConfig> config = ReadHfConfig(folder.string());
  absl::StatusOr<std::unique_ptr<Model>> loaded = config.ok() ? LoadHfModel(folder.string(), *config, "")
                                                              : absl::StatusOr<std::unique_ptr<Model>>(config.status());
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", std::string(loaded.status().message()).c_str());
    std::exit(1);
  }
  Model& model = **loaded;
  model.SetTraining(true);
  torch::manual_seed(42);
  const torch::Tensor ids = torch::randint(3, kVocab, {16, 128}, torch::kLong);
  std::vector<MemoryVariant> variants = {
      {"plain", false, false, {}, {}, {}},
      {"gradient_checkpointing", true, false, {}, {}, {}},
      {"use_liger_kernel", false, true, {}, {}, {}},
      {"both", true, true, {}, {}, {}}};
  CpuMemoryTracker& memory = CpuMemoryTracker::Install();
  const double mb = 1024.0 * 1024.0;
  for (int round = 0; round < rounds; ++round) {
    for (MemoryVariant& v : variants) {
      model.SetGradientCheckpointing(v.checkpointing);
      // Liger's defaults: rope, swiglu, rms_norm and the fused linear + loss.
      model.SetLigerKernels(v.kernels ? LigerKernels{true, true, true, false, true} : LigerKernels{});
      for (torch::Tensor& p : model.Parameters()) p.mutable_grad() = torch::Tensor();
      memory.ResetPeak();
      const int64_t before = memory.current();
      const auto start = Clock::now();
      torch::Tensor loss = model.CausalLmLossSum(ids, ids, 0);
      if (!loss.defined()) {
        torch::Tensor logits = model.Forward(ids);
        loss = torch::nn::functional::cross_entropy(
            logits.narrow(1, 0, 127).reshape({-1, kVocab}), ids.narrow(1, 1, 127).reshape({-1}),
            torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
      }
      const int64_t after_forward = memory.current();
      loss.backward();
      v.ms.push_back(1000 * std::chrono::duration<double>(Clock::now() - start).count());
      v.kept_mb.push_back(static_cast<double>(after_forward - before) / mb);
      v.peak_mb.push_back(static_cast<double>(memory.peak() - before) / mb);
    }
  }
  std::printf("Llama folder forward + backward of the loss, batch 16 x 128 tokens, median of %d:\n", rounds);
  const MemoryVariant& plain = variants.front();
  for (const MemoryVariant& v : variants) {
    std::printf("  %-24s kept for backward %6.1f MB (%+4.0f%%)  peak %6.1f MB (%+4.0f%%)  time %5.0f ms (x%.2f)\n",
                v.name.c_str(), bench::Median(v.kept_mb), 100 * (bench::Median(v.kept_mb) / bench::Median(plain.kept_mb) - 1),
                bench::Median(v.peak_mb), 100 * (bench::Median(v.peak_mb) / bench::Median(plain.peak_mb) - 1),
                bench::Median(v.ms), bench::Median(v.ms) / bench::Median(plain.ms));
  }
}

}  // namespace
}  // namespace trainerd

int main(int argc, char** argv) {
  using namespace trainerd;
  const bench::Flags flags(argc, argv, "hf_bench [--rounds R] [--steps S]", {{"--rounds", 3}, {"--steps", 20}});
  const int rounds = flags.Int("--rounds"), steps = flags.Int("--steps");
  const fs::path dir = fs::temp_directory_path() / absl::StrCat("hf-bench-", ::getpid());
  const std::string tokenizer = std::string(TRAINERD_SOURCE_DIR) + "/tests/fixtures/hf/llama-gqa/tokenizer.model";
  WriteLlamaFolder(dir / "llama", tokenizer);
  const std::string builtin = absl::StrCat("{type: gpt, hidden_size: ", kHidden, ", num_layers: ", kLayers,
                                           ", num_heads: ", kHeads, "}");
  const std::string hf = absl::StrCat("{name_or_path: ", (dir / "llama").string(), "}");
  std::vector<double> gpt, llama;
  for (int r = 0; r < rounds; ++r) {  // alternating, so that both see the same machine
    gpt.push_back(SamplesPerSecond(Yaml(dir / "gpt-out", builtin, tokenizer, steps), steps));
    llama.push_back(SamplesPerSecond(Yaml(dir / "hf-out", hf, tokenizer, steps), steps));
  }
  std::printf("fine-tuning step, hidden %lld, %lld layers, 128 tokens, batch 16, median of %d rounds of %d steps: "
              "built-in gpt %.0f samples/s, Hugging Face LlamaForCausalLM folder %.0f samples/s = %.2fx\n",
              static_cast<long long>(kHidden), static_cast<long long>(kLayers), rounds, steps, bench::Median(gpt),
              bench::Median(llama), bench::Median(llama) / bench::Median(gpt));
  Memory(dir / "llama", rounds);
  std::error_code ec;
  fs::remove_all(dir, ec);
  return 0;
}
