// Checkpoints through the Trainer: exact resume, fallback past corrupt checkpoints,
// rotation that keeps the best, load_best_model_at_end, early stopping, callback event
// order, safetensors, and export to a model registry folder.
#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "absl/strings/str_format.h"
#include "spec/spec_defaults.h"
#include "spec/spec_loader.h"
#include "spec/spec_validator.h"
#include "tests/test_util.h"
#include "worker/models/model_factory.h"
#include "worker/data/dataset_factory.h"
#include "worker/data/dataset_reader.h"
#include "worker/models/safetensors.h"
#include "worker/trainer/trainer.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::TempDir;

trainer::v1::JobSpec Spec(const std::string& output_dir, const std::string& extra_args,
                          const std::string& extra = "") {
  const std::string d = testing::kFashionDir;
  auto spec = ParseJobSpec(absl::StrCat(
      "training_args: {output_dir: ", output_dir, ", ",
      extra_args.find("per_device_train_batch_size") == std::string::npos ? "per_device_train_batch_size: 32, " : "",
      extra_args.find("learning_rate") == std::string::npos ? "learning_rate: 0.005, " : "",
      "per_device_eval_batch_size: 1000, ", extra_args, "}\n",
      "model: {type: mlp, hidden_sizes: [32], dropout: 0.2}\n",
      "data: {train: {path: ", d, "/train-images-idx3-ubyte.gz, labels_path: ", d,
      "/train-labels-idx1-ubyte.gz, limit: 600}, mean: 0.286, std: 0.353, eval_split: 0.2}\n",
      "metrics: [accuracy]\n", extra));
  EXPECT_TRUE(spec.ok()) << spec.status();
  ApplyDefaults(&*spec);
  EXPECT_TRUE(ValidateJobSpec(*spec).ok()) << ValidateJobSpec(*spec);
  return *spec;
}

std::unique_ptr<Trainer> MakeTrainer(const trainer::v1::JobSpec& spec,
                                     std::vector<std::shared_ptr<TrainerCallback>> callbacks = {}) {
  torch::manual_seed(static_cast<uint64_t>(spec.training_args().seed()));
  auto data = LoadDatasets(spec.data(), spec.training_args().data_seed());
  EXPECT_TRUE(data.ok()) << data.status();
  auto model = CreateModel(spec.model(), *data);
  EXPECT_TRUE(model.ok()) << model.status();
  return std::make_unique<Trainer>(spec, std::move(*model), std::move(*data), std::move(callbacks));
}

std::vector<std::pair<int64_t, double>> Losses(const TrainerState& s, const std::string& key) {
  std::vector<std::pair<int64_t, double>> out;
  for (const Metrics& m : s.log_history) {
    if (m.count(key)) out.emplace_back(static_cast<int64_t>(m.at("step")), m.at(key));
  }
  return out;
}

// 480 training examples / 32 = 15 batches an epoch. The run is stopped at step 12 and
// resumed from checkpoint-10: mid-epoch, mid logging interval (logging every 3 steps),
// with shuffling, dropout and a prefetch thread.
TEST(Checkpoint, ResumeIsExact) {
  TempDir dir;
  const std::string args =
      "max_steps: 40, save_steps: 5, logging_steps: 3, eval_strategy: steps, eval_steps: 7, "
      "dataloader_num_workers: 1";
  auto full = MakeTrainer(Spec(dir / "full", args));
  ASSERT_TRUE(full->train().ok());

  auto stopped = MakeTrainer(Spec(dir / "resumed", args, "callbacks: [{name: stop_after_steps, steps: 12}]"));
  ASSERT_TRUE(stopped->train().ok());
  EXPECT_EQ(stopped->state().global_step, 12);
  EXPECT_TRUE(fs::exists(dir / "resumed/checkpoint-10"));
  EXPECT_FALSE(fs::exists(dir / "resumed/checkpoint-12"));

  auto resumed = MakeTrainer(Spec(dir / "resumed", args + ", resume_from_checkpoint: " + dir / "resumed/checkpoint-10"));
  auto out = resumed->train();
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->global_step, 40);

  auto a = full->model().NamedParameters(), b = resumed->model().NamedParameters();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  EXPECT_EQ(Losses(full->state(), "loss"), Losses(resumed->state(), "loss"));
  EXPECT_EQ(Losses(full->state(), "eval_loss"), Losses(resumed->state(), "eval_loss"));
  EXPECT_EQ(Losses(full->state(), "loss").size(), 13u);
  EXPECT_DOUBLE_EQ(full->state().epoch, resumed->state().epoch);
}

TEST(Checkpoint, ResumeTrueSkipsCorruptCheckpoints) {
  TempDir dir;
  auto first = MakeTrainer(Spec(dir / "out", "max_steps: 15, save_steps: 5"));
  ASSERT_TRUE(first->train().ok());
  // The newest checkpoint is damaged: resume falls back to checkpoint-10.
  testing::WriteFile(dir / "out/checkpoint-15/optimizer.pt", "garbage");
  auto resumed = MakeTrainer(Spec(dir / "out", "max_steps: 20, save_steps: 5, resume_from_checkpoint: 'true'"));
  auto out = resumed->train();
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->global_step, 20);
  EXPECT_TRUE(CheckpointStore::Verify(dir / "out/checkpoint-15").ok());  // re-saved after the resume
  EXPECT_TRUE(CheckpointStore::Verify(dir / "out/checkpoint-20").ok());
  // A path that fails its manifest is refused with the field named.
  auto refused = MakeTrainer(Spec(dir / "out", "max_steps: 20, resume_from_checkpoint: " + dir / "out/checkpoint-15"));
  testing::WriteFile(dir / "out/checkpoint-15/optimizer.pt", "garbage");
  auto status = refused->train();
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.status().message()), HasSubstr("training_args.resume_from_checkpoint"));
  // Damage is data loss, not a bad spec: the worker exits to be retried (not with 2).
  EXPECT_EQ(status.status().code(), absl::StatusCode::kDataLoss) << status.status();
}

TEST(Checkpoint, RotationKeepsBestAndLoadsItAtEnd) {
  TempDir dir;
  // greater_is_better on the loss makes an early, bad checkpoint the "best" one, which
  // rotation (save_total_limit 1) must keep while it deletes everything else but the newest.
  auto t = MakeTrainer(Spec(dir / "out",
                            "max_steps: 30, eval_strategy: steps, eval_steps: 3, "
                            "save_strategy: steps, save_steps: 3, save_total_limit: 1, "
                            "load_best_model_at_end: true, metric_for_best_model: loss, greater_is_better: true"));
  ASSERT_TRUE(t->train().ok());
  const TrainerState& s = t->state();
  ASSERT_TRUE(s.best_model_checkpoint.has_value());
  ASSERT_TRUE(s.best_global_step.has_value());
  std::vector<std::string> kept;
  for (const auto& p : CheckpointStore::List(dir / "out")) kept.push_back(fs::path(p).filename());
  const std::string best = fs::path(*s.best_model_checkpoint).filename();
  EXPECT_EQ(best, "checkpoint-3");  // the highest eval_loss is the first
  EXPECT_THAT(kept, ::testing::Contains(best));
  EXPECT_THAT(kept, ::testing::Contains("checkpoint-30"));
  EXPECT_LE(kept.size(), 2u);
  // The final weights are the best checkpoint's.
  auto files = CheckpointStore::Read(*s.best_model_checkpoint);
  auto weights = DecodeSafetensors(files->at("model.safetensors"));
  std::map<std::string, torch::Tensor> by_name(weights->begin(), weights->end());
  for (auto& [name, p] : t->model().NamedParameters()) EXPECT_TRUE(torch::equal(p, by_name.at(name))) << name;
}

TEST(Checkpoint, SaveStrategyBestSavesOnlyImprovements) {
  TempDir dir;
  auto t = MakeTrainer(Spec(dir / "out", "max_steps: 24, eval_strategy: steps, eval_steps: 3, save_strategy: best, "
                                         "metric_for_best_model: accuracy"));
  ASSERT_TRUE(t->train().ok());
  // Exactly the evaluations that beat every earlier one have a checkpoint.
  std::vector<std::string> expected;
  double best = -1;
  for (const Metrics& m : t->state().log_history) {
    if (m.count("eval_accuracy") && m.at("eval_accuracy") > best) {
      best = m.at("eval_accuracy");
      expected.push_back(absl::StrCat("checkpoint-", static_cast<int64_t>(m.at("step"))));
    }
  }
  std::vector<std::string> saved;
  for (const auto& p : CheckpointStore::List(dir / "out")) saved.push_back(fs::path(p).filename());
  EXPECT_EQ(saved, expected);
  EXPECT_GE(saved.size(), 2u);
  EXPECT_DOUBLE_EQ(*t->state().best_metric, best);
}

TEST(Checkpoint, EarlyStoppingStopsAndItsCounterIsSaved) {
  TempDir dir;
  // threshold 100: no evaluation can improve enough, so patience runs out after 2.
  auto t = MakeTrainer(Spec(dir / "out", "max_steps: 100, eval_strategy: steps, eval_steps: 2, save_steps: 2",
                            "callbacks: [{name: early_stopping, early_stopping_patience: 2, "
                            "early_stopping_threshold: 100}]"));
  ASSERT_TRUE(t->train().ok());
  EXPECT_EQ(t->state().global_step, 6);  // evals at 2 (best), 4 (1), 6 (2: stop)
  const std::string saved = testing::ReadFile(dir / "out/checkpoint-6/trainer_state.json");
  EXPECT_THAT(saved, HasSubstr("\"EarlyStoppingCallback\""));
  EXPECT_THAT(saved, HasSubstr("\"early_stopping_patience_counter\": 2.0"));
}

class RecordingCallback : public TrainerCallback {
 public:
  std::vector<std::string> events;
#define RECORD(name) \
  void name(const TrainingArguments&, TrainerState&, TrainerControl&) override { events.push_back(#name); }
  RECORD(on_init_end)
  RECORD(on_train_begin)
  RECORD(on_train_end)
  RECORD(on_epoch_begin)
  RECORD(on_epoch_end)
  RECORD(on_step_begin)
  RECORD(on_pre_optimizer_step)
  RECORD(on_optimizer_step)
  RECORD(on_substep_end)
  RECORD(on_step_end)
  RECORD(on_save)
  RECORD(on_prediction_step)
#undef RECORD
  void on_evaluate(const TrainingArguments&, TrainerState&, TrainerControl&, const Metrics&) override {
    events.push_back("on_evaluate");
  }
  void on_log(const TrainingArguments&, TrainerState&, TrainerControl&, const Metrics&) override {
    events.push_back("on_log");
  }
  void on_predict(const TrainingArguments&, TrainerState&, TrainerControl&, const Metrics&) override {
    events.push_back("on_predict");
  }
};

// The order HF's Trainer produces for: 4 batches, gradient_accumulation_steps 2 (2
// updates), logging every step, saving every 2 steps, evaluating each epoch (1 eval batch).
TEST(Checkpoint, CallbackEventsFollowHfOrder) {
  TempDir dir;
  auto spec = Spec(dir / "out", "max_steps: 2, gradient_accumulation_steps: 2, logging_steps: 1, "
                                "save_steps: 2, eval_strategy: epoch, per_device_train_batch_size: 120");
  auto recorder = std::make_shared<RecordingCallback>();
  auto t = MakeTrainer(spec, {recorder});
  ASSERT_TRUE(t->train().ok());
  auto predicted = t->predict(*t->data().eval);
  ASSERT_TRUE(predicted.ok());
  const std::vector<std::string> hf = {
      "on_init_end", "on_train_begin", "on_epoch_begin",
      "on_step_begin", "on_substep_end", "on_pre_optimizer_step", "on_optimizer_step", "on_step_end", "on_log",
      "on_step_begin", "on_substep_end", "on_pre_optimizer_step", "on_optimizer_step", "on_step_end", "on_log",
      "on_save",
      "on_epoch_end", "on_prediction_step", "on_log", "on_evaluate",
      "on_log", "on_train_end",
      "on_prediction_step", "on_predict"};
  EXPECT_EQ(recorder->events, hf);
}

TEST(Checkpoint, SafetensorsRoundTripAndPythonReaderFromTheSpec) {
  TempDir dir;
  NamedTensors tensors = {{"a.weight", torch::randn({3, 5})},
                          {"b.bias", torch::arange(7, torch::kLong)},
                          {"c", torch::randn({2, 2}).to(torch::kBFloat16)}};
  const std::string bytes = EncodeSafetensors(tensors, {{"format", "pt"}});
  auto back = DecodeSafetensors(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  std::map<std::string, torch::Tensor> by_name(back->begin(), back->end());
  for (auto& [name, t] : tensors) EXPECT_TRUE(torch::equal(t, by_name.at(name))) << name;
  EXPECT_FALSE(DecodeSafetensors(bytes.substr(0, bytes.size() - 1)).ok());
  EXPECT_FALSE(DecodeSafetensors("abc").ok());

  // An independent reader, written from the format's description with only the Python
  // standard library, parses a saved model and agrees with torch.load of the state dict.
  auto t = MakeTrainer(Spec(dir / "out", "max_steps: 3"));
  ASSERT_TRUE(t->train().ok());
  ASSERT_TRUE(t->save_model(dir / "out").ok());
  const std::string reader = R"PY(
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
assert header["__metadata__"] == {"format": "pt"}
sizes = {"F32": 4, "I64": 8}
for name, info in sorted(header.items()):
    if name == "__metadata__": continue
    begin, end = info["data_offsets"]
    count = 1
    for d in info["shape"]: count *= d
    assert end - begin == count * sizes[info["dtype"]], name
    values = struct.unpack("<%df" % count, raw[8 + n + begin:8 + n + end])
    print(name, info["shape"], "%.6f" % sum(values))
)PY";
  testing::WriteFile(dir / "reader.py", reader);
  auto py = testing::RunCommand("/usr/bin/python3 " + dir / "reader.py" + " " + dir / "out/model.safetensors");
  ASSERT_EQ(py.exit_code, 0) << py.output;
  for (auto& [name, p] : t->model().NamedParameters()) {
    EXPECT_THAT(py.output, HasSubstr(absl::StrFormat("%s [", name))) << name;
    EXPECT_THAT(py.output, HasSubstr(absl::StrFormat("%.6f", p.sum().item<double>()).substr(0, 6)));
  }
  if (testing::RunCommand("/usr/bin/python3 -c 'import torch'").exit_code == 0) {
    auto same = testing::RunCommand(absl::StrCat(
        "/usr/bin/python3 -c \"import torch, json, struct\n"
        "raw = open('", dir / "out/model.safetensors", "', 'rb').read(); n = struct.unpack('<Q', raw[:8])[0]\n"
        "h = json.loads(raw[8:8+n]); sd = torch.load('", dir / "out/model_state_dict.pt", "')\n"
        "for k, v in h.items():\n"
        "    if k == '__metadata__': continue\n"
        "    b, e = v['data_offsets']\n"
        "    t = torch.frombuffer(bytearray(raw[8+n+b:8+n+e]), dtype=torch.float32).reshape(v['shape'])\n"
        "    assert torch.equal(t, sd[k]), k\n"
        "print('same')\""));
    EXPECT_THAT(same.output, HasSubstr("same"));
  }
}

TEST(Checkpoint, ExportsToTheRegistryFolder) {
  TempDir dir;
  auto t = MakeTrainer(Spec(dir / "out", "max_steps: 6, save_steps: 3, hub_dir: " + dir / "hub" +
                                             ", hub_strategy: checkpoint, hub_model_id: my-model"));
  ASSERT_TRUE(t->train().ok());
  ASSERT_TRUE(t->save_model(dir / "out").ok());
  EXPECT_TRUE(fs::exists(dir / "hub/my-model/model/model.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "hub/my-model/model/model.pt"));
  EXPECT_TRUE(CheckpointStore::Verify(dir / "hub/my-model/model").ok());
  ASSERT_TRUE(CheckpointStore::Verify(dir / "hub/my-model/last-checkpoint").ok());
  EXPECT_THAT(testing::ReadFile(dir / "hub/my-model/last-checkpoint/trainer_state.json"),
              HasSubstr("\"global_step\": 6"));
  // Training resumes from the exported last-checkpoint.
  auto resumed = MakeTrainer(Spec(dir / "out2", "max_steps: 8, resume_from_checkpoint: " +
                                                    dir / "hub/my-model/last-checkpoint"));
  auto out = resumed->train();
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->global_step, 8);
}

}  // namespace
}  // namespace trainerd
