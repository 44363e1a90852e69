// Fused (Liger) kernels against the plain ops, measured side by side in one run, at a
// vocabulary of 32k:
//
//  1. The loss alone: hidden states [8 x 256 tokens, 256] -> output layer -> summed
//     cross-entropy, forward and backward. Peak LibTorch CPU memory above the inputs
//     (CpuMemoryTracker), time (median of alternating rounds), and the loss difference.
//  2. A whole GPT (hidden 256, 2 layers, 8 x 256 tokens): forward + backward of the
//     training loss with the kernels off, with Liger's defaults (rope, swiglu,
//     rms_norm, fused_linear_cross_entropy) and with cross_entropy instead of the
//     chunked loss.
//
//   liger_bench [--rounds R]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "bench/bench_util.h"
#include "worker/models/model_factory.h"
#include "worker/data/dataset_factory.h"
#include "worker/trainer/cpu_memory_tracker.h"
#include "worker/data/dataset_reader.h"
#include "worker/models/liger_kernels.h"
#include "worker/models/model.h"

namespace trainerd {
namespace {

namespace F = torch::nn::functional;
using bench::Median;
using Clock = std::chrono::steady_clock;

constexpr int64_t kVocab = 32000, kWidth = 256, kBatch = 8, kLength = 256;

struct Measured {
  std::vector<double> peak_mb, ms;
  double loss = 0;
};

// Runs `step` (returns the loss after its backward) and records its peak and time.
void Measure(const std::function<torch::Tensor()>& step, Measured* m) {
  CpuMemoryTracker& memory = CpuMemoryTracker::Install();
  memory.ResetPeak();
  const int64_t before = memory.current();
  const auto start = Clock::now();
  m->loss = step().item<double>();
  m->ms.push_back(1000 * std::chrono::duration<double>(Clock::now() - start).count());
  m->peak_mb.push_back(static_cast<double>(memory.peak() - before) / (1024.0 * 1024.0));
}

void Report(const std::vector<std::pair<std::string, Measured>>& rows) {
  const Measured& plain = rows.front().second;
  for (const auto& [name, m] : rows) {
    std::printf("  %-34s peak %7.1f MB (%+4.0f%%)  time %6.1f ms (x%.2f)  loss %.6f (diff %.1e)\n", name.c_str(),
                Median(m.peak_mb), 100.0 * (Median(m.peak_mb) / Median(plain.peak_mb) - 1), Median(m.ms),
                Median(m.ms) / Median(plain.ms), m.loss, std::abs(m.loss - plain.loss) / std::abs(plain.loss));
  }
}

void LossAlone(int rounds) {
  torch::manual_seed(0);
  const int64_t n = kBatch * kLength;
  torch::Tensor hidden = torch::randn({n, kWidth}, torch::requires_grad());
  torch::Tensor weight = (torch::randn({kVocab, kWidth}) * 0.02).requires_grad_();
  torch::Tensor targets = torch::randint(kVocab, {n});
  const std::vector<std::pair<std::string, std::function<torch::Tensor()>>> variants = {
      {"plain: matmul + cross_entropy",
       [&] {
         return F::cross_entropy(torch::matmul(hidden, weight.t()), targets,
                                 F::CrossEntropyFuncOptions().reduction(torch::kSum));
       }},
      {"cross_entropy kernel",
       [&] { return LigerCrossEntropySum(torch::matmul(hidden, weight.t()), targets, 0); }},
      {"fused_linear_cross_entropy", [&] { return LigerFusedLinearCrossEntropySum(hidden, weight, targets, 0); }}};
  std::vector<std::pair<std::string, Measured>> rows(variants.size());
  for (int round = 0; round < rounds; ++round) {
    for (size_t i = 0; i < variants.size(); ++i) {
      rows[i].first = variants[i].first;
      hidden.mutable_grad() = torch::Tensor();
      weight.mutable_grad() = torch::Tensor();
      Measure(
          [&] {
            torch::Tensor loss = variants[i].second();
            loss.backward();
            return loss;
          },
          &rows[i].second);
    }
  }
  std::printf("The loss at vocab %lld: [%lld tokens, %lld] -> output layer -> cross-entropy, forward + backward, "
              "median of %d:\n",
              static_cast<long long>(kVocab), static_cast<long long>(n), static_cast<long long>(kWidth), rounds);
  Report(rows);
}

void WholeGpt(int rounds) {
  auto spec = bench::Spec(absl::StrCat(
      "training_args: {output_dir: /tmp/liger-bench}\n",
      "model: {type: gpt, hidden_size: ", kWidth, ", num_layers: 2, num_heads: 4}\n",
      "data: {train: {path: /usr/share/games/fortunes/cookie, format: text, limit: 200}, max_seq_length: 32,"
      " tokenizer: {vocab_size: 500}}\n"));
  auto data = LoadDatasets(spec.data(), 42);
  if (!data.ok()) std::exit(1);
  data->vocab_size = kVocab;  // the model's size; the ids below are random
  torch::manual_seed(0);
  auto created = CreateModel(spec.model(), *data);
  if (!created.ok()) std::exit(1);
  Model& model = **created;
  model.SetTraining(true);
  torch::Tensor ids = torch::randint(kVocab, {kBatch, kLength});
  const std::vector<std::pair<std::string, LigerKernels>> variants = {
      {"plain", LigerKernels{}},
      {"liger defaults (fused linear + loss)", LigerKernels{true, true, true, false, true}},
      {"liger with cross_entropy kernel", LigerKernels{true, true, true, true, false}}};
  std::vector<std::pair<std::string, Measured>> rows(variants.size());
  for (int round = 0; round < rounds; ++round) {
    for (size_t i = 0; i < variants.size(); ++i) {
      rows[i].first = variants[i].first;
      model.SetLigerKernels(variants[i].second);
      for (torch::Tensor& p : model.Parameters()) p.mutable_grad() = torch::Tensor();
      Measure(
          [&] {
            torch::Tensor loss = model.CausalLmLossSum(ids, ids, 0);
            if (!loss.defined()) {
              const torch::Tensor logits = model.Forward(ids);
              loss = F::cross_entropy(logits.narrow(1, 0, kLength - 1).reshape({-1, kVocab}),
                                      ids.narrow(1, 1, kLength - 1).reshape({-1}),
                                      F::CrossEntropyFuncOptions().reduction(torch::kSum));
            }
            loss.backward();
            return loss;
          },
          &rows[i].second);
    }
  }
  std::printf("A GPT step at vocab %lld (hidden %lld, 2 layers, %lld x %lld tokens), forward + backward, median of "
              "%d:\n",
              static_cast<long long>(kVocab), static_cast<long long>(kWidth), static_cast<long long>(kBatch),
              static_cast<long long>(kLength), rounds);
  Report(rows);
}

}  // namespace
}  // namespace trainerd

int main(int argc, char** argv) {
  const int rounds = trainerd::bench::Flags(argc, argv, "liger_bench [--rounds R]", {{"--rounds", 5}}).Int("--rounds");
  torch::set_num_threads(2);
  trainerd::LossAlone(rounds);
  trainerd::WholeGpt(rounds);
  return 0;
}
