// Data-parallel scaling: the example CNN trained by 1 rank and by 2 ranks (1 LibTorch
// thread each, batch 64 per rank), side by side in alternating rounds.
//
// Reported per round, then as medians:
//   scaling efficiency = samples/s of 2 ranks / (2 x samples/s of 1 rank)
//   vs independent     = samples/s of 2 ranks / samples/s of 2 independent 1-rank runs
//                        at once (what this machine gives two processes with no
//                        communication: it separates the all-reduce's cost from
//                        the cores' shared caches and memory bandwidth)
//   all-reduce wait    = milliseconds per step the loop waited for gradients, i.e. the
//                        part of the all-reduce that backward did not hide
//
//   distributed_bench [--steps N] [--rounds R]      (run from the build folder)
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

#include "bench/bench_flags.h"

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
            const std::string& log) {
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
    execl(program.c_str(), program.c_str(), "--spec", spec.c_str(), "--set", set.c_str(), nullptr);
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

}  // namespace

int main(int argc, char** argv) {
  const trainerd::bench::Flags flags(argc, argv, "distributed_bench [--steps N] [--rounds R]",
                                     {{"--steps", 150}, {"--rounds", 3}});
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
  fs::remove_all(dir);
  return 0;
}
