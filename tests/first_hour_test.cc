// The first hour of a new user (issue 27), end to end on a real trainerd: what is
// listed exists, what validate accepts runs, and nothing misleads.
#include <filesystem>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_replace.h"
#include "tests/daemon_test_util.h"

namespace trainerd {
namespace {

using ::testing::HasSubstr;
using testing::Checkpoints;
using testing::Daemon;
using testing::Finished;
using testing::Spec;
using testing::Submit;
using testing::TempDir;
using testing::WaitFor;
using trainer::v1::Job;
namespace fs = std::filesystem;

// trainer-cli as a user on trainerd's machine runs it: the admin token found in the
// data root, nothing of the developer's own.
testing::CommandResult Cli(const Daemon& d, const std::string& args) {
  return testing::RunCommand(absl::StrCat("TRAINERD_DATA_ROOT=", d.data_root(), " XDG_CONFIG_HOME=", d.data_root(),
                                          "/config TRAINER_TOKEN= ", testing::BuildDir(),
                                          "/client/trainer-cli --server 127.0.0.1:", d.port(), " ", args));
}

// The small files tests/bad_specs refer to as $DATA.
void WriteBadSpecData(const fs::path& data) {
  fs::create_directories(data / "only-tokenizer");
  testing::WriteFile(data / "only-tokenizer/tokenizer.json", "{\"version\": \"1.0\", \"model\": {}}\n");
  testing::WriteFile(data / "table.parquet", "PAR1 not really\n");
  testing::WriteFile(data / "table.dat", "1 2 3\n");
  testing::WriteFile(data / "reviews.csv", "review,label\ngreat film,1\ndull,0\n");
  testing::WriteFile(data / "numbers.csv", "x,y,label\n1,2,0\n3,4,1\n");
  std::string sentiment, tokens, labelled;
  for (int i = 0; i < 20; ++i) {
    sentiment += absl::StrCat("{\"text\": \"day ", i, "\", \"label\": \"", i % 2 ? "pos" : "neg", "\"}\n");
    tokens += "{\"input_ids\": [1, 5, 9, 13, 17, 21, 25, 29]}\n";
    labelled += absl::StrCat("{\"input_ids\": [1, 5, 9, 13], \"label\": ", i % 2, "}\n");
  }
  testing::WriteFile(data / "sentiment.jsonl", sentiment);
  testing::WriteFile(data / "tokens.jsonl", tokens);
  testing::WriteFile(data / "tokens-labelled.jsonl", labelled);
}

// save_total_limit deletes old checkpoints: the list holds only the folders that exist,
// and BEST marks the one best checkpoint by metric_for_best_model (none without one).
// Before, every checkpoint ever saved was listed and each was starred as it was saved.
TEST(FirstHour, CheckpointsListsOnlyWhatExistsAndOneBest) {
  TempDir dir;
  Daemon d(dir.path().string());
  const std::string best = Submit(d, Spec("max_steps: 60, save_steps: 10, eval_strategy: steps, eval_steps: 10, "
                                          "save_total_limit: 2, metric_for_best_model: accuracy"));
  const std::string plain = Submit(d, Spec("max_steps: 30, save_steps: 10, save_total_limit: 2"));
  const Job job = WaitFor(d, best, Finished, 180);
  ASSERT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
  ASSERT_FALSE(job.best_checkpoint().empty());
  const auto listed = Checkpoints(d, best);
  ASSERT_GE(listed.size(), 2u);
  std::string paths;
  for (const auto& c : listed) paths += c.path() + (c.is_best() ? " (best)\n" : "\n");
  ASSERT_LE(listed.size(), 3u) << paths;  // the last two, and the best when it is older
  int starred = 0;
  for (const auto& c : listed) {
    EXPECT_TRUE(std::filesystem::is_directory(c.path())) << c.path();
    if (c.is_best()) {
      ++starred;
      EXPECT_EQ(c.path(), job.best_checkpoint());
    }
  }
  EXPECT_EQ(starred, 1);
  EXPECT_EQ(listed.back().step(), 60);

  // A deleted checkpoint cannot be resumed from, and says so.
  grpc::ClientContext ctx;
  d.Authorize(&ctx);
  trainer::v1::ResumeJobRequest resume;
  resume.set_job_id(best);
  resume.set_checkpoint_step(listed.front().step() == 10 ? 20 : 10);
  Job resumed;
  EXPECT_EQ(d.stub().ResumeJob(&ctx, resume, &resumed).error_code(), grpc::StatusCode::NOT_FOUND);

  const Job other = WaitFor(d, plain, Finished, 180);
  ASSERT_EQ(other.state(), trainer::v1::SUCCEEDED) << other.error();
  const auto kept = Checkpoints(d, plain);
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].step(), 20);
  EXPECT_EQ(kept[1].step(), 30);
  for (const auto& c : kept) EXPECT_FALSE(c.is_best()) << c.path();
}

// Every spec of tests/bad_specs is refused by `validate` (which asks trainerd) and by
// `submit` alike, exit 4, naming the field its first line names; none becomes a job.
// Before, validate ran its own checks: it passed specs that submit refused (paths) and
// specs the worker refused later (file contents, fp16 without a GPU, ...).
TEST(FirstHour, ValidateAndSubmitAgreeOnEveryBadSpec) {
  TempDir dir;
  const fs::path data = dir.path() / "data", specs = dir.path() / "specs";
  WriteBadSpecData(data);
  fs::create_directories(specs);
  const std::string hf = testing::SourceDir() + "/tests/fixtures/hf";
  Daemon d((dir.path() / "root").string(), {"--data-dir", data.string(), "--data-dir", hf, "--data-dir",
                                            "/usr/share/datasets", "--data-dir", "/usr/share/games/fortunes"});
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(testing::SourceDir() + "/tests/bad_specs")) {
    if (entry.path().extension() != ".yaml") continue;
    const std::string text = absl::StrReplaceAll(testing::ReadFile(entry.path().string()),
                                                 {{"$DATA", data.string()}, {"$HF", hf},
                                                  {"$FASHION", testing::kFashionDir}});
    const std::string header = text.substr(0, text.find('\n'));
    ASSERT_EQ(header.rfind("# refused: ", 0), 0u) << entry.path() << " lacks its \"# refused: FIELD\" line";
    const std::string field = header.substr(11, header.find(' ', 11) - 11) + ":";
    const fs::path spec = specs / entry.path().filename();
    testing::WriteFile(spec.string(), text);
    for (const char* verb : {"validate", "submit"}) {
      const testing::CommandResult r = Cli(d, absl::StrCat(verb, " ", spec.string()));
      EXPECT_EQ(r.exit_code, 4) << verb << " " << entry.path().filename() << ":\n" << r.output;
      EXPECT_THAT(r.output, HasSubstr(field)) << verb << " " << entry.path().filename();
    }
    ++checked;
  }
  EXPECT_GE(checked, 30);
  const testing::CommandResult listed = Cli(d, "list --json");
  EXPECT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_THAT(listed.output, ::testing::Not(HasSubstr("\"id\"")));  // nothing was queued
}

// What validate accepts runs: a good spec is valid for trainerd, and trainerd's answer
// names a replaced output_dir; without trainerd, validate checks on this machine and
// says so.
TEST(FirstHour, ValidateAsksTrainerdAndSaysWhereItChecked) {
  TempDir dir;
  Daemon d((dir.path() / "root").string());
  const std::string fashion = testing::kFashionDir;
  testing::WriteFile(dir / "job.yaml", absl::StrCat(
      "training_args: {output_dir: /tmp/mine, max_steps: 2}\nmodel: {type: mlp, hidden_sizes: [8]}\n",
      "data: {train: {path: ", fashion, "/train-images-idx3-ubyte.gz, labels_path: ", fashion,
      "/train-labels-idx1-ubyte.gz, limit: 64}}\n"));
  const testing::CommandResult valid = Cli(d, "validate " + dir / "job.yaml");
  EXPECT_EQ(valid.exit_code, 0) << valid.output;
  EXPECT_THAT(valid.output, HasSubstr("valid (checked by trainerd at 127.0.0.1:"));
  EXPECT_THAT(valid.output, HasSubstr("training_args.output_dir: not used"));
  EXPECT_THAT(valid.output, HasSubstr("memory: about"));
  EXPECT_THAT(Cli(d, "validate " + dir / "job.yaml" + " --set training_args.fsdp=full_shard").output,
              HasSubstr("per rank (full_shard on 1 rank): parameters"));
  const testing::CommandResult submitted = Cli(d, "submit " + dir / "job.yaml");
  ASSERT_EQ(submitted.exit_code, 0) << submitted.output;
  EXPECT_THAT(submitted.output, HasSubstr("training_args.output_dir: not used"));
  // The id is the last line (stdout); the warning came before it (stderr).
  const std::string id = std::string(absl::StripAsciiWhitespace(
      submitted.output.substr(submitted.output.rfind('\n', submitted.output.size() - 2) + 1)));
  EXPECT_EQ(WaitFor(d, id, Finished).state(), trainer::v1::SUCCEEDED);
  const testing::CommandResult status = Cli(d, "status " + id);
  EXPECT_THAT(status.output, HasSubstr("(not the spec's output_dir /tmp/mine"));
  // A GPU the job does not ask for: fp16 is refused by trainerd, and locally too.
  EXPECT_THAT(Cli(d, "validate " + dir / "job.yaml" + " --set training_args.fp16=true").output,
              HasSubstr("training_args.fp16: needs a CUDA GPU"));
  const testing::CommandResult local = testing::RunCommand(
      absl::StrCat(testing::BuildDir(), "/client/trainer-cli --server 127.0.0.1:", testing::FreePort(),
                   " --timeout 2 validate ", dir / "job.yaml", " --set training_args.fp16=true"));
  EXPECT_EQ(local.exit_code, 4) << local.output;
  EXPECT_THAT(local.output, HasSubstr("is not reachable; checking on this machine"));
  EXPECT_THAT(local.output, HasSubstr("training_args.fp16: needs a CUDA GPU"));
}

}  // namespace
}  // namespace trainerd
