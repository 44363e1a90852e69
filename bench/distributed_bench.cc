// Data parallelism, in two parts.
//
// Scaling: the example CNN trained by 1 rank and by 2 ranks (1 LibTorch thread each,
// batch 64 per rank), side by side in alternating rounds. Reported per round, then as
// medians:
//   scaling efficiency = samples/s of 2 ranks / (2 x samples/s of 1 rank)
//   vs independent     = samples/s of 2 ranks / samples/s of 2 independent 1-rank runs
//                        at once (what this machine gives two processes with no
//                        communication: it separates the all-reduce's cost from
//                        the cores' shared caches and memory bandwidth)
//   all-reduce wait    = milliseconds per step the loop waited for gradients, i.e. the
//                        part of the all-reduce that backward did not hide
//
// Sharding: the built-in gpt (hidden 512 or --hidden, 8 blocks, vocabulary 4000, batch 2 x 64
// tokens per rank) trained on 2 and 4 ranks with DDP, ZeRO-1 (optimizer_sharding),
// fsdp shard_grad_op and full_shard, each run after the other: milliseconds per step and
// each rank's peak of LibTorch's CPU memory while training (train_peak_memory_mb,
// measured at the allocator). Then the largest Llama (32 layers, vocabulary 32000,
// bfloat16, batch 1 x 512) each admits under one --max-job-memory, from trainerd's
// per-rank estimate.
//
//   distributed_bench [--steps N] [--rounds R] [--sharding-steps S] [--hidden H] [--limit-gib G]
//   (run from the build folder)
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_util.h"
#include "spec/lora_config.h"
#include "spec/memory_estimate.h"

namespace {

namespace fs = std::filesystem;
using trainerd::bench::Median;

std::string BuildDir() {
  const char* d = std::getenv("TRAINERD_BUILD_DIR");
  return d ? d : ".";
}

std::string Spec(const fs::path& dir, int steps) {
  const std::string d = "/usr/share/datasets/fashion-mnist";
  std::ostringstream s;
  s << "training_args: {max_steps: " << steps << ", per_device_train_batch_size: 64, learning_rate: 0.001,"
    << " logging_steps: 1000000, save_strategy: 'no', torch_num_threads: 1, overwrite_output_dir: true}\n"
    << "model: {type: cnn, conv_channels: [32, 64], hidden_sizes: [128]}\n"
    << "data: {train: {path: " << d << "/train-images-idx3-ubyte.gz, labels_path: " << d
    << "/train-labels-idx1-ubyte.gz, limit: 20000}, mean: 0.286, std: 0.353}\n";
  const fs::path path = dir / "job.yaml";
  std::ofstream(path) << s.str();
  return path.string();
}

// Starts one trainer-worker; `world` > 0 makes it rank `rank` of a job on `port`.
pid_t Start(const std::string& spec, const std::string& output_dir, int world, int rank, int port,
            const std::string& log, const std::string& extra_set = "") {
  const pid_t pid = fork();
  if (pid == 0) {
    if (world > 0) {
      setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
      setenv("RANK", std::to_string(rank).c_str(), 1);
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
    }
    if (std::freopen(log.c_str(), "w", stderr) == nullptr) _exit(127);
    const std::string program = BuildDir() + "/worker/trainer-worker";
    const std::string set = "training_args.output_dir=" + output_dir;
    std::vector<const char*> argv = {program.c_str(), "--spec", spec.c_str(), "--set", set.c_str()};
    if (!extra_set.empty()) argv.insert(argv.end(), {"--set", extra_set.c_str()});
    argv.push_back(nullptr);
    execv(program.c_str(), const_cast<char* const*>(argv.data()));
    _exit(127);
  }
  return pid;
}

bool WaitAll(const std::vector<pid_t>& pids) {
  bool ok = true;
  for (pid_t p : pids) {
    int status = 0;
    waitpid(p, &status, 0);
    ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  return ok;
}

nlohmann::json Results(const fs::path& output_dir) {
  std::ifstream in(output_dir / "all_results.json");
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

std::string ShardingSpec(const fs::path& dir, int steps, int hidden) {
  std::ostringstream s;
  s << "training_args: {max_steps: " << steps << ", per_device_train_batch_size: 2, learning_rate: 0.001,"
    << " optim: adamw_torch, logging_steps: 1000000, save_strategy: 'no', torch_num_threads: 1,"
    << " overwrite_output_dir: true, do_eval: false}\n"
    << "model: {type: gpt, hidden_size: " << hidden << ", num_layers: 8, num_heads: 8}\n"
    << "data: {train: {path: /usr/share/games/fortunes/fortunes, format: text, limit: 2000}, max_seq_length: 64,"
    << " tokenizer: {vocab_size: 4000}}\n";
  const fs::path path = dir / "sharding.yaml";
  std::ofstream(path) << s.str();
  return path.string();
}

struct Strategy {
  const char* name;
  const char* set;
};
constexpr Strategy kStrategies[] = {{"ddp", "training_args.optimizer_sharding=false"},
                                    {"zero1", "training_args.optimizer_sharding=true"},
                                    {"shard_grad_op", "training_args.fsdp=shard_grad_op"},
                                    {"full_shard", "training_args.fsdp=full_shard"}};

// Step time and per-rank peak memory of each strategy on 2 and 4 ranks.
bool CompareSharding(const fs::path& dir, int steps, int hidden, int port) {
  const std::string spec = ShardingSpec(dir, steps, hidden);
  const double h = hidden, inner = static_cast<double>(trainerd::DefaultIntermediateSize(hidden));
  std::printf("\nSharding: built-in gpt (hidden %d, 8 blocks, vocabulary 4000, %.1fM parameters), batch 2 x 64 "
              "tokens per rank, AdamW, 1 thread per rank, %d steps\n",
              hidden, (4000 * h + h + 8 * (4 * h * h + 3 * h * inner + 2 * h)) / 1e6, steps);
  for (int world : {2, 4}) {
    double ddp_ms = 0, ddp_mb = 0;
    for (const Strategy& strategy : kStrategies) {
      const fs::path out = dir / (std::string(strategy.name) + std::to_string(world));
      std::vector<pid_t> ranks;
      const int run_port = port++;
      for (int r = 0; r < world; ++r) {
        ranks.push_back(Start(spec, out.string(), world, r, run_port,
                              (dir / ("rank" + std::to_string(r) + ".log")).string(), strategy.set));
      }
      if (!WaitAll(ranks)) {
        std::fprintf(stderr, "%s on %d ranks failed; see %s/rank*.log\n", strategy.name, world, dir.c_str());
        return false;
      }
      const nlohmann::json results = Results(out);
      const double ms = 1000.0 / results["train_steps_per_second"].get<double>();
      const double mb = results["train_peak_memory_mb"].get<double>();
      if (ddp_ms == 0) ddp_ms = ms, ddp_mb = mb;
      std::printf("  %d ranks %-14s %7.1f ms/step (%.2fx DDP)   peak %7.1f MB per rank (%.2fx DDP)\n", world,
                  strategy.name, ms, ms / ddp_ms, mb, mb / ddp_mb);
    }
  }
  return true;
}

// The largest hidden size (a multiple of 256) of a 32-layer Llama whose per-rank estimate
// fits `limit` with `set` on `ranks` ranks.
int64_t LargestAdmitted(int64_t limit, const std::string& set, int ranks) {
  trainer::v1::JobSpec spec = trainerd::bench::Spec(
      "training_args: {per_device_train_batch_size: 1, per_device_eval_batch_size: 1}\n"
      "model: {name_or_path: /nonexistent, torch_dtype: bfloat16}\ndata: {max_seq_length: 512}\n");
  auto overrides = trainerd::ParseJobSpec("{}", {set});
  if (!overrides.ok()) std::exit(1);
  spec.mutable_training_args()->MergeFrom(overrides->training_args());
  int64_t best = 0;
  for (int64_t hidden = 256; hidden <= 131072; hidden += 256) {
    const trainerd::HfConfig config =
        trainerd::bench::ParsedOrExit(trainerd::bench::LlamaConfigText(hidden, 32, 32000, "bfloat16"));
    const trainerd::ModelFootprint model = trainerd::HfFootprint(spec, config, trainerd::HfParameterCount(config));
    if (trainerd::EstimateRankMemory(model, spec.training_args(), ranks).total_bytes() > limit) break;
    best = hidden;
  }
  return best;
}

void CompareAdmission(int64_t limit_gib) {
  std::printf("\nAdmission under --max-job-memory %lldGiB per rank (Llama, 32 layers, vocabulary 32000, bfloat16, "
              "batch 1 x 512), from trainerd's per-rank estimate:\n",
              static_cast<long long>(limit_gib));
  for (int world : {2, 4}) {
    for (const Strategy& strategy : kStrategies) {
      const int64_t hidden = LargestAdmitted(limit_gib << 30, strategy.set, world);
      const double params =
          hidden == 0 ? 0
                      : static_cast<double>(trainerd::HfParameterCount(trainerd::bench::ParsedOrExit(
                            trainerd::bench::LlamaConfigText(hidden, 32, 32000, "bfloat16"))));
      std::printf("  %d ranks %-14s largest admitted: hidden %6lld, %6.2fB parameters\n", world, strategy.name,
                  static_cast<long long>(hidden), params / 1e9);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const trainerd::bench::Flags flags(
      argc, argv, "distributed_bench [--steps N] [--rounds R] [--sharding-steps S] [--hidden H] [--limit-gib G]",
      {{"--steps", 150}, {"--rounds", 3}, {"--sharding-steps", 8}, {"--hidden", 512}, {"--limit-gib", 80}});
  const int steps = flags.Int("--steps"), rounds = flags.Int("--rounds");
  const fs::path dir = fs::temp_directory_path() / ("distributed-bench-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string spec = Spec(dir, steps);
  const int port = 29000 + getpid() % 1000;
  std::vector<double> efficiency, vs_independent, wait_ms, one_rate, two_rate;
  std::printf("CNN [32, 64] + [128], batch 64 per rank, 1 thread per rank, %d steps, %d rounds\n", steps, rounds);
  for (int round = 0; round < rounds; ++round) {
    const std::string log = (dir / "rank.log").string();
    if (!WaitAll({Start(spec, (dir / "one").string(), 0, 0, 0, log)})) {
      std::fprintf(stderr, "1-rank run failed; see %s\n", log.c_str());
      return 1;
    }
    if (!WaitAll({Start(spec, (dir / "a").string(), 0, 0, 0, log + ".a"),
                  Start(spec, (dir / "b").string(), 0, 0, 0, log + ".b")})) {
      std::fprintf(stderr, "independent runs failed\n");
      return 1;
    }
    if (!WaitAll({Start(spec, (dir / "two").string(), 2, 0, port + round, log + ".0"),
                  Start(spec, (dir / "two").string(), 2, 1, port + round, log + ".1")})) {
      std::fprintf(stderr, "2-rank run failed; see %s.0 and %s.1\n", log.c_str(), log.c_str());
      return 1;
    }
    const double one = Results(dir / "one")["train_samples_per_second"].get<double>();
    const double independent = Results(dir / "a")["train_samples_per_second"].get<double>() +
                               Results(dir / "b")["train_samples_per_second"].get<double>();
    const nlohmann::json two = Results(dir / "two");
    const double two_ranks = two["train_samples_per_second"].get<double>();
    one_rate.push_back(one);
    two_rate.push_back(two_ranks);
    efficiency.push_back(two_ranks / (2 * one));
    vs_independent.push_back(two_ranks / independent);
    wait_ms.push_back(two["train_allreduce_wait_ms_per_step"].get<double>());
    std::printf("round %d: 1 rank %.0f samples/s, 2 ranks %.0f samples/s, 2 independent %.0f samples/s, "
                "efficiency %.3f, vs independent %.3f, all-reduce wait %.2f ms/step\n",
                round + 1, one, two_ranks, independent, efficiency.back(), vs_independent.back(), wait_ms.back());
  }
  std::printf("median: 1 rank %.0f samples/s, 2 ranks %.0f samples/s; scaling efficiency %.3f, "
              "vs 2 independent processes %.3f, all-reduce wait %.2f ms/step\n",
              Median(one_rate), Median(two_rate), Median(efficiency), Median(vs_independent), Median(wait_ms));
  if (!CompareSharding(dir, flags.Int("--sharding-steps"), flags.Int("--hidden"), port + rounds + 1)) return 1;
  CompareAdmission(flags.Int("--limit-gib"));
  fs::remove_all(dir);
  return 0;
}
