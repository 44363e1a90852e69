// A fine-tuning step of a Hugging Face Llama folder against the built-in GPT of the
// same size (hidden 256, 4 layers, 4 heads, SwiGLU of the same width, tied embeddings,
// the same 512-piece tokenizer and the same fortunes), side by side in one run:
// training samples/s of each, median of alternating rounds. The folder is written by
// this program (random weights, transformers' names), so nothing is downloaded.
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
#include "worker/models/hf/hf_config.h"
#include "worker/models/hf/llama_model.h"
#include "worker/models/model_factory.h"
#include "worker/models/safetensors.h"
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

}  // namespace
}  // namespace trainerd

int main(int argc, char** argv) {
  using namespace trainerd;
  const int rounds = bench::IntFlag(argc, argv, "--rounds", 3), steps = bench::IntFlag(argc, argv, "--steps", 20);
  if (argc > 1 && std::string(argv[1]) == "--help") {
    std::printf("usage: hf_bench [--rounds R] [--steps S]\n");
    return 0;
  }
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
  std::error_code ec;
  fs::remove_all(dir, ec);
  return 0;
}
