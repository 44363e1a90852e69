// Checkpoint cost: how long training is blocked by a save (serialising the state in
// memory) against how long the background write takes (files + fsync + rename), and
// the checkpoint size, for the example CNN and for a ~100 MB MLP.
//
//   checkpoint_bench [--saves N]
#include <chrono>
#include <cstdio>
#include <filesystem>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "bench/bench_flags.h"
#include "spec/spec_defaults.h"
#include "spec/spec_loader.h"
#include "worker/models/model_factory.h"
#include "worker/data/dataset_factory.h"
#include "worker/checkpoint/checkpoint_store.h"
#include "worker/data/dataset_reader.h"
#include "worker/models/model.h"
#include "worker/trainer/trainer.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Measures the time from on_step_end to on_save: with no log or eval due, that is the
// time the loop spends in SaveCheckpoint (serialising and queueing).
class SaveTimer : public TrainerCallback {
 public:
  std::vector<double> blocked_ms;
  void on_step_end(const TrainingArguments&, TrainerState&, TrainerControl& control) override {
    start_ = Clock::now();
  }
  void on_save(const TrainingArguments&, TrainerState&, TrainerControl&) override {
    blocked_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start_).count());
  }

 private:
  Clock::time_point start_;
};

void Run(const std::string& name, const std::string& model_yaml, int64_t saves) {
  const std::string out = absl::StrCat("/tmp/trainerd-checkpoint-bench-", name);
  fs::remove_all(out);
  const std::string d = "/usr/share/datasets/fashion-mnist/";
  auto spec = ParseJobSpec(absl::StrCat(
      "training_args: {output_dir: ", out, ", max_steps: ", saves * 5, ", save_steps: 5, ",
      "per_device_train_batch_size: 64, learning_rate: 1.0e-4, logging_strategy: 'no', save_total_limit: 2}\n",
      "model: ", model_yaml, "\n",
      "data: {train: {path: ", d, "train-images-idx3-ubyte.gz, labels_path: ", d,
      "train-labels-idx1-ubyte.gz, limit: 2000}}\n"));
  ApplyDefaults(&*spec);
  torch::manual_seed(1);
  auto data = *LoadDatasets(spec->data(), 1);
  auto model = *CreateModel(spec->model(), data);
  const int64_t params = model->NumParameters();
  auto timer = std::make_shared<SaveTimer>();
  Trainer trainer(*spec, std::move(model), std::move(data), {timer});
  if (!trainer.train().ok()) return;

  const std::string last = CheckpointStore::List(out).back();
  auto files = *CheckpointStore::Read(last);
  uint64_t bytes = 0;
  for (const auto& [file, contents] : files) bytes += contents.size();
  // The background part, timed on its own: the same files written crash-safely.
  std::vector<double> write_ms;
  for (int64_t i = 0; i < saves; ++i) {
    const auto start = Clock::now();
    (void)CheckpointStore::WriteFolder(out + "/write-test", files);
    write_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::sort(timer->blocked_ms.begin(), timer->blocked_ms.end());
  std::sort(write_ms.begin(), write_ms.end());
  const double blocked = timer->blocked_ms[timer->blocked_ms.size() / 2];
  const double write = write_ms[write_ms.size() / 2];
  std::printf("%-10s %10.1f %10.1f %12.1f %12.1f %10.2f\n", name.c_str(), params * 4 / 1e6, bytes / 1e6,
              blocked, write, blocked / (blocked + write));
  fs::remove_all(out);
}

}  // namespace
}  // namespace trainerd

int main(int argc, char** argv) {
  const trainerd::bench::Flags flags(argc, argv, "checkpoint_bench [--saves N]", {{"--saves", 5}});
  const int64_t saves = flags["--saves"];
  torch::set_num_threads(2);
  std::printf("%-10s %10s %10s %12s %12s %10s\n", "model", "weights MB", "ckpt MB", "blocked ms",
              "write ms", "blocked/total");
  trainerd::Run("cnn", "{type: cnn, conv_channels: [32, 64], hidden_sizes: [128]}", saves);
  trainerd::Run("mlp-100MB", "{type: mlp, hidden_sizes: [4096, 4096, 1024]}", saves);
  return 0;
}
