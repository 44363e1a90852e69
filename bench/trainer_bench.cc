// Trainer overhead benchmark: trainer-worker's loop against a minimal hand-written
// LibTorch loop on the same model, data and threads, measured side by side in one run
// (alternating, best of `rounds`), and against the same loop in Python when
// /usr/bin/python3 has torch. Prints samples/s and the ratios.
//
//   trainer_bench [--rounds R] [--threads T] [--scale S]   (S times 800 MLP and 150 CNN steps)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "bench/bench_flags.h"
#include "spec/spec_defaults.h"
#include "spec/spec_loader.h"
#include "worker/models/model_factory.h"
#include "worker/data/dataset_factory.h"
#include "worker/data/dataset_reader.h"
#include "worker/models/model.h"
#include "worker/trainer/trainer.h"

namespace trainerd {
namespace {

using Clock = std::chrono::steady_clock;

struct Case {
  std::string name;
  std::string model_yaml;
  int64_t batch_size;
  int64_t steps;
};

trainer::v1::JobSpec SpecFor(const Case& c, int64_t threads, int64_t workers) {
  const std::string dir = "/usr/share/datasets/fashion-mnist/";
  auto spec = ParseJobSpec(absl::StrCat(
      "training_args: {output_dir: /tmp/trainerd-bench, max_steps: ", c.steps,
      ", per_device_train_batch_size: ", c.batch_size,
      ", learning_rate: 1.0e-3, lr_scheduler_type: constant, max_grad_norm: 0,"
      " logging_strategy: 'no', save_strategy: 'no', torch_num_threads: ", threads,
      ", dataloader_num_workers: ", workers, "}\n",
      "model: ", c.model_yaml, "\n",
      "data: {train: {path: ", dir, "train-images-idx3-ubyte.gz, labels_path: ", dir,
      "train-labels-idx1-ubyte.gz}, mean: 0.2860, std: 0.3530}\n"));
  if (!spec.ok()) {
    std::cerr << spec.status() << "\n";
    std::exit(1);
  }
  ApplyDefaults(&*spec);
  return *spec;
}

// The reference: pre-normalised data in memory, one gather per batch, nothing else.
double RawLoop(const trainer::v1::JobSpec& spec, const DatasetBundle& data, int64_t steps) {
  torch::manual_seed(42);
  auto model = *CreateModel(spec.model(), data);
  model->SetTraining(true);
  torch::optim::AdamW opt(model->Parameters(), torch::optim::AdamWOptions(1e-3).weight_decay(0));
  torch::Tensor x = data.normalization.Apply(data.train.inputs);
  torch::Tensor y = data.train.labels;
  const int64_t b = spec.training_args().per_device_train_batch_size();
  torch::Tensor perm = torch::randperm(x.size(0), torch::kLong);
  const auto start = Clock::now();
  for (int64_t step = 0; step < steps; ++step) {
    const int64_t offset = (step * b) % (x.size(0) - b);
    torch::Tensor idx = perm.slice(0, offset, offset + b);
    torch::Tensor loss = torch::nn::functional::cross_entropy(model->Forward(x.index_select(0, idx)),
                                                              y.index_select(0, idx));
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  return steps * b / std::chrono::duration<double>(Clock::now() - start).count();
}

double TrainerLoop(const trainer::v1::JobSpec& spec, const DatasetBundle& data) {
  torch::manual_seed(42);
  auto model = *CreateModel(spec.model(), data);
  Trainer trainer(spec, std::move(model), data);
  auto out = trainer.train();
  if (!out.ok()) {
    std::cerr << out.status() << "\n";
    std::exit(1);
  }
  return out->metrics.at("train_samples_per_second");
}

double PythonLoop(const Case& c, int64_t threads) {
  const std::string script = std::string(TRAINERD_SOURCE_DIR) + "/bench/python_loop.py";
  const std::string cmd = absl::StrCat("/usr/bin/python3 ", script, " --model ", c.name,
                                       " --batch ", c.batch_size, " --steps ", c.steps,
                                       " --threads ", threads, " 2>/dev/null");
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return 0;
  double v = 0;
  if (std::fscanf(p, "%lf", &v) != 1) v = 0;
  pclose(p);
  return v;
}

}  // namespace
}  // namespace trainerd

int main(int argc, char** argv) {
  using namespace trainerd;
  const bench::Flags flags(argc, argv, "trainer_bench [--rounds R] [--threads T] [--scale S]",
                           {{"--rounds", 5}, {"--threads", 2}, {"--scale", 1}});
  const int64_t rounds = flags["--rounds"], threads = flags["--threads"], scale = flags["--scale"];
  const std::vector<Case> cases = {
      {"mlp", "{type: mlp, hidden_sizes: [256]}", 64, 800 * scale},
      {"cnn", "{type: cnn, conv_channels: [32, 64], hidden_sizes: [128]}", 64, 150 * scale},
  };
  std::printf("%-5s %-30s %12s %14s\n", "model", "loop", "samples/s", "ratio vs raw");
  const auto median = bench::Median;
  for (const Case& c : cases) {
    const trainer::v1::JobSpec spec0 = SpecFor(c, threads, 0), spec1 = SpecFor(c, threads, 1);
    auto data = *LoadDatasets(spec0.data(), 42);
    torch::set_num_threads(static_cast<int>(threads));
    // Each round runs every loop once, back to back; ratios are taken within a round
    // (machines are shared and noisy) and the median over rounds is reported.
    std::vector<double> raw, t0, t1, py, r0, r1, rpy;
    for (int64_t r = 0; r < rounds; ++r) {
      raw.push_back(RawLoop(spec0, data, c.steps));
      t0.push_back(TrainerLoop(spec0, data));
      t1.push_back(TrainerLoop(spec1, data));
      py.push_back(PythonLoop(c, threads));
      r0.push_back(t0.back() / raw.back());
      r1.push_back(t1.back() / raw.back());
      rpy.push_back(py.back() / raw.back());
    }
    std::printf("%-5s %-30s %12.0f %14s\n", c.name.c_str(), "raw C++ loop", median(raw), "1.000");
    std::printf("%-5s %-30s %12.0f %14.3f\n", c.name.c_str(), "trainer, no prefetch", median(t0), median(r0));
    std::printf("%-5s %-30s %12.0f %14.3f\n", c.name.c_str(), "trainer, 1 prefetch thread", median(t1), median(r1));
    if (median(py) > 0) {
      std::printf("%-5s %-30s %12.0f %14.3f\n", c.name.c_str(), "python loop, same kernels", median(py), median(rpy));
    } else {
      std::printf("%-5s %-30s %12s\n", c.name.c_str(), "python loop", "(no torch in /usr/bin/python3)");
    }
  }
  return 0;
}
