// What Slurm costs a job: SubmitJob to the first training step through a real three-node
// Slurm cluster (started by this program, as tests/slurm_test.cc does) beside the same
// jobs under the local launcher, in one run, for a 1-rank job and a 3-rank gang. The
// Slurm figure is split into the time until Slurm reports the job RUNNING (queueing,
// scheduling, the allocation) and the rest (srun, the workers starting). Needs root, as
// the Slurm daemons do.
//
//   slurm_bench [--runs N]   (default 3 of each; medians are printed)
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "bench/bench_flags.h"
#include "tests/daemon_test_util.h"
#include "tests/slurm_cluster.h"

namespace trainerd {
namespace {

using Clock = std::chrono::steady_clock;
using bench::Median;

struct FirstStep {
  double total_ms = 0;    // SubmitJob to the first step
  double running_ms = 0;  // SubmitJob to Slurm's RUNNING (Slurm only)
};

// Submits a short job of `ranks` ranks and waits for its first step, then for its end.
FirstStep Measure(testing::Daemon& d, int ranks) {
  FirstStep m;
  const auto t0 = Clock::now();
  const std::string id =
      testing::Submit(d, testing::Spec("max_steps: 20, logging_steps: 1, save_strategy: 'no'"), 0, "", ranks);
  trainer::v1::Job job;
  for (int i = 0; i < 120 * 200; ++i) {
    job = testing::Get(d, id);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (m.running_ms == 0 && job.attempts_size() > 0 &&
        absl::StartsWith(job.attempts(0).cluster_state(), "RUNNING")) {
      m.running_ms = ms;
    }
    if (job.progress().step() >= 1) {
      m.total_ms = ms;
      break;
    }
    if (testing::Finished(job)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  job = testing::WaitFor(d, id, testing::Finished, 120);
  if (job.state() != trainer::v1::SUCCEEDED || m.total_ms == 0) {
    std::fprintf(stderr, "job %s did not run: %s %s\n", id.c_str(), trainer::v1::JobState_Name(job.state()).c_str(),
                 job.error().c_str());
    std::exit(1);
  }
  return m;
}

int Run(int runs) {
  testing::TempDir dir;
  std::string error;
  auto cluster = testing::SlurmCluster::Start(dir.path().string(), 3, 2, &error);
  if (cluster == nullptr) {
    std::fprintf(stderr, "the Slurm cluster did not start: %s\n", error.c_str());
    return 1;
  }
  ::setenv("SLURM_CONF", cluster->conf().c_str(), 1);  // the Slurm trainerd's sbatch and squeue read it
  testing::Daemon local(dir / "local", {"--cpu-slots", "3"});
  testing::Daemon slurm(dir / "slurm", {"--launcher", "slurm"});
  for (int ranks : {1, 3}) {
    std::vector<double> local_ms, slurm_ms, running_ms;
    for (int r = 0; r < runs; ++r) {  // interleaved, so that both see the same machine
      local_ms.push_back(Measure(local, ranks).total_ms);
      const FirstStep s = Measure(slurm, ranks);
      slurm_ms.push_back(s.total_ms);
      running_ms.push_back(s.running_ms);
    }
    std::printf("%d rank(s), SubmitJob to first step, median of %d: local %.0f ms, Slurm %.0f ms (%.0f ms until "
                "Slurm said RUNNING) = %.2fx local\n",
                ranks, runs, Median(local_ms), Median(slurm_ms), Median(running_ms),
                Median(slurm_ms) / Median(local_ms));
  }
  return 0;
}

}  // namespace
}  // namespace trainerd

int main(int argc, char** argv) {
  const trainerd::bench::Flags flags(argc, argv, "slurm_bench [--runs N]", {{"--runs", 3}});
  return trainerd::Run(flags.Int("--runs"));
}
