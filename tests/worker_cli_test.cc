// End to end: the trainer-worker binary on a spec file, as a user runs it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/test_util.h"

namespace trainerd {
namespace {

using ::testing::HasSubstr;
using testing::RunCommand;
using testing::TempDir;

std::string Worker() { return testing::BuildDir() + "/worker/trainer-worker"; }

std::string TinySpec(const std::string& output_dir) {
  const std::string d = testing::kFashionDir;
  return absl::StrCat(R"(
training_args:
  output_dir: )", output_dir, R"(
  num_train_epochs: 2
  per_device_train_batch_size: 32
  per_device_eval_batch_size: 100
  learning_rate: 2.0e-3
  logging_steps: 5
  eval_strategy: epoch
  do_predict: true
model: {type: mlp, hidden_sizes: [64], dropout: 0.1}
data:
  train: {path: )", d, "/train-images-idx3-ubyte.gz, labels_path: ", d, R"(/train-labels-idx1-ubyte.gz, limit: 600}
  test: {path: )", d, "/t10k-images-idx3-ubyte.gz, labels_path: ", d, R"(/t10k-labels-idx1-ubyte.gz, limit: 300}
  eval_split: 0.2
  mean: 0.286
  std: 0.353
metrics: [accuracy, f1]
)");
}

// An IDX pair with no examples: magic, count 0 (and 28 x 28 for images).
void WriteEmptyIdx(const TempDir& dir) {
  const std::string images("\x00\x00\x08\x03\x00\x00\x00\x00\x00\x00\x00\x1c\x00\x00\x00\x1c", 16);
  const std::string labels("\x00\x00\x08\x01\x00\x00\x00\x00", 8);
  testing::WriteFile(dir / "empty-images", images);
  testing::WriteFile(dir / "empty-labels", labels);
}

// An empty split is an invalid spec (exit 2, named), not a LibTorch error from deep
// inside (it was exit 1 with a backtrace, and retried by trainerd).
TEST(WorkerCli, AnEmptySplitIsRefusedByName) {
  TempDir dir;
  WriteEmptyIdx(dir);
  const std::string d = testing::kFashionDir;
  testing::WriteFile(dir / "job.yaml", absl::StrCat(
      "training_args: {output_dir: ", dir / "out", ", max_steps: 4, eval_strategy: steps, eval_steps: 2}\n",
      "model: {type: mlp, hidden_sizes: [8]}\n",
      "data:\n  train: {path: ", d, "/train-images-idx3-ubyte.gz, labels_path: ", d,
      "/train-labels-idx1-ubyte.gz, limit: 64}\n",
      "  eval: {path: ", dir / "empty-images", ", labels_path: ", dir / "empty-labels", ", format: idx}\n"));
  auto r = RunCommand(absl::StrCat(Worker(), " --spec ", dir / "job.yaml"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("data.eval: holds no examples"));
}

TEST(WorkerCli, TrainsEvaluatesPredictsAndSaves) {
  TempDir dir;
  testing::WriteFile(dir / "job.yaml", TinySpec(dir / "out"));
  auto r = RunCommand(absl::StrCat(Worker(), " --spec ", dir / "job.yaml",
                                   " --set training_args.seed=7 --metrics-fd 3 3>", dir / "fd.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // One human line per log step: step/total, epoch, loss, lr, grad_norm, samples/s.
  EXPECT_THAT(r.output, HasSubstr("train step 5/30"));
  EXPECT_THAT(r.output, HasSubstr("learning_rate"));
  EXPECT_THAT(r.output, HasSubstr("grad_norm"));
  EXPECT_THAT(r.output, HasSubstr("samples_per_second"));

  const std::string jsonl = testing::ReadFile(dir / "out/trainer_log.jsonl");
  EXPECT_EQ(jsonl, testing::ReadFile(dir / "fd.jsonl"));
  std::vector<std::string> lines = absl::StrSplit(jsonl, '\n', absl::SkipEmpty());
  int train = 0, eval = 0, test = 0;
  for (const auto& line : lines) {
    train += line.find("\"kind\":\"train\"") != std::string::npos;
    eval += line.find("\"kind\":\"eval\"") != std::string::npos;
    test += line.find("\"kind\":\"test\"") != std::string::npos;
  }
  EXPECT_EQ(train, 6);  // 30 steps, every 5
  EXPECT_EQ(eval, 2);   // two epochs; the final evaluate is the second one's (same weights)
  EXPECT_THAT(r.output, HasSubstr("The final evaluation is step 30's"));
  EXPECT_EQ(test, 1);

  const std::string results = testing::ReadFile(dir / "out/all_results.json");
  EXPECT_THAT(results, HasSubstr("\"eval_accuracy\""));
  EXPECT_THAT(results, HasSubstr("\"test_accuracy\""));
  const size_t at = results.find("\"test_accuracy\": ");
  EXPECT_GT(std::stod(results.substr(at + 17)), 0.55);  // chance is 0.1

  EXPECT_TRUE(std::filesystem::exists(dir / "out/model.pt"));
  EXPECT_TRUE(std::filesystem::exists(dir / "out/model_state_dict.pt"));
  EXPECT_TRUE(std::filesystem::exists(dir / "out/job_spec.json"));
  const std::string predictions = testing::ReadFile(dir / "out/predictions.csv");
  EXPECT_EQ(std::count(predictions.begin(), predictions.end(), '\n'), 301);  // header + 300

  // Python's torch loads both forms of the final model, where Debian's python3-torch is.
  if (RunCommand("/usr/bin/python3 -c 'import torch'").exit_code == 0) {
    auto py = RunCommand(absl::StrCat(
        "/usr/bin/python3 -c \"import torch; m = torch.jit.load('", dir / "out/model.pt",
        "'); sd = torch.load('", dir / "out/model_state_dict.pt",
        "'); print(tuple(m(torch.zeros(2, 1, 28, 28)).shape), sorted(sd)[0])\""));
    EXPECT_EQ(py.exit_code, 0) << py.output;
    EXPECT_THAT(py.output, HasSubstr("(2, 10) head.bias"));
  }

  // A second run into the same folder refuses to overwrite without overwrite_output_dir.
  auto again = RunCommand(absl::StrCat(Worker(), " --spec ", dir / "job.yaml"));
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_THAT(again.output, HasSubstr("training_args.output_dir"));

  // With overwrite_output_dir the new run starts trainer_log.jsonl afresh, and the
  // temporary folder of a worker killed while saving (its pid is past pid_max, so dead)
  // is gone before this run saves anything.
  const std::string dead_pid = std::to_string(std::stoll(testing::ReadFile("/proc/sys/kernel/pid_max")) + 1);
  std::filesystem::create_directories(dir / ("out/.checkpoint-12.tmp-" + dead_pid));
  testing::WriteFile(dir / ("out/.checkpoint-12.tmp-" + dead_pid + "/model.safetensors"), "half");
  auto overwrite = RunCommand(absl::StrCat(Worker(), " --spec ", dir / "job.yaml",
                                           " --set training_args.overwrite_output_dir=true --set training_args.max_steps=10",
                                           " --set training_args.do_predict=false"));
  ASSERT_EQ(overwrite.exit_code, 0) << overwrite.output;
  EXPECT_THAT(overwrite.output, HasSubstr("An interrupted save: removed"));
  EXPECT_FALSE(std::filesystem::exists(dir / ("out/.checkpoint-12.tmp-" + dead_pid)));
  const std::string fresh = testing::ReadFile(dir / "out/trainer_log.jsonl");
  EXPECT_THAT(fresh, HasSubstr("\"max_steps\":10"));
  EXPECT_THAT(fresh, ::testing::Not(HasSubstr("\"max_steps\":30")));
  EXPECT_THAT(fresh, ::testing::Not(HasSubstr("\"kind\":\"test\"")));
}

TEST(WorkerCli, InvalidSpecListsEveryBadField) {
  TempDir dir;
  testing::WriteFile(dir / "bad.yaml", R"(
training_args: {learning_rate: -1, optim: adam, per_device_train_batch_size: 0}
model: {type: transformer}
data: {train: {path: /no/such/file.gz, labels_path: /no/labels.gz}}
)");
  auto r = RunCommand(absl::StrCat(Worker(), " --spec ", dir / "bad.yaml"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("training_args.learning_rate: must be > 0"));
  EXPECT_THAT(r.output, HasSubstr("training_args.optim: \"adam\" is not supported"));
  EXPECT_THAT(r.output, HasSubstr("training_args.per_device_train_batch_size: must be >= 1"));
  EXPECT_THAT(r.output, HasSubstr("model.type: \"transformer\" is not supported"));
  EXPECT_THAT(r.output, HasSubstr("data.train.path: no such file"));

  testing::WriteFile(dir / "typo.yaml", "training_args: {learning_rat: 0.1}\n");
  auto typo = RunCommand(absl::StrCat(Worker(), " --spec ", dir / "typo.yaml"));
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_THAT(typo.output, HasSubstr("training_args.learning_rat: unknown field"));

  auto missing = RunCommand(absl::StrCat(Worker(), " --spec ", dir / "none.yaml"));
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.output, HasSubstr("cannot be read"));
}

TEST(WorkerCli, HelpAndValidateOnly) {
  auto help = RunCommand(Worker() + " --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.output, HasSubstr("--spec"));
  EXPECT_THAT(help.output, HasSubstr("--set"));
  auto example = RunCommand(absl::StrCat(Worker(), " --validate-only --spec ", testing::SourceDir(),
                                         "/examples/fashion-mnist-cnn.yaml"));
  EXPECT_EQ(example.exit_code, 0) << example.output;
  EXPECT_THAT(example.output, HasSubstr("valid"));
}

}  // namespace
}  // namespace trainerd

namespace trainerd {
namespace {

// The "loss" values of a trainer_state.json's log_history, in order.
std::vector<std::string> LoggedLosses(const std::string& trainer_state) {
  std::vector<std::string> out;
  size_t at = 0;
  while ((at = trainer_state.find("\"loss\": ", at)) != std::string::npos) {
    at += 8;
    out.push_back(trainer_state.substr(at, trainer_state.find_first_of(",\n", at) - at));
  }
  return out;
}

// kill -9 in the middle of training, then resume: the result is bit-identical to a run
// that was never interrupted.
TEST(WorkerCli, ResumeAfterKillMinus9IsExact) {
  TempDir dir;
  const std::string d = testing::kFashionDir;
  testing::WriteFile(dir / "job.yaml", absl::StrCat(R"(
training_args:
  max_steps: 600
  per_device_train_batch_size: 32
  learning_rate: 1.0e-3
  logging_steps: 7
  save_steps: 20
  save_total_limit: 3
model: {type: cnn, conv_channels: [8], hidden_sizes: [16], dropout: 0.1}
data:
  train: {path: )", d, "/train-images-idx3-ubyte.gz, labels_path: ", d, R"(/train-labels-idx1-ubyte.gz, limit: 2000}
  mean: 0.286
  std: 0.353
)"));
  const std::string job = absl::StrCat(Worker(), " --spec ", dir / "job.yaml");
  auto full = RunCommand(job + " --set training_args.output_dir=" + dir / "full");
  ASSERT_EQ(full.exit_code, 0) << full.output;

  // Start the same job, wait for its second checkpoint, and kill it hard.
  const std::string out = dir / "killed";
  auto killed = RunCommand(absl::StrCat(
      job, " --set training_args.output_dir=", out, " > ", dir / "killed.log", " 2>&1 & pid=$!; ",
      "for i in $(seq 1 3000); do [ -e ", out, "/checkpoint-40/MANIFEST.json ] && break; sleep 0.01; done; ",
      "if kill -0 $pid 2>/dev/null; then kill -9 $pid; wait $pid; echo killed $?; else echo finished; fi"));
  ASSERT_THAT(killed.output, HasSubstr("killed 137")) << "the job ended before it could be killed";
  EXPECT_FALSE(std::filesystem::exists(out + "/model.safetensors"));

  auto resumed = RunCommand(job + " --set training_args.output_dir=" + out + " --resume-from-checkpoint true");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr("Resuming from"));
  EXPECT_THAT(resumed.output, HasSubstr("not replayed"));
  EXPECT_EQ(testing::ReadFile(dir / "full/model.safetensors"), testing::ReadFile(out + "/model.safetensors"));
  const auto losses = LoggedLosses(testing::ReadFile(dir / "full/trainer_state.json"));
  EXPECT_EQ(losses.size(), 600u / 7);
  EXPECT_EQ(losses, LoggedLosses(testing::ReadFile(out + "/trainer_state.json")));
  // Rotation kept save_total_limit checkpoints.
  int checkpoints = 0;
  for (const auto& e : std::filesystem::directory_iterator(out)) {
    checkpoints += e.path().filename().string().rfind("checkpoint-", 0) == 0;
  }
  EXPECT_EQ(checkpoints, 3);
}

// report_to: tensorboard writes event files that an independent reader (Python, from
// the public record and protobuf definitions) reads back: every logged metric at its
// step, with HF's tags, equal to the trainer_log.jsonl values as float32. A resumed run
// adds its file to the same folder (the newest under output_dir/runs).
TEST(WorkerCli, TensorBoardEventFilesReadBackByAnIndependentReader) {
  TempDir dir;
  const std::string d = testing::kFashionDir;
  testing::WriteFile(dir / "job.yaml", absl::StrCat(
      "training_args: {output_dir: ", dir / "out", ", max_steps: 10, logging_steps: 5, save_steps: 10,"
      " eval_strategy: steps, eval_steps: 10, report_to: tensorboard}\n",
      "model: {type: mlp, hidden_sizes: [16]}\n",
      "data: {train: {path: ", d, "/train-images-idx3-ubyte.gz, labels_path: ", d,
      "/train-labels-idx1-ubyte.gz, limit: 400}, eval_split: 0.25, mean: 0.286, std: 0.353}\n"));
  const std::string job = absl::StrCat(Worker(), " --spec ", dir / "job.yaml");
  auto first = RunCommand(job);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  auto resumed = RunCommand(job + " --set training_args.max_steps=20 --resume-from-checkpoint true");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  std::vector<std::string> runs;
  for (const auto& e : std::filesystem::directory_iterator(dir / "out/runs")) runs.push_back(e.path().string());
  ASSERT_EQ(runs.size(), 1u);
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(runs[0])) files += e.path().filename().string().rfind("events.out.tfevents.", 0) == 0;
  EXPECT_EQ(files, 2);  // one per run

  auto read = RunCommand(absl::StrCat("/usr/bin/python3 ", testing::SourceDir(), "/tests/tensorboard_reader.py ", runs[0]));
  ASSERT_EQ(read.exit_code, 0) << read.output;
  const nlohmann::json events = nlohmann::json::parse(read.output, nullptr, false);
  ASSERT_TRUE(events.is_object()) << read.output;
  EXPECT_EQ(events["file_versions"], nlohmann::json::array({"brain.Event:2", "brain.Event:2"}));
  // train/loss at 5, 10 (first run) and 15, 20 (resumed): as trainer_log.jsonl says.
  std::vector<std::pair<int64_t, float>> logged;
  for (const std::string& line : std::vector<std::string>(absl::StrSplit(testing::ReadFile(dir / "out/trainer_log.jsonl"), '\n'))) {
    const nlohmann::json r = nlohmann::json::parse(line, nullptr, false);
    if (r.is_object() && r["kind"] == "train") logged.emplace_back(r["step"].get<int64_t>(), r["loss"].get<float>());
  }
  std::vector<std::pair<int64_t, float>> scalars;
  for (const auto& point : events["scalars"]["train/loss"]) scalars.emplace_back(point[0].get<int64_t>(), point[1].get<float>());
  EXPECT_EQ(scalars, logged);
  EXPECT_EQ(scalars.size(), 4u);
  ASSERT_TRUE(events["scalars"].contains("eval/loss"));
  EXPECT_EQ(events["scalars"]["eval/loss"].size(), 2u);  // steps 10 and 20, once each
  EXPECT_TRUE(events["scalars"].contains("train/learning_rate"));
  EXPECT_TRUE(events["scalars"].contains("train/train_runtime"));

  // A corrupted byte is caught by the reader's checksums (so the check above can fail).
  std::string bytes = testing::ReadFile(runs[0] + "/" + std::filesystem::directory_iterator(runs[0])->path().filename().string());
  bytes[bytes.size() / 2] ^= 0x5a;
  TempDir bad;
  testing::WriteFile(bad / "events.out.tfevents.1.host", bytes);
  EXPECT_NE(RunCommand("/usr/bin/python3 " + testing::SourceDir() + "/tests/tensorboard_reader.py " + bad.path().string()).exit_code, 0);
}

}  // namespace
}  // namespace trainerd
