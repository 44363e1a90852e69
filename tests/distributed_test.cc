// Data parallelism end to end: real trainer-worker processes joined over c10d (Gloo on
// loopback), launched the way trainerd or a person with torchrun-style variables does.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/rank_processes.h"
#include "tests/test_util.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::ExpectSameLosses;
using testing::ReadRunLog;
using testing::RankProcess;
using testing::RunLog;
using testing::RunRanks;
using testing::StartRanks;
using testing::TempDir;
using Clock = std::chrono::steady_clock;

// SGD and no dropout: the only differences between runs are summation orders.
std::string Spec(const TempDir& dir) {
  const std::string d = testing::kFashionDir;
  const std::string spec = absl::StrCat(R"(
training_args:
  max_steps: 24
  per_device_train_batch_size: 16
  gradient_accumulation_steps: 2
  per_device_eval_batch_size: 64
  learning_rate: 0.05
  optim: sgd
  logging_steps: 1
  save_steps: 10
  torch_num_threads: 1
  do_eval: true
model: {type: mlp, hidden_sizes: [32]}
data:
  train: {path: )", d, "/train-images-idx3-ubyte.gz, labels_path: ", d, R"(/train-labels-idx1-ubyte.gz, limit: 3000}
  eval_split: 0.1
  mean: 0.286
  std: 0.353
metrics: [accuracy]
)");
  testing::WriteFile(dir / "job.yaml", spec);
  return dir / "job.yaml";
}

TEST(Distributed, TwoRanksWithBatchBMatchOneRankWithBatch2B) {
  TempDir dir;
  const std::string spec = Spec(dir);
  RunRanks(dir, 1, spec, {"training_args.output_dir=" + dir / "one", "training_args.per_device_train_batch_size=32"});
  RunRanks(dir, 2, spec, {"training_args.output_dir=" + dir / "two"});
  RunLog one = ReadRunLog(dir / "one"), two = ReadRunLog(dir / "two");
  ASSERT_EQ(one.loss.size(), 24u);
  ExpectSameLosses(one, two);
  EXPECT_NEAR(two.eval["eval_loss"].get<double>(), one.eval["eval_loss"].get<double>(), 1e-5);
  EXPECT_EQ(two.eval["eval_accuracy"], one.eval["eval_accuracy"]);

  // Rank 0 logs; rank 1 logs warnings only (log_level_replica) and writes no results.
  const std::string rank0 = testing::ReadFile(dir / "rank0.log");
  EXPECT_THAT(rank0, HasSubstr("[rank 0]"));
  EXPECT_THAT(rank0, HasSubstr("2 ranks over gloo, total batch size = 64"));
  EXPECT_THAT(testing::ReadFile(dir / "rank1.log"), Not(HasSubstr(" info ")));
  // Every rank's RNG state is in the checkpoint, beside the shared parts.
  for (const char* name : {"rng_state_0.pth", "rng_state_1.pth", "model.safetensors", "optimizer.pt"}) {
    EXPECT_TRUE(fs::exists(fs::path(dir / "two") / "checkpoint-20" / name)) << name;
  }
  EXPECT_TRUE(fs::exists(dir / "two/all_results.json"));
}

// A Hugging Face folder (tests/fixtures/hf/llama-gqa) fine-tuned data parallel: 2 ranks
// with batch B log the losses of 1 rank with batch 2B, with and without ZeRO-1.
TEST(Distributed, AnHfLlamaFolderOnTwoRanksMatchesOneRankWithTwiceTheBatch) {
  TempDir dir;
  testing::WriteTokenRows(dir, 64);
  testing::WriteFile(dir / "job.yaml", absl::StrCat(
      "model: {name_or_path: ", std::filesystem::absolute(testing::SourceDir()).string(), "/tests/fixtures/hf/llama-gqa}\n",
      "data: {train: {path: ", dir / "rows.jsonl", "}, max_seq_length: 16}\n",
      "training_args: {max_steps: 8, per_device_train_batch_size: 4, learning_rate: 0.05, optim: sgd, ",
      "logging_steps: 1, save_strategy: 'no', torch_num_threads: 1, do_eval: false}\n"));
  RunRanks(dir, 1, dir / "job.yaml",
           {"training_args.output_dir=" + dir / "one", "training_args.per_device_train_batch_size=8"});
  RunRanks(dir, 2, dir / "job.yaml", {"training_args.output_dir=" + dir / "two"});
  // ZeRO-1: each rank keeps half the optimizer state; the run is the same.
  RunRanks(dir, 2, dir / "job.yaml",
           {"training_args.output_dir=" + dir / "zero", "training_args.optimizer_sharding=true"});
  RunLog one = ReadRunLog(dir / "one"), two = ReadRunLog(dir / "two"), zero = ReadRunLog(dir / "zero");
  ASSERT_EQ(one.loss.size(), 8u);
  ExpectSameLosses(one, two);
  ExpectSameLosses(one, zero);
  // Rank 0 saved the folder transformers loads.
  EXPECT_TRUE(fs::exists(dir / "two/config.json"));
}

// LoRA on that folder: only the adapters are reduced and sharded, and 2 ranks with batch B
// still log the losses of 1 rank with batch 2B, with and without ZeRO-1; the frozen base
// is in no bucket and no shard, and rank 0's checkpoints hold the adapter.
TEST(Distributed, LoraAdaptersOnTwoRanksMatchOneRankWithTwiceTheBatch) {
  TempDir dir;
  testing::WriteTokenRows(dir, 64);
  testing::WriteFile(dir / "job.yaml", absl::StrCat(
      "model: {name_or_path: ", std::filesystem::absolute(testing::SourceDir()).string(), "/tests/fixtures/hf/llama-gqa}\n",
      "peft: {r: 4, lora_alpha: 8, target_modules: [q_proj, v_proj, o_proj]}\n",
      "data: {train: {path: ", dir / "rows.jsonl", "}, max_seq_length: 16}\n",
      "training_args: {max_steps: 8, per_device_train_batch_size: 4, learning_rate: 0.05, optim: sgd, ",
      "logging_steps: 1, save_steps: 4, torch_num_threads: 1, do_eval: false}\n"));
  RunRanks(dir, 1, dir / "job.yaml",
           {"training_args.output_dir=" + dir / "one", "training_args.per_device_train_batch_size=8"});
  RunRanks(dir, 2, dir / "job.yaml", {"training_args.output_dir=" + dir / "two"});
  RunRanks(dir, 2, dir / "job.yaml",
           {"training_args.output_dir=" + dir / "zero", "training_args.optimizer_sharding=true"});
  RunLog one = ReadRunLog(dir / "one"), two = ReadRunLog(dir / "two"), zero = ReadRunLog(dir / "zero");
  ASSERT_EQ(one.loss.size(), 8u);
  ExpectSameLosses(one, two);
  ExpectSameLosses(one, zero);
  for (const char* name : {"adapter_model.safetensors", "adapter_config.json", "optimizer_0.pt", "optimizer_1.pt"}) {
    EXPECT_TRUE(fs::exists(fs::path(dir / "zero") / "checkpoint-4" / name)) << name;
  }
  EXPECT_FALSE(fs::exists(fs::path(dir / "zero") / "checkpoint-4" / "model.safetensors"));
  EXPECT_THAT(testing::ReadFile(dir / "rank0.log"), HasSubstr("trainable params: 2816 || all params: 160832"));
}

// GPT-2 and BERT folders too (a causal LM with learned positions and Conv1D weights; a
// sequence classifier with token types and padding): 2 ranks with batch B log the
// losses of 1 rank with batch 2B. Copies of the fixtures with dropout 0, since each rank
// draws its own dropout masks.
TEST(Distributed, Gpt2AndBertFoldersOnTwoRanksMatchOneRankWithTwiceTheBatch) {
  TempDir dir;
  std::string rows;
  for (int r = 0; r < 64; ++r) {
    rows += "{\"input_ids\": [";
    for (int k = 0; k < 10 + r % 7; ++k) absl::StrAppend(&rows, k ? ", " : "", 3 + (r * 7 + k * 13) % 500);
    absl::StrAppend(&rows, "], \"label\": ", r % 2, "}\n");
  }
  testing::WriteFile(dir / "rows.jsonl", rows);
  for (const std::string name : {"gpt2", "bert-seqcls"}) {
    const fs::path folder = dir.path() / name;
    fs::copy(fs::absolute(testing::SourceDir()) / "tests/fixtures/hf" / name, folder);
    nlohmann::json config = nlohmann::json::parse(testing::ReadFile(folder / "config.json"));
    for (const char* key : {"attn_pdrop", "embd_pdrop", "resid_pdrop", "attention_probs_dropout_prob",
                            "hidden_dropout_prob", "classifier_dropout"}) {
      if (config.contains(key)) config[key] = 0.0;
    }
    testing::WriteFile(folder / "config.json", config.dump(2));
    const bool classifier = name == "bert-seqcls";
    testing::WriteFile(dir / "job.yaml", absl::StrCat(
        "model: {name_or_path: ", folder.string(), "}\n",
        "data: {train: {path: ", dir / "rows.jsonl", classifier ? ", label_field: label" : "", "}, max_seq_length: 16}\n",
        "training_args: {max_steps: 6, per_device_train_batch_size: 4, learning_rate: 0.05, optim: sgd, ",
        "logging_steps: 1, save_strategy: 'no', torch_num_threads: 1, do_eval: false}\n"));
    RunRanks(dir, 1, dir / "job.yaml",
             {"training_args.output_dir=" + dir / (name + "-one"), "training_args.per_device_train_batch_size=8"});
    RunRanks(dir, 2, dir / "job.yaml", {"training_args.output_dir=" + dir / (name + "-two")});
    RunLog one = ReadRunLog(dir / (name + "-one")), two = ReadRunLog(dir / (name + "-two"));
    ASSERT_EQ(one.loss.size(), 6u) << name;
    ExpectSameLosses(one, two);
  }
}

TEST(Distributed, ResumesWithTheSameWorldSizeAndExplainsAnother) {
  TempDir dir;
  const std::string spec = Spec(dir);
  RunRanks(dir, 2, spec, {"training_args.output_dir=" + dir / "full", "training_args.log_level_replica=info"});
  // Every rank reports the same evaluation (outputs gathered across ranks).
  auto eval_line = [&](int rank) {
    const std::string log = testing::ReadFile(dir / absl::StrCat("rank", rank, ".log"));
    const size_t at = log.rfind("eval  step 24/24");
    return at == std::string::npos ? std::string("none") : log.substr(at, log.find('\n', at) - at);
  };
  EXPECT_THAT(eval_line(0), HasSubstr("eval_accuracy"));
  EXPECT_EQ(eval_line(1).substr(0, eval_line(1).find("eval_runtime")),
            eval_line(0).substr(0, eval_line(0).find("eval_runtime")));

  // Stopped after step 13; resumes from checkpoint-10 and logs what the full run logged.
  testing::WriteFile(dir / "stop.yaml", testing::ReadFile(spec) + "callbacks: [{name: stop_after_steps, steps: 13}]\n");
  RunRanks(dir, 2, dir / "stop.yaml", {"training_args.output_dir=" + dir / "resumed"});
  RunRanks(dir, 2, spec, {"training_args.output_dir=" + dir / "resumed", "training_args.resume_from_checkpoint=true"});
  ExpectSameLosses(ReadRunLog(dir / "full"), ReadRunLog(dir / "resumed"), /*from_step=*/11);

  // One rank cannot continue two ranks' data order: a clear refusal, exit status 2.
  auto ranks = StartRanks(dir, 1, spec, {"training_args.output_dir=" + dir / "resumed",
                                         "training_args.resume_from_checkpoint=" + dir / "resumed/checkpoint-10"});
  EXPECT_EQ(ranks[0]->Wait(std::chrono::seconds(120)), std::optional<int>(2));
  EXPECT_THAT(testing::ReadFile(dir / "rank0.log"), HasSubstr("was saved by 2 rank(s) and this run has 1"));
}

TEST(Distributed, OptimizerShardingTrainsTheSameAndSavesMemory) {
  TempDir dir;
  const std::string spec = Spec(dir);
  const std::vector<std::string> adam = {"training_args.optim=adamw_torch", "training_args.learning_rate=0.001",
                                         "training_args.weight_decay=0.01"};
  auto with = [&](std::vector<std::string> sets, const std::vector<std::string>& more) {
    sets.insert(sets.end(), more.begin(), more.end());
    return sets;
  };
  RunRanks(dir, 2, spec, with(adam, {"training_args.output_dir=" + dir / "plain"}));
  RunRanks(dir, 2, spec, with(adam, {"training_args.output_dir=" + dir / "zero", "training_args.optimizer_sharding=true"}));
  ExpectSameLosses(ReadRunLog(dir / "plain"), ReadRunLog(dir / "zero"));
  const std::string rank0 = testing::ReadFile(dir / "rank0.log");
  EXPECT_THAT(rank0, HasSubstr("ZeRO-1: this rank holds"));
  const std::string results = testing::ReadFile(dir / "zero/all_results.json");
  nlohmann::json r = nlohmann::json::parse(results);
  // Whole parameters are shared out (as PyTorch's ZeroRedundancyOptimizer does): rank 0
  // holds the moments of its parameters only.
  EXPECT_LT(r["train_optimizer_state_mb"].get<double>(), 0.99 * r["train_optimizer_state_unsharded_mb"].get<double>());
  for (const char* name : {"optimizer_0.pt", "optimizer_1.pt"}) {
    EXPECT_TRUE(fs::exists(fs::path(dir / "zero") / "checkpoint-20" / name)) << name;
  }

  // A sharded run resumes exactly from its sharded checkpoint.
  testing::WriteFile(dir / "stop.yaml", testing::ReadFile(spec) + "callbacks: [{name: stop_after_steps, steps: 13}]\n");
  RunRanks(dir, 2, dir / "stop.yaml",
           with(adam, {"training_args.output_dir=" + dir / "resumed", "training_args.optimizer_sharding=true"}));
  RunRanks(dir, 2, spec,
           with(adam, {"training_args.output_dir=" + dir / "resumed", "training_args.optimizer_sharding=true",
                       "training_args.resume_from_checkpoint=true"}));
  ExpectSameLosses(ReadRunLog(dir / "zero"), ReadRunLog(dir / "resumed"), /*from_step=*/11);
}

// Starts a long 2-rank run and waits until it trains (rank 0 has logged a step).
std::vector<std::unique_ptr<RankProcess>> StartLongRun(const TempDir& dir, int timeout_s) {
  auto ranks = StartRanks(dir, 2, Spec(dir),
                          {"training_args.output_dir=" + dir / "out", "training_args.max_steps=1000000",
                           "training_args.save_steps=1000000", absl::StrCat("training_args.ddp_timeout=", timeout_s)});
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (Clock::now() < deadline && testing::ReadFile(dir / "out/trainer_log.jsonl").find("\"train\"") == std::string::npos) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return ranks;
}

TEST(Distributed, AKilledRankMakesTheOtherFailFast) {
  TempDir dir;
  auto ranks = StartLongRun(dir, /*timeout_s=*/60);
  ASSERT_FALSE(ranks[0]->Wait(std::chrono::milliseconds(0))) << testing::ReadFile(dir / "rank0.log");
  kill(ranks[1]->pid(), SIGKILL);
  const auto killed = Clock::now();
  std::optional<int> code = ranks[0]->Wait(std::chrono::seconds(90));
  ASSERT_TRUE(code.has_value()) << "rank 0 still waits for its dead peer";
  EXPECT_NE(*code, 0);
  // Gloo sees the closed connection long before the 60 s timeout.
  EXPECT_LT(Clock::now() - killed, std::chrono::seconds(30));
  EXPECT_THAT(testing::ReadFile(dir / "rank0.log"), HasSubstr("across 2 ranks failed on rank 0"));
}

TEST(Distributed, AHungRankMakesTheOtherFailWithinTheTimeout) {
  TempDir dir;
  auto ranks = StartLongRun(dir, /*timeout_s=*/3);
  ASSERT_FALSE(ranks[0]->Wait(std::chrono::milliseconds(0))) << testing::ReadFile(dir / "rank0.log");
  kill(ranks[1]->pid(), SIGSTOP);  // alive, connected, silent
  const auto stopped = Clock::now();
  std::optional<int> code = ranks[0]->Wait(std::chrono::seconds(60));
  kill(ranks[1]->pid(), SIGKILL);
  ASSERT_TRUE(code.has_value()) << "rank 0 waited past ddp_timeout";
  EXPECT_NE(*code, 0);
  EXPECT_LT(Clock::now() - stopped, std::chrono::seconds(30));
  EXPECT_THAT(testing::ReadFile(dir / "rank0.log"), HasSubstr("hung past ddp_timeout"));
}

}  // namespace
}  // namespace trainerd
