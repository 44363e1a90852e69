// Fully sharded data parallelism (training_args.fsdp) end to end: real trainer-worker
// processes, one per rank, joined over Gloo on loopback. Sharding changes where the
// parameters, gradients and optimizer state live, never the run: N ranks with batch B
// log the losses of one rank with batch N x B, and save the same weights.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <thread>
#include <tuple>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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

// The tensors of a safetensors file, or of a model folder (model.safetensors, or the
// shards its model.safetensors.index.json lists).
std::map<std::string, torch::Tensor> ReadWeights(const std::string& path) {
  std::vector<std::string> files = {path};
  if (fs::is_directory(path)) {
    files = {path + "/model.safetensors"};
    if (!fs::exists(files[0])) {
      files.clear();
      const auto index = nlohmann::json::parse(testing::ReadFile(path + "/model.safetensors.index.json"));
      std::set<std::string> shards;
      for (const auto& [name, shard] : index["weight_map"].items()) shards.insert(shard.get<std::string>());
      for (const std::string& shard : shards) files.push_back(path + "/" + shard);
    }
  }
  std::map<std::string, torch::Tensor> out;
  for (const std::string& file : files) {
    auto decoded = DecodeSafetensors(testing::ReadFile(file));
    EXPECT_TRUE(decoded.ok()) << file << ": " << decoded.status();
    if (decoded.ok()) out.insert(decoded->begin(), decoded->end());
  }
  return out;
}

// The largest "<marker><number> MB" any of ranks 0..ranks-1 logged in dir/rank<r>.log.
double MaxLoggedMb(const std::string& dir, int ranks, const std::string& marker) {
  double most = -1;
  for (int rank = 0; rank < ranks; ++rank) {
    const std::string log = testing::ReadFile(dir + absl::StrCat("/rank", rank, ".log"));
    const size_t at = log.find(marker);
    EXPECT_NE(at, std::string::npos) << "rank " << rank << " did not log \"" << marker << "\"";
    if (at != std::string::npos) most = std::max(most, std::stod(log.substr(at + marker.size())));
  }
  return most;
}

// Writes a job on the llama-gqa fixture and the token `rows` to `path`: `training_args`
// is the inside of its training_args mapping, `extra` more top-level YAML.
void WriteLlamaJob(const std::string& path, const std::string& rows, const std::string& training_args,
                   const std::string& extra = "") {
  testing::WriteFile(path, absl::StrCat("model: {name_or_path: ", Fixture("llama-gqa"), "}\n", extra,
                                        "data: {train: {path: ", rows, "}, max_seq_length: 16}\n",
                                        "training_args: {", training_args, "}\n"));
}

// Adam divides by the gradients' running size, which magnifies summation-order
// differences of tiny gradients: the weights agree to 5e-5 where the losses agree to 1e-5.
void ExpectSameWeights(const std::string& expected, const std::string& actual_path) {
  const auto expected_weights = ReadWeights(expected), actual = ReadWeights(actual_path);
  ASSERT_FALSE(expected_weights.empty());
  ASSERT_EQ(expected_weights.size(), actual.size());
  for (const auto& [name, t] : expected_weights) {
    ASSERT_TRUE(actual.count(name)) << name;
    ASSERT_EQ(actual.at(name).sizes(), t.sizes()) << name;
    EXPECT_LT((actual.at(name).to(torch::kDouble) - t.to(torch::kDouble)).abs().max().item<double>(), 5e-5) << name;
  }
}

// A Llama folder with AdamW, weight decay (matrices decay, norms and biases do not: the
// flat shards keep the two apart), gradient clipping that bites, and gradient
// accumulation (no reduce-scatter on the first micro-batch): full_shard (prefetching
// in backward) and shard_grad_op on 2 ranks and full_shard on 4 (prefetching in forward
// too) log the losses of one rank with the same global batch, and save the same final
// folder, which loads again.
TEST(Fsdp, ShardedRanksMatchOneRankOnALlamaFolder) {
  TempDir dir;
  const std::string rows = testing::WriteTokenRows(dir, 96);
  WriteLlamaJob(dir / "job.yaml", rows,
                "max_steps: 6, per_device_train_batch_size: 2, gradient_accumulation_steps: 2, "
                "learning_rate: 0.003, optim: adamw_torch, weight_decay: 0.1, max_grad_norm: 0.5, "
                "logging_steps: 1, save_strategy: 'no', torch_num_threads: 1, do_eval: false");
  RunRanks(dir, 1, dir / "job.yaml",
           {"training_args.output_dir=" + dir / "one", "training_args.per_device_train_batch_size=8"});
  RunRanks(dir, 2, dir / "job.yaml",
           {"training_args.output_dir=" + dir / "full2", "training_args.per_device_train_batch_size=4",
            "training_args.fsdp=full_shard auto_wrap"});
  const std::string rank0 = testing::ReadFile(dir / "rank0.log");
  EXPECT_THAT(rank0, HasSubstr("Fully sharded data parallel (full_shard): 2 rank(s) over gloo"));
  EXPECT_THAT(rank0, HasSubstr("FSDP full_shard: this rank holds"));
  RunRanks(dir, 2, dir / "job.yaml",
           {"training_args.output_dir=" + dir / "grad2", "training_args.per_device_train_batch_size=4",
            "training_args.fsdp=shard_grad_op"});
  RunRanks(dir, 4, dir / "job.yaml",
           {"training_args.output_dir=" + dir / "full4", "training_args.fsdp=full_shard",
            "training_args.fsdp_config.forward_prefetch=true", "model.max_shard_size=200KB"});
  const RunLog one = ReadRunLog(dir / "one");
  ASSERT_EQ(one.loss.size(), 6u);
  EXPECT_LT(one.loss.at(6), one.loss.at(1));
  for (const char* run : {"full2", "grad2", "full4"}) {
    SCOPED_TRACE(run);
    ExpectSameLosses(one, ReadRunLog(dir / run));
    ExpectSameWeights(dir / "one", dir / run);
    EXPECT_TRUE(fs::exists(dir / run + "/config.json"));
  }
  // Written unit by unit into save_pretrained's shards (the fixture is 634 KB).
  EXPECT_FALSE(fs::exists(dir / "full4/model.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "full4/model.safetensors.index.json"));
  // The gathered folder is an ordinary Hugging Face folder: it loads and trains on.
  testing::WriteFile(dir / "again.yaml", absl::StrCat(
      "model: {name_or_path: ", dir / "full4", "}\n", "data: {train: {path: ", rows, "}, max_seq_length: 16}\n"
                "training_args: {max_steps: 1, per_device_train_batch_size: 4, torch_num_threads: 1, do_eval: false, "
                "output_dir: ", dir / "again", "}\n"));
  RunRanks(dir, 1, dir / "again.yaml", {});
}

// The built-in gpt (a Llama configuration) with bf16 autocast and gradient checkpointing
// (each block's forward replayed in backward, with its weights gathered again).
TEST(Fsdp, TheBuiltInGptWithBf16AndGradientCheckpointing) {
  TempDir dir;
  testing::WriteFile(dir / "job.yaml", absl::StrCat(
      "model: {type: gpt, hidden_size: 64, num_layers: 3, num_heads: 4}\n"
                "data: {train: {path: /usr/share/games/fortunes/cookie, format: text, limit: 256}, max_seq_length: 32, "
                "tokenizer: {vocab_size: 300}}\n"
                "training_args: {max_steps: 5, per_device_train_batch_size: 4, learning_rate: 0.003, optim: adamw_torch, "
                "bf16: true, gradient_checkpointing: true, logging_steps: 1, save_strategy: 'no', torch_num_threads: 1, "
                "do_eval: false, seed: 7}\n"));
  RunRanks(dir, 1, dir / "job.yaml",
           {"training_args.output_dir=" + dir / "one", "training_args.per_device_train_batch_size=8"});
  RunRanks(dir, 2, dir / "job.yaml",
           {"training_args.output_dir=" + dir / "two", "training_args.fsdp=full_shard",
            "training_args.fsdp_config.forward_prefetch=true"});
  const RunLog one = ReadRunLog(dir / "one"), two = ReadRunLog(dir / "two");
  ASSERT_EQ(one.loss.size(), 5u);
  // bfloat16 matmuls round each rank's half of the batch as the whole batch rounds it,
  // but the loss sums add in another order: equal to bfloat16's precision.
  for (const auto& [step, loss] : one.loss) {
    ASSERT_TRUE(two.loss.count(step)) << step;
    EXPECT_NEAR(two.loss.at(step), loss, 2e-3 * loss) << "step " << step;
  }
}

// LoRA with full_shard: the frozen base weights are sharded and gathered with their
// blocks, without gradients; only the adapters train, reduce-scatter and checkpoint.
// 2 ranks log the losses of one rank with the same global batch and save its adapter.
TEST(Fsdp, LoraAdaptersWithFullShardMatchOneRank) {
  TempDir dir;
  const std::string rows = testing::WriteTokenRows(dir, 64);
  WriteLlamaJob(dir / "job.yaml", rows,
                "max_steps: 6, per_device_train_batch_size: 4, learning_rate: 0.01, optim: adamw_torch, "
                "max_grad_norm: 0.5, logging_steps: 1, save_steps: 3, torch_num_threads: 1, do_eval: false",
                "peft: {r: 4, lora_alpha: 8, target_modules: [q_proj, v_proj]}\n");
  RunRanks(dir, 1, dir / "job.yaml",
           {"training_args.output_dir=" + dir / "one", "training_args.per_device_train_batch_size=8"});
  RunRanks(dir, 2, dir / "job.yaml", {"training_args.output_dir=" + dir / "two", "training_args.fsdp=full_shard"});
  const RunLog one = ReadRunLog(dir / "one");
  ASSERT_EQ(one.loss.size(), 6u);
  ExpectSameLosses(one, ReadRunLog(dir / "two"));
  ExpectSameWeights(dir / "one/adapter_model.safetensors", dir / "two/adapter_model.safetensors");
  EXPECT_TRUE(fs::exists(dir / "two/checkpoint-3/adapter_model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "two/checkpoint-3/model.safetensors")) << "the frozen base is not checkpointed";
  // The frozen base is sharded too (the fixture's 4 blocks and the root, in slices).
  EXPECT_THAT(testing::ReadFile(dir / "rank0.log"), ::testing::ContainsRegex("this rank's shards hold [0-9]+ of [0-9]+ "
                                                                           "trained parameters and [0-9]+ of [0-9]+ frozen ones"));
}

// What each of 4 ranks holds while it trains, measured at LibTorch's allocator (the peak
// of every CPU tensor from the first step on; batches of one 16-token row keep the
// activations small beside the state). DDP holds the weights, gradients and both Adam
// moments whole; full_shard without prefetching a quarter of them, plus what is whole
// for a while: one gathered block, its gradients until they are reduce-scattered, and
// the root unit; prefetching (the default) holds the next block too.
TEST(Fsdp, EachRankHoldsAboutItsShareOfTheState) {
  TempDir dir;
  testing::WriteFile(dir / "job.yaml", absl::StrCat(
      "model: {type: gpt, hidden_size: 256, num_layers: 8, num_heads: 4}\n"
                "data: {train: {path: /usr/share/games/fortunes/cookie, format: text, limit: 64}, max_seq_length: 16, "
                "tokenizer: {vocab_size: 300}}\n"
                "training_args: {max_steps: 2, per_device_train_batch_size: 1, optim: adamw_torch, logging_steps: 1, "
                "save_strategy: 'no', torch_num_threads: 1, do_eval: false, log_level_replica: info}\n"));
  std::map<std::string, double> peak_mb, save_mb;
  for (const auto& [run, set] : std::vector<std::pair<std::string, std::string>>{
           {"ddp", "training_args.optimizer_sharding=false"},
           {"zero1", "training_args.optimizer_sharding=true"},
           {"shard_grad_op", "training_args.fsdp=shard_grad_op"},
           {"full_shard", "training_args.fsdp=full_shard"},
           {"no_prefetch", "training_args.fsdp_config.backward_prefetch=NO_PREFETCH"}}) {
    std::vector<std::string> sets = {"training_args.output_dir=" + dir / run, set};
    if (run == "no_prefetch") sets.push_back("training_args.fsdp=full_shard");
    RunRanks(dir, 4, dir / "job.yaml", sets);
    for (const auto& line : absl::StrSplit(testing::ReadFile(dir / run + "/trainer_log.jsonl"), '\n', absl::SkipEmpty())) {
      const nlohmann::json record = nlohmann::json::parse(std::string(line));
      if (record["kind"] == "train_end") peak_mb[run] = record["train_peak_memory_mb"].get<double>();
    }
    ASSERT_TRUE(peak_mb.count(run)) << run;
    std::printf("4 ranks, %s: %.1f MB at most per rank\n", run.c_str(), peak_mb[run]);
    // What writing the final folder added on top, measured by each rank while it saved.
    save_mb[run] = MaxLoggedMb(dir.path(), 4, "the weights took at most ");
    std::printf("4 ranks, %s: saving the model added %.1f MB at most\n", run.c_str(), save_mb[run]);
  }
  // One block: 4h^2 + 3h x 704 + 2h float32 values (h = 256).
  const double block_mb = (4.0 * 256 * 256 + 3.0 * 256 * 704 + 2 * 256) * 4 / (1024.0 * 1024.0);
  EXPECT_LT(peak_mb["zero1"], peak_mb["ddp"]);
  EXPECT_LT(peak_mb["shard_grad_op"], peak_mb["zero1"]);
  EXPECT_LT(peak_mb["full_shard"], peak_mb["shard_grad_op"]);
  EXPECT_LT(peak_mb["no_prefetch"], peak_mb["ddp"] / 4 + 3 * block_mb);
  // Prefetching holds the block backward reaches next and Gloo's staging buffer for it
  // (two blocks here); when the gather ends is up to the threads, so a third is allowed.
  EXPECT_LT(peak_mb["full_shard"], peak_mb["no_prefetch"] + 3 * block_mb);
  // The final folder is written one block at a time: one gathered block and Gloo's
  // staging copy of it (gathering all 8 would add 7 and more).
  EXPECT_LT(save_mb["full_shard"], 2.5 * block_mb);
}

// cpu_ram_efficient_loading: a Hugging Face folder's blocks are built without their
// weights and each rank reads only its slices of them from the files, so no rank holds
// the whole model while loading (measured at LibTorch's allocator, data included); the
// run is the run of ranks that loaded the folder whole.
TEST(Fsdp, CpuRamEfficientLoadingReadsOnlyEachRanksSlices) {
  TempDir dir;
  const std::string data = "data: {train: {path: /usr/share/games/fortunes/cookie, format: text, limit: 64}, "
                           "max_seq_length: 16, tokenizer: {vocab_size: 300}}\n";
  // The folder: a built-in gpt (a LlamaForCausalLM) of 8 blocks, saved after one step.
  testing::WriteFile(dir / "make.yaml", absl::StrCat(
      "model: {type: gpt, hidden_size: 256, num_layers: 8, num_heads: 4}\n", data,
      "training_args: {max_steps: 1, per_device_train_batch_size: 1, save_strategy: 'no', torch_num_threads: 1, "
      "do_eval: false, output_dir: ", dir / "folder", "}\n"));
  RunRanks(dir, 1, dir / "make.yaml", {});
  testing::WriteFile(dir / "job.yaml", absl::StrCat(
      "model: {name_or_path: ", dir / "folder", "}\n",
      "data: {train: {path: /usr/share/games/fortunes/cookie, format: text, limit: 64}, max_seq_length: 16}\n",
      "training_args: {max_steps: 3, per_device_train_batch_size: 1, learning_rate: 0.003, optim: adamw_torch, "
      "logging_steps: 1, save_strategy: 'no', torch_num_threads: 1, do_eval: false, fsdp: full_shard, "
      "log_level_replica: info}\n"));
  std::map<std::string, double> load_mb;
  for (const auto& [run, ranks, sets] : std::vector<std::tuple<std::string, int, std::vector<std::string>>>{
           {"whole", 4, {}},
           {"efficient", 4, {"training_args.fsdp_config.cpu_ram_efficient_loading=true"}},
           {"efficient_grad_op", 2, {"training_args.fsdp_config.cpu_ram_efficient_loading=true",
                                     "training_args.fsdp=shard_grad_op", "training_args.per_device_train_batch_size=2"}}}) {
    std::vector<std::string> all = sets;
    all.push_back("training_args.output_dir=" + dir / run);
    RunRanks(dir, ranks, dir / "job.yaml", all);
    load_mb[run] = MaxLoggedMb(dir.path(), ranks, "Loading took at most ");
    std::printf("%d ranks, %s: loading took %.1f MB at most per rank\n", ranks, run.c_str(), load_mb[run]);
  }
  EXPECT_THAT(testing::ReadFile(dir / "rank0.log"), HasSubstr("cpu_ram_efficient_loading: 72 of 74 tensors are left"));
  const RunLog whole = ReadRunLog(dir / "whole");
  ASSERT_EQ(whole.loss.size(), 3u);
  ExpectSameLosses(whole, ReadRunLog(dir / "efficient"));
  ExpectSameLosses(whole, ReadRunLog(dir / "efficient_grad_op"));
  ExpectSameWeights(dir / "whole", dir / "efficient");
  const double model_mb = static_cast<double>(fs::file_size(dir / "folder/model.safetensors")) / (1 << 20);
  const double block_mb = (4.0 * 256 * 256 + 3.0 * 256 * 704 + 2 * 256) * 4 / (1024.0 * 1024.0);
  // Loading whole builds the model and reads the files beside it; reading slices holds a
  // quarter of the blocks, the root (embeddings and head, kept whole), and one block
  // being built or flattened at a time.
  EXPECT_GT(load_mb["whole"], model_mb);
  EXPECT_LT(load_mb["efficient"], model_mb / 4 + 3 * block_mb);
  EXPECT_LT(load_mb["efficient"], load_mb["whole"] / 2);
}

// Exact resume of a full_shard run after a rank is killed with SIGKILL: each rank's
// optimizer shard, RNG and the data position come back, and the resumed run logs what an
// uninterrupted run logs. A constant learning rate lets the killed run be an endless one.
TEST(Fsdp, ResumesExactlyAfterARankIsKilled) {
  TempDir dir;
  const std::string rows = testing::WriteTokenRows(dir, 96);
  WriteLlamaJob(dir / "job.yaml", rows,
                "max_steps: 40, per_device_train_batch_size: 4, learning_rate: 0.003, optim: adamw_torch, "
                "lr_scheduler_type: constant, logging_steps: 1, save_steps: 4, torch_num_threads: 1, do_eval: false, "
                "fsdp: full_shard");
  RunRanks(dir, 2, dir / "job.yaml", {"training_args.output_dir=" + dir / "full"});
  // FULL_STATE_DICT: the whole weights, and each rank's slice of the optimizer state.
  EXPECT_TRUE(fs::exists(dir / "full/checkpoint-8/model.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "full/checkpoint-8/fsdp_shards/optimizer-rank-00001-of-00002.safetensors"));

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

// SHARDED_STATE_DICT: each rank writes its own slices, and a checkpoint resumes on
// another number of ranks. The global batch stays 8 (2 x 4, 4 x 2, 1 x 8) and the learning
// rate constant, so a run resumed 2 -> 4 and then 4 -> 1 logs the losses of the
// uninterrupted 2-rank run: the weights, the optimizer state and the data position all
// carried over. Any checkpoint consolidates into the run's final Hugging Face folder.
TEST(Fsdp, ShardedCheckpointsResumeOnAnotherNumberOfRanks) {
  TempDir dir;
  const std::string rows = testing::WriteTokenRows(dir, 96);
  WriteLlamaJob(dir / "job.yaml", rows,
                "max_steps: 9, per_device_train_batch_size: 4, learning_rate: 0.003, optim: adamw_torch, "
                "weight_decay: 0.1, lr_scheduler_type: constant, logging_steps: 1, save_steps: 3, torch_num_threads: 1, "
                "do_eval: false, fsdp: full_shard, fsdp_config: {state_dict_type: SHARDED_STATE_DICT}");
  RunRanks(dir, 2, dir / "job.yaml", {"training_args.output_dir=" + dir / "two"});
  const fs::path first = dir / "two/checkpoint-3";
  for (const char* file : {"fsdp_index.json", "fsdp_shards/model-rank-00000-of-00002.safetensors",
                           "fsdp_shards/model-rank-00001-of-00002.safetensors",
                           "fsdp_shards/optimizer-rank-00001-of-00002.safetensors", "rng_state_1.pth", "config.json"}) {
    EXPECT_TRUE(fs::exists(first / file)) << file;
  }
  EXPECT_FALSE(fs::exists(first / "model.safetensors")) << "no rank gathers the whole weights for a checkpoint";
  EXPECT_TRUE(fs::exists(dir / "two/model.safetensors")) << "the final folder is a whole Hugging Face folder";

  // 2 -> 4 ranks from step 3 to 6, then 4 -> 1 from step 6 to 9.
  fs::create_directories(dir / "resharded");
  fs::copy(first, dir / "resharded/checkpoint-3", fs::copy_options::recursive);
  RunRanks(dir, 4, dir / "job.yaml",
           {"training_args.output_dir=" + dir / "resharded", "training_args.per_device_train_batch_size=2",
            "training_args.max_steps=6", "training_args.resume_from_checkpoint=true"});
  EXPECT_THAT(testing::ReadFile(dir / "rank0.log"), HasSubstr("was saved by 2 rank(s) and this run has 4"));
  EXPECT_TRUE(fs::exists(dir / "resharded/checkpoint-6/fsdp_shards/model-rank-00003-of-00004.safetensors"));
  RunRanks(dir, 1, dir / "job.yaml",
           {"training_args.output_dir=" + dir / "resharded", "training_args.per_device_train_batch_size=8",
            "training_args.resume_from_checkpoint=true"});
  EXPECT_THAT(testing::ReadFile(dir / "rank0.log"), HasSubstr("was saved by 4 rank(s) and this run has 1"));
  const RunLog two = ReadRunLog(dir / "two"), resharded = ReadRunLog(dir / "resharded");
  ASSERT_EQ(two.loss.size(), 9u);
  ExpectSameLosses(two, resharded, 4);
  ExpectSameWeights(dir / "two/model.safetensors", dir / "resharded/model.safetensors");

  // consolidate: a sharded checkpoint becomes the folder the run would have saved there.
  const testing::CommandResult consolidated = testing::RunCommand(absl::StrCat(
      testing::Worker(), " --consolidate ", dir / "two/checkpoint-9", " --output ", dir / "consolidated", " 2>&1"));
  ASSERT_EQ(consolidated.exit_code, 0) << consolidated.output;
  ExpectSameWeights(dir / "two/model.safetensors", dir / "consolidated/model.safetensors");
  EXPECT_TRUE(fs::exists(dir / "consolidated/config.json"));

  // A checkpoint of another model is refused by name, not loaded into the wrong tensors.
  testing::WriteFile(dir / "other.yaml", absl::StrCat(
      "model: {name_or_path: ", Fixture("llama-tied"), "}\n"
                "data: {train: {path: ", rows, "}, max_seq_length: 16}\n"
                "training_args: {max_steps: 4, per_device_train_batch_size: 4, torch_num_threads: 1, do_eval: false, "
                "fsdp: full_shard, fsdp_config: {state_dict_type: SHARDED_STATE_DICT}, resume_from_checkpoint: ", first.string(),
      ", output_dir: ", dir / "other", "}\n"));
  auto ranks = StartRanks(dir, 2, dir / "other.yaml", {});
  EXPECT_NE(ranks[0]->Wait(std::chrono::seconds(120)), std::optional<int>(0));
  EXPECT_THAT(testing::ReadFile(dir / "rank0.log"), HasSubstr("was saved with other parameters than this model has"));
}

}  // namespace
}  // namespace trainerd
