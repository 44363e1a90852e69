// Fully sharded data parallelism (training_args.fsdp) end to end: real trainer-worker
// processes, one per rank, joined over Gloo on loopback. Sharding changes where the
// parameters, gradients and optimizer state live, never the run: N ranks with batch B
// log the losses of one rank with batch N x B, and save the same weights.
#include <signal.h>

#include <chrono>
#include <map>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "tests/rank_processes.h"
#include "tests/test_util.h"
#include "worker/models/safetensors.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::ExpectSameLosses;
using testing::ReadRunLog;
using testing::RunLog;
using testing::RunRanks;
using testing::StartRanks;
using testing::TempDir;

std::string Fixture(const std::string& name) {
  return (fs::absolute(testing::SourceDir()) / "tests/fixtures/hf" / name).string();
}

std::map<std::string, torch::Tensor> ReadWeights(const std::string& file) {
  auto decoded = DecodeSafetensors(testing::ReadFile(file));
  EXPECT_TRUE(decoded.ok()) << file << ": " << decoded.status();
  return decoded.ok() ? std::map<std::string, torch::Tensor>(decoded->begin(), decoded->end())
                      : std::map<std::string, torch::Tensor>{};
}

// Adam divides by the gradients' running size, which magnifies summation-order
// differences of tiny gradients: the weights agree to 5e-5 where the losses agree to 1e-5.
void ExpectSameWeights(const std::string& expected_file, const std::string& actual_file) {
  const auto expected = ReadWeights(expected_file), actual = ReadWeights(actual_file);
  ASSERT_EQ(expected.size(), actual.size());
  for (const auto& [name, t] : expected) {
    ASSERT_TRUE(actual.count(name)) << name;
    ASSERT_EQ(actual.at(name).sizes(), t.sizes()) << name;
    EXPECT_LT((actual.at(name).to(torch::kDouble) - t.to(torch::kDouble)).abs().max().item<double>(), 5e-5) << name;
  }
}

// A Llama folder with AdamW, weight decay (matrices decay, norms and biases do not: the
// flat shards keep the two apart), gradient clipping that bites, and gradient
// accumulation (no reduce-scatter on the first micro-batch): full_shard and
// shard_grad_op on 2 ranks and full_shard on 4 log the losses of one rank with the
// same global batch, and save the same final folder, which loads again.
TEST(Fsdp, ShardedRanksMatchOneRankOnALlamaFolder) {
  TempDir dir;
  const std::string rows = testing::WriteTokenRows(dir, 96);
  testing::WriteFile(dir / "job.yaml", absl::StrCat(
      "model: {name_or_path: ", Fixture("llama-gqa"), "}\n",
      "data: {train: {path: ", rows, "}, max_seq_length: 16}\n",
      "training_args: {max_steps: 6, per_device_train_batch_size: 2, gradient_accumulation_steps: 2, ",
      "learning_rate: 0.003, optim: adamw_torch, weight_decay: 0.1, max_grad_norm: 0.5, ",
      "logging_steps: 1, save_strategy: 'no', torch_num_threads: 1, do_eval: false}\n"));
  RunRanks(dir, 1, dir / "job.yaml",
           {"training_args.output_dir=" + dir / "one", "training_args.per_device_train_batch_size=8"});
  RunRanks(dir, 2, dir / "job.yaml",
           {"training_args.output_dir=" + dir / "full2", "training_args.per_device_train_batch_size=4",
            "training_args.fsdp=full_shard auto_wrap"});
  const std::string rank0 = testing::ReadFile(dir / "rank0.log");
  EXPECT_THAT(rank0, HasSubstr("Fully sharded data parallel (full_shard): 2 ranks over gloo"));
  EXPECT_THAT(rank0, HasSubstr("FSDP full_shard: this rank holds"));
  RunRanks(dir, 2, dir / "job.yaml",
           {"training_args.output_dir=" + dir / "grad2", "training_args.per_device_train_batch_size=4",
            "training_args.fsdp=shard_grad_op"});
  RunRanks(dir, 4, dir / "job.yaml", {"training_args.output_dir=" + dir / "full4", "training_args.fsdp=full_shard"});
  const RunLog one = ReadRunLog(dir / "one");
  ASSERT_EQ(one.loss.size(), 6u);
  EXPECT_LT(one.loss.at(6), one.loss.at(1));
  for (const char* run : {"full2", "grad2", "full4"}) {
    SCOPED_TRACE(run);
    ExpectSameLosses(one, ReadRunLog(dir / run));
    ExpectSameWeights(dir / "one/model.safetensors", dir / run + "/model.safetensors");
    EXPECT_TRUE(fs::exists(dir / run + "/config.json"));
  }
  // The gathered folder is an ordinary Hugging Face folder: it loads and trains on.
  testing::WriteFile(dir / "again.yaml", absl::StrCat(
      "model: {name_or_path: ", dir / "full2", "}\n", "data: {train: {path: ", rows, "}, max_seq_length: 16}\n",
      "training_args: {max_steps: 1, per_device_train_batch_size: 4, torch_num_threads: 1, do_eval: false, ",
      "output_dir: ", dir / "again", "}\n"));
  RunRanks(dir, 1, dir / "again.yaml", {});
}

// The built-in gpt (a Llama configuration) with bf16 autocast and gradient checkpointing
// (each block's forward replayed in backward, with its weights gathered again).
TEST(Fsdp, TheBuiltInGptWithBf16AndGradientCheckpointing) {
  TempDir dir;
  testing::WriteFile(dir / "job.yaml", absl::StrCat(
      "model: {type: gpt, hidden_size: 64, num_layers: 3, num_heads: 4}\n",
      "data: {train: {path: /usr/share/games/fortunes/cookie, format: text, limit: 256}, max_seq_length: 32, ",
      "tokenizer: {vocab_size: 300}}\n",
      "training_args: {max_steps: 5, per_device_train_batch_size: 4, learning_rate: 0.003, optim: adamw_torch, ",
      "bf16: true, gradient_checkpointing: true, logging_steps: 1, save_strategy: 'no', torch_num_threads: 1, ",
      "do_eval: false, seed: 7}\n"));
  RunRanks(dir, 1, dir / "job.yaml",
           {"training_args.output_dir=" + dir / "one", "training_args.per_device_train_batch_size=8"});
  RunRanks(dir, 2, dir / "job.yaml", {"training_args.output_dir=" + dir / "two", "training_args.fsdp=full_shard"});
  const RunLog one = ReadRunLog(dir / "one"), two = ReadRunLog(dir / "two");
  ASSERT_EQ(one.loss.size(), 5u);
  // bfloat16 matmuls round each rank's half of the batch as the whole batch rounds it,
  // but the loss sums add in another order: equal to bfloat16's precision.
  for (const auto& [step, loss] : one.loss) {
    ASSERT_TRUE(two.loss.count(step)) << step;
    EXPECT_NEAR(two.loss.at(step), loss, 2e-3 * loss) << "step " << step;
  }
}

// Exact resume of a full_shard run after a rank is killed with SIGKILL: each rank's
// optimizer shard, RNG and the data position come back, and the resumed run logs what an
// uninterrupted run logs. A constant learning rate lets the killed run be an endless one.
TEST(Fsdp, ResumesExactlyAfterARankIsKilled) {
  TempDir dir;
  const std::string rows = testing::WriteTokenRows(dir, 96);
  testing::WriteFile(dir / "job.yaml", absl::StrCat(
      "model: {name_or_path: ", Fixture("llama-gqa"), "}\n",
      "data: {train: {path: ", rows, "}, max_seq_length: 16}\n",
      "training_args: {max_steps: 40, per_device_train_batch_size: 4, learning_rate: 0.003, optim: adamw_torch, ",
      "lr_scheduler_type: constant, logging_steps: 1, save_steps: 4, torch_num_threads: 1, do_eval: false, ",
      "fsdp: full_shard}\n"));
  RunRanks(dir, 2, dir / "job.yaml", {"training_args.output_dir=" + dir / "full"});
  EXPECT_TRUE(fs::exists(dir / "full/checkpoint-8/optimizer_1.pt"));

  auto ranks = StartRanks(dir, 2, dir / "job.yaml",
                          {"training_args.output_dir=" + dir / "killed", "training_args.max_steps=1000000"});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(dir / "killed/checkpoint-8") && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(ranks[1]->pid(), SIGKILL);
  EXPECT_NE(ranks[0]->Wait(std::chrono::seconds(120)), std::optional<int>(0));
  ranks.clear();
  RunRanks(dir, 2, dir / "job.yaml",
           {"training_args.output_dir=" + dir / "killed", "training_args.resume_from_checkpoint=true"});
  const std::string log = testing::ReadFile(dir / "rank0.log");
  const size_t at = log.find("Resuming from ");
  ASSERT_NE(at, std::string::npos) << log;
  const int64_t resumed_step = std::stoll(log.substr(log.find("at step ", at) + 8));
  ASSERT_GE(resumed_step, 8);
  ASSERT_LT(resumed_step, 40) << "the killed run went past the reference's end before the kill";
  ExpectSameLosses(ReadRunLog(dir / "full"), ReadRunLog(dir / "killed"), resumed_step + 1);
  ExpectSameWeights(dir / "full/model.safetensors", dir / "killed/model.safetensors");
}

}  // namespace
}  // namespace trainerd
