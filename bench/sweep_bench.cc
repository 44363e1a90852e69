// Adaptive ASHA against random search with the same compute budget, on the same task,
// through a real trainerd started by this program: the learning rate and warmup of an
// MLP on Fashion-MNIST, objective eval_loss.
//  1. asha: --trials trials, rungs up to --max-length steps (divisor 4, 3 rungs).
//  2. random, same budget: as many trials as ASHA's steps buy at --max-length each.
//  3. random, every trial to the end: --trials trials of --max-length steps, what the
//     search would have cost without early stopping (its first trials are 2's).
// Printed side by side: trials, steps trained, the best objective, wall time; again for
// each of --rounds seeds, since one search's luck says little.
//
// --hidden is the width of the MLP's hidden layer: a wider one makes a step cost
// more beside a trial's start (worker, data, checkpoint), which early stopping cannot save.
//
//   sweep_bench [--trials N] [--max-length STEPS] [--concurrent N] [--limit EXAMPLES] [--rounds N] [--hidden WIDTH]
#include <chrono>
#include <cstdio>
#include <thread>

#include "bench/bench_flags.h"
#include "tests/daemon_test_util.h"
#include "trainer/v1/sweep_service.grpc.pb.h"

namespace trainerd {
namespace {

struct Outcome {
  std::string searcher;
  int trials = 0;
  int64_t steps = 0;
  double best = 0;
  double seconds = 0;
};

trainer::v1::SweepSpec Search(const std::string& searcher, int trials, int max_length, int concurrent, int limit,
                              int hidden, uint64_t seed) {
  trainer::v1::SweepSpec spec;
  const std::string d = testing::kFashionDir;
  auto job = ParseJobSpec(absl::StrCat(
      "training_args: {per_device_train_batch_size: 32, logging_steps: 50, max_steps: ", max_length,
      ", save_strategy: \"no\"}\n"
      "model: {type: mlp, hidden_sizes: [", hidden, "]}\n"
      "data: {train: {path: ", d, "/train-images-idx3-ubyte.gz, labels_path: ", d,
      "/train-labels-idx1-ubyte.gz, limit: ", limit, "}, eval: {path: ", d, "/t10k-images-idx3-ubyte.gz, labels_path: ",
      d, "/t10k-labels-idx1-ubyte.gz, limit: 1000}, mean: 0.286, std: 0.353}\n"));
  if (!job.ok()) {
    std::fprintf(stderr, "%s\n", std::string(job.status().message()).c_str());
    std::exit(1);
  }
  *spec.mutable_job() = *job;
  auto* lr = spec.add_search_space();
  lr->set_field("training_args.learning_rate");
  lr->set_type("log_uniform");
  lr->set_min(1e-5);
  lr->set_max(0.3);
  auto* warmup = spec.add_search_space();
  warmup->set_field("training_args.warmup_ratio");
  warmup->set_type("uniform");
  warmup->set_min(0);
  warmup->set_max(0.3);
  spec.mutable_objective()->set_metric("eval_loss");
  spec.mutable_searcher()->set_name(searcher);
  spec.mutable_searcher()->set_max_length(max_length);
  spec.mutable_searcher()->set_divisor(4);
  spec.mutable_searcher()->set_max_rungs(3);
  spec.set_n_trials(trials);
  spec.set_max_concurrent_trials(concurrent);
  spec.set_seed(seed);
  return spec;
}

Outcome Run(testing::Daemon& d, const trainer::v1::SweepSpec& spec) {
  auto stub = trainer::v1::SweepService::NewStub(d.channel());
  const auto start = std::chrono::steady_clock::now();
  trainer::v1::SubmitSweepRequest request;
  *request.mutable_spec() = spec;
  request.set_name(spec.searcher().name());
  trainer::v1::SubmitSweepResponse submitted;
  {
    grpc::ClientContext ctx;
    d.Authorize(&ctx);
    const grpc::Status s = stub->SubmitSweep(&ctx, request, &submitted);
    if (!s.ok()) {
      std::fprintf(stderr, "SubmitSweep: %s\n", s.error_message().c_str());
      std::exit(1);
    }
  }
  trainer::v1::Sweep sweep;
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    grpc::ClientContext ctx;
    d.Authorize(&ctx);
    trainer::v1::GetSweepRequest get;
    get.set_sweep_id(submitted.sweep_id());
    sweep.Clear();
    if (!stub->GetSweep(&ctx, get, &sweep).ok()) continue;
  } while (sweep.state() == trainer::v1::SWEEP_RUNNING || sweep.state() == trainer::v1::SWEEP_STATE_UNSPECIFIED);
  if (sweep.state() != trainer::v1::SWEEP_COMPLETED) {
    std::fprintf(stderr, "sweep %s ended %s: %s\n", sweep.id().c_str(),
                 trainer::v1::SweepState_Name(sweep.state()).c_str(), sweep.error().c_str());
    std::exit(1);
  }
  Outcome out;
  out.searcher = spec.searcher().name();
  out.trials = sweep.trials_size();
  out.steps = sweep.steps_trained();
  out.best = sweep.best_objective();
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace
}  // namespace trainerd

int main(int argc, char** argv) {
  using namespace trainerd;
  bench::Flags flags(argc, argv, "sweep_bench [--trials N] [--max-length STEPS] [--concurrent N] [--limit EXAMPLES] [--rounds N] [--hidden WIDTH]",
                     {{"--trials", 16}, {"--max-length", 1024}, {"--concurrent", 2}, {"--limit", 6000}, {"--rounds", 3}, {"--hidden", 64}});
  const int trials = flags.Int("--trials"), length = flags.Int("--max-length");
  const int concurrent = flags.Int("--concurrent"), limit = flags.Int("--limit"), hidden = flags.Int("--hidden");
  trainerd::testing::TempDir dir;
  trainerd::testing::Daemon d(dir.path().string());
  std::printf("%d trials of up to %d steps (MLP of width %d, Fashion-MNIST %d examples, eval_loss on 1000), %d at a "
              "time\n", trials, length, hidden, limit, concurrent);
  std::printf("%-6s %-22s %7s %8s %10s %9s %10s\n", "seed", "searcher", "trials", "steps", "steps/all", "best",
              "seconds");
  std::vector<double> asha_minus_random;
  for (int round = 0; round < flags.Int("--rounds"); ++round) {
    const uint64_t seed = 2026 + round;
    std::vector<Outcome> rows;
    rows.push_back(Run(d, Search("asha", trials, length, concurrent, limit, hidden, seed)));
    const int budget_trials = static_cast<int>(std::max<int64_t>(1, rows[0].steps / length));
    rows.push_back(Run(d, Search("random", budget_trials, length, concurrent, limit, hidden, seed + 1000)));
    rows.back().searcher = "random, same budget";
    rows.push_back(Run(d, Search("random", trials, length, concurrent, limit, hidden, seed + 1000)));
    rows.back().searcher = "random, every trial";
    const double all = static_cast<double>(rows[2].steps);
    for (const Outcome& o : rows) {
      std::printf("%-6llu %-22s %7d %8lld %9.1f%% %9.4f %10.1f\n", static_cast<unsigned long long>(seed),
                  o.searcher.c_str(), o.trials, static_cast<long long>(o.steps),
                  100.0 * static_cast<double>(o.steps) / all, o.best, o.seconds);
    }
    asha_minus_random.push_back(rows[0].best - rows[1].best);
  }
  double mean = 0;
  for (double v : asha_minus_random) mean += v / static_cast<double>(asha_minus_random.size());
  std::printf("asha's best minus random's at the same budget, mean of %zu seed(s): %+.4f eval_loss (lower is better)\n",
              asha_minus_random.size(), mean);
  return 0;
}
