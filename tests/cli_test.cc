// trainer-cli end to end against a real trainerd: every command, --json parsed back,
// logs -f ending with the job, exit codes, and the messages people see.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_replace.h"
#include "tests/daemon_test_util.h"

namespace trainerd {
namespace {

using ::testing::HasSubstr;
using testing::Daemon;
using testing::RunCommand;
using testing::TempDir;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = std::make_unique<Daemon>(dir_.path().string());
    const std::string d = testing::kFashionDir;
    testing::WriteFile(dir_ / "job.yaml", absl::StrCat(
        "training_args: {max_steps: 30, per_device_train_batch_size: 32, learning_rate: 0.002, logging_steps: 5,"
        " save_steps: 10, eval_strategy: steps, eval_steps: 15}\n"
        "model: {type: mlp, hidden_sizes: [32]}\n"
        "data: {train: {path: ", d, "/train-images-idx3-ubyte.gz, labels_path: ", d,
        "/train-labels-idx1-ubyte.gz, limit: 600}, mean: 0.286, std: 0.353, eval_split: 0.2}\n"
        "metrics: [accuracy]\n"));
  }
  testing::CommandResult Cli(const std::string& args) {
    // As on a one-person machine: trainer-cli finds the admin token in the data root
    // (and no token of the developer's own from ~/.config).
    return RunCommand(absl::StrCat("TRAINERD_DATA_ROOT=", dir_.path().string(), " XDG_CONFIG_HOME=", dir_ / "config",
                                   " TRAINER_TOKEN= ", testing::BuildDir(), "/client/trainer-cli --server 127.0.0.1:",
                                   daemon_->port(), " ", args));
  }
  std::string Submit(const std::string& extra = "") {
    auto r = Cli("submit " + dir_ / "job.yaml" + " " + extra);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return std::string(absl::StripAsciiWhitespace(r.output));
  }
  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
};

template <typename M>
M Parse(const std::string& json) {
  M m;
  auto s = google::protobuf::util::JsonStringToMessage(json, &m);
  EXPECT_TRUE(s.ok()) << s.ToString() << "\n" << json;
  return m;
}

TEST_F(CliTest, SubmitFollowPrintsLogsAndTheEvaluation) {
  auto r = Cli("submit " + dir_ / "job.yaml" + " --name followed --follow");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("train step 30/30"));
  EXPECT_THAT(r.output, HasSubstr("SUCCEEDED"));
  EXPECT_THAT(r.output, HasSubstr("eval_accuracy"));
}

TEST_F(CliTest, EveryCommandWithJsonParsedBack) {
  const std::string id = Submit("--name json-job --priority 3");
  ASSERT_EQ(id.size(), 12u) << id;
  auto waited = Cli("wait " + id);
  EXPECT_EQ(waited.exit_code, 0) << waited.output;

  auto status = Parse<trainer::v1::Job>(Cli("status --json " + id).output);
  EXPECT_EQ(status.id(), id);
  EXPECT_EQ(status.name(), "json-job");
  EXPECT_EQ(status.priority(), 3);
  EXPECT_EQ(status.state(), trainer::v1::SUCCEEDED);
  auto human = Cli("status " + id);
  EXPECT_THAT(human.output, HasSubstr("exited 0"));
  EXPECT_THAT(human.output, HasSubstr("30/30 (100%)"));
  EXPECT_THAT(human.output, ::testing::ContainsRegex("started +20[0-9-]+T[0-9:]+[-+Z]"));  // RFC 3339
  EXPECT_THAT(human.output, ::testing::ContainsRegex("duration +[0-9]+s"));

  auto list = Parse<trainer::v1::ListJobsResponse>(Cli("list --json --state SUCCEEDED").output);
  ASSERT_EQ(list.jobs_size(), 1);
  EXPECT_EQ(list.jobs(0).id(), id);
  EXPECT_THAT(Cli("list").output, HasSubstr("json-job"));
  EXPECT_EQ(Parse<trainer::v1::ListJobsResponse>(Cli("list --json --state succeeded").output).jobs_size(), 1);
  auto bogus = Cli("list --state BOGUS");
  EXPECT_EQ(bogus.exit_code, 2);
  EXPECT_THAT(bogus.output, HasSubstr("one of queued, starting, running"));

  auto metrics = Parse<trainer::v1::GetMetricsResponse>(Cli("metrics --json --name loss " + id).output);
  EXPECT_EQ(metrics.points_size(), 6);
  EXPECT_THAT(Cli("metrics --csv --name loss " + id).output,
              HasSubstr("name,split,step,epoch,value,attempt\nloss,train,5,"));
  EXPECT_THAT(Cli("metrics --plot --name loss " + id).output, HasSubstr("*"));

  auto checkpoints = Parse<trainer::v1::ListCheckpointsResponse>(Cli("checkpoints --json " + id).output);
  EXPECT_EQ(checkpoints.checkpoints_size(), 3);
  EXPECT_THAT(Cli("checkpoints " + id).output, HasSubstr("checkpoint-30"));

  auto logs = Cli("logs " + id + " --since 3");
  EXPECT_EQ(logs.exit_code, 0);
  EXPECT_THAT(logs.output, HasSubstr("train step 30/30"));
  EXPECT_THAT(Cli("logs " + id + " --level warning").output, ::testing::Not(HasSubstr("train step")));
  auto tail = Cli("logs " + id + " --tail 2");
  EXPECT_EQ(tail.exit_code, 0) << tail.output;
  EXPECT_EQ(std::count(tail.output.begin(), tail.output.end(), '\n'), 2) << tail.output;
  const std::string all_logs = Cli("logs " + id).output;
  EXPECT_EQ(Parse<trainer::v1::LogLine>(Cli("logs --json --tail 1 " + id).output).seq(),
            std::count(all_logs.begin(), all_logs.end(), '\n'));  // the last line: seqs run from 1

  // Resume from checkpoint 10 runs it again; then it can be deleted.
  auto resumed = Cli("resume " + id + " --checkpoint 10");
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr("QUEUED"));
  EXPECT_EQ(Cli("wait " + id).exit_code, 0);
  const auto twice = Parse<trainer::v1::Job>(Cli("status --json " + id).output);
  ASSERT_EQ(twice.attempts_size(), 2);
  EXPECT_EQ(twice.attempts(1).start_step(), 10);
  // The history as it stands: steps 5 and 10 of attempt 1, 15 to 30 of attempt 2.
  auto history = Parse<trainer::v1::GetMetricsResponse>(Cli("metrics --json --name loss " + id).output);
  ASSERT_EQ(history.points_size(), 6);
  for (const auto& p : history.points()) EXPECT_EQ(p.attempt(), p.step() <= 10 ? 1 : 2) << p.step();
  // Deleted without --files, the folder stays until its owner deletes it with --files.
  EXPECT_EQ(Cli("delete " + id).exit_code, 0);
  EXPECT_EQ(Cli("status " + id).exit_code, 3);
  EXPECT_TRUE(std::filesystem::exists(dir_ / ("jobs/" + id)));
  EXPECT_EQ(Cli("delete " + id + " --files").exit_code, 0);
  EXPECT_FALSE(std::filesystem::exists(dir_ / ("jobs/" + id)));
  EXPECT_EQ(Cli("delete " + id + " --files").exit_code, 3);
}

TEST_F(CliTest, CancelAndExitCodes) {
  testing::WriteFile(dir_ / "long.yaml", absl::StrReplaceAll(testing::ReadFile(dir_ / "job.yaml"),
                                                             {{"max_steps: 30", "max_steps: 100000"}}));
  auto r = Cli("submit " + dir_ / "long.yaml");
  const std::string id(absl::StripAsciiWhitespace(r.output));
  for (int i = 0; i < 200 && Parse<trainer::v1::Job>(Cli("status --json " + id).output).progress().step() < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_THAT(Cli("cancel " + id).output, HasSubstr("CANCELLING"));
  auto waited = Cli("wait " + id);
  EXPECT_EQ(waited.exit_code, 7) << waited.output;  // cancelled
  EXPECT_EQ(Cli("status nosuchjob").exit_code, 3);
  EXPECT_EQ(Cli("frobnicate").exit_code, 2);
  EXPECT_EQ(Cli("--version").exit_code, 0);
  EXPECT_THAT(Cli("submit --help").output, HasSubstr("Example"));
}

TEST_F(CliTest, InvalidSpecAndUnreachableServerMessages) {
  testing::WriteFile(dir_ / "bad.yaml", "training_args: {learning_rate: 0, optim: adam}\nmodel: {type: mlp}\n");
  auto bad = Cli("submit " + dir_ / "bad.yaml");
  EXPECT_EQ(bad.exit_code, 4);
  EXPECT_THAT(bad.output, HasSubstr("training_args.learning_rate: must be > 0"));
  EXPECT_THAT(bad.output, HasSubstr("training_args.optim: \"adam\" is not supported"));
  auto validated = Cli("validate " + dir_ / "bad.yaml");
  EXPECT_EQ(validated.exit_code, 4);
  EXPECT_THAT(validated.output, HasSubstr("data.train.path: required"));
  EXPECT_EQ(Cli("validate " + dir_ / "job.yaml").exit_code, 0);

  auto down = RunCommand(absl::StrCat(testing::BuildDir(), "/client/trainer-cli --timeout 2 --server 127.0.0.1:",
                                      testing::FreePort(), " list"));
  EXPECT_EQ(down.exit_code, 5);
  EXPECT_THAT(down.output, HasSubstr("cannot reach trainerd at 127.0.0.1:"));
  EXPECT_THAT(down.output, HasSubstr("is it running?"));
}

// wait and watch follow a job through a restart of trainerd, as logs -f does.
TEST_F(CliTest, WaitAndWatchReconnectAcrossARestartOfTrainerd) {
  testing::WriteFile(dir_ / "long.yaml", absl::StrReplaceAll(testing::ReadFile(dir_ / "job.yaml"),
                                                             {{"max_steps: 30", "max_steps: 600"}}));
  const std::string id(absl::StripAsciiWhitespace(Cli("submit " + dir_ / "long.yaml").output));
  const std::string wait_out = dir_ / "wait.out", watch_out = dir_ / "watch.out";
  auto background = [&](const std::string& command, const std::string& out) {
    return RunCommand(absl::StrCat("TRAINERD_DATA_ROOT=", dir_.path().string(), " XDG_CONFIG_HOME=", dir_ / "config",
                                   " TRAINER_TOKEN= ", testing::BuildDir(), "/client/trainer-cli --server 127.0.0.1:",
                                   daemon_->port(), " ", command, " ", id, " > ", out, " 2>&1; echo exit $? >> ", out,
                                   " &"));
  };
  background("wait", wait_out);
  background("watch", watch_out);
  testing::WaitFor(*daemon_, id, [](const trainer::v1::Job& j) { return j.progress().step() >= 5; });
  EXPECT_EQ(daemon_->Stop(SIGTERM), 0);
  std::this_thread::sleep_for(std::chrono::seconds(2));  // the followers see it gone
  daemon_->Start();
  testing::WaitFor(*daemon_, id, testing::Finished);
  for (const std::string& out : {wait_out, watch_out}) {
    std::string text;
    for (int i = 0; i < 100 && (text = testing::ReadFile(out)).find("exit ") == std::string::npos; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_THAT(text, HasSubstr("SUCCEEDED")) << out;
    EXPECT_THAT(text, HasSubstr("exit 0")) << out;
  }
}

// A LoRA job end to end: submitted and followed, its adapter checkpoints listed, its
// size in the metrics, its final folder and registry export peft adapter folders.
TEST_F(CliTest, LoraJobEndToEnd) {
  // A trainerd that may read the rows and the fixtures.
  const std::string fixtures = std::filesystem::absolute(testing::SourceDir()).string() + "/tests/fixtures/hf";
  TempDir in;  // outside the data root, which jobs may not read
  daemon_.reset();
  daemon_ = std::make_unique<Daemon>(dir_.path().string(),
                                     std::vector<std::string>{"--data-dir", in.path().string(), "--data-dir", fixtures});
  std::string rows;
  for (int r = 0; r < 48; ++r) {
    rows += "{\"input_ids\": [";
    for (int k = 0; k < 20 + r % 7; ++k) absl::StrAppend(&rows, k ? ", " : "", 3 + (r * 7 + k * 13) % 500);
    rows += "]}\n";
  }
  testing::WriteFile(in / "rows.jsonl", rows);
  testing::WriteFile(dir_ / "lora.yaml", absl::StrCat(
      "model: {name_or_path: ", fixtures, "/llama-gqa}\n",
      "peft: {r: 4, lora_alpha: 8, merge_on_save: true}\n",
      "data: {train: {path: ", in / "rows.jsonl", "}, max_seq_length: 16}\n",
      "training_args: {max_steps: 12, per_device_train_batch_size: 4, learning_rate: 0.01, logging_steps: 4, ",
      "save_steps: 4, save_total_limit: 2, do_eval: false, hub_dir: ", dir_ / "registry", ", hub_model_id: lora, hub_strategy: every_save}\n"));
  auto r = Cli("submit " + dir_ / "lora.yaml" + " --name lora --follow");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("SUCCEEDED"));
  const std::string id = Parse<trainer::v1::ListJobsResponse>(Cli("list --json").output).jobs(0).id();
  auto checkpoints = Parse<trainer::v1::ListCheckpointsResponse>(Cli("checkpoints --json " + id).output);
  ASSERT_EQ(checkpoints.checkpoints_size(), 2);  // save_total_limit
  EXPECT_EQ(checkpoints.checkpoints(1).step(), 12);
  auto size = Parse<trainer::v1::GetMetricsResponse>(Cli("metrics --json --name trainable_params " + id).output);
  ASSERT_EQ(size.points_size(), 1);
  EXPECT_EQ(size.points(0).value(), 2 * 4 * (128 + 96));  // q_proj and v_proj, r 4, two layers
  const auto job = Parse<trainer::v1::Job>(Cli("status --json " + id).output);
  const std::filesystem::path out = job.output_dir();
  for (const char* name : {"adapter_model.safetensors", "adapter_config.json", "tokenizer_config.json",
                           "merged/model.safetensors", "merged/config.json", "checkpoint-12/adapter_model.safetensors"}) {
    EXPECT_TRUE(std::filesystem::exists(out / name)) << name;
  }
  EXPECT_FALSE(std::filesystem::exists(out / "model.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "registry/lora/model/adapter_model.safetensors"))
      << Cli("logs " + id).output;
}

TEST_F(CliTest, WatchPrintsPlainLinesWhenPiped) {
  const std::string id = Submit();
  auto r = Cli("watch " + id + " | cat");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("\r")));
  EXPECT_THAT(r.output, HasSubstr("SUCCEEDED step 30/30 (100%)"));
  EXPECT_THAT(r.output, HasSubstr("samples/s"));
}

}  // namespace
}  // namespace trainerd
