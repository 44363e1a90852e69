// End to end: multi-rank jobs under a real trainerd. Ranks start as a gang, a failing
// rank takes its attempt down and the job restarts from its latest checkpoint. (Ranks
// on other machines run through Slurm: tests/slurm_test.cc.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/daemon_test_util.h"

namespace trainerd {
namespace {

using ::testing::HasSubstr;
using testing::Checkpoints;
using testing::Daemon;
using testing::Finished;
using testing::Get;
using testing::Logs;
using testing::Spec;
using testing::Submit;
using testing::TempDir;
using testing::WaitFor;
using trainer::v1::Job;

// Long enough to be interrupted after its first checkpoints.
trainer::v1::JobSpec LongSpec() {
  return Spec("max_steps: 2500, save_steps: 100, logging_steps: 100, log_level_replica: info");
}

bool RanksRunning(const Job& j, int ranks) {
  if (j.attempts_size() == 0 || j.state() != trainer::v1::RUNNING) return false;
  const auto& a = j.attempts(j.attempts_size() - 1);
  if (a.rank_pids_size() != ranks) return false;
  for (int pid : a.rank_pids()) {
    if (pid <= 0) return false;
  }
  return true;
}

TEST(Gang, AKilledRankStopsItsAttemptAndTheJobResumesFromItsCheckpoint) {
  TempDir dir;
  Daemon d(dir.path().string(), {"--cpu-slots", "2"});
  const std::string id = Submit(d, LongSpec(), 0, "gang", /*ranks=*/2);
  Job job = WaitFor(d, id, [&](const Job& j) { return RanksRunning(j, 2) && !Checkpoints(d, id).empty(); });
  ASSERT_TRUE(RanksRunning(job, 2)) << job.DebugString();
  const int rank0 = job.attempts(0).rank_pids(0), rank1 = job.attempts(0).rank_pids(1);
  ::kill(rank1, SIGKILL);

  job = WaitFor(d, id, [](const Job& j) { return j.attempts_size() >= 1 && j.attempts(0).ended_unix_ms() > 0; });
  // trainerd stopped rank 0 too: it would only have waited for rank 1 in a collective.
  EXPECT_THAT(job.attempts(0).reason(), HasSubstr("rank 1 killed by SIGKILL"));
  EXPECT_EQ(job.attempts(0).failed_rank(), 1);
  EXPECT_FALSE(testing::ReadFile(absl::StrCat("/proc/", rank0, "/cmdline")).find("trainer-worker") !=
               std::string::npos);

  job = WaitFor(d, id, Finished, 180);
  ASSERT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
  ASSERT_EQ(job.attempts_size(), 2);
  EXPECT_EQ(job.restarts(), 1);
  EXPECT_THAT(job.attempts(1).resumed_from(), HasSubstr(job.output_dir() + "/checkpoint-"));
  // Both ranks' logs reach the job's log stream, each line tagged with its rank.
  bool rank1_logged = false, resumed = false;
  for (const auto& l : Logs(d, id, false)) {
    rank1_logged |= l.rank() == 1 && l.text().find("[rank 1]") != std::string::npos;
    resumed |= l.rank() == 1 && l.attempt() == 2 && l.text().find("Resuming from") != std::string::npos;
  }
  EXPECT_TRUE(rank1_logged);
  EXPECT_TRUE(resumed);
}

TEST(Gang, RanksKeepTrainingWhileTrainerdRestartsAndAreReattached) {
  TempDir dir;
  auto d = std::make_unique<Daemon>(dir.path().string(), std::vector<std::string>{"--cpu-slots", "2"});
  const std::string id = Submit(*d, LongSpec(), 0, "gang", /*ranks=*/2);
  WaitFor(*d, id, [](const Job& j) { return RanksRunning(j, 2) && j.progress().step() >= 100; });
  EXPECT_EQ(d->Stop(SIGKILL), 128 + SIGKILL);
  d->Start();
  Job job = WaitFor(*d, id, Finished, 180);
  ASSERT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
  EXPECT_EQ(job.attempts_size(), 1);  // the same attempt: both ranks were re-attached
  testing::ExpectContiguous(Logs(*d, id, false));
}

TEST(Gang, JobsNeedingMoreRanksThanSlotsAreRejected) {
  TempDir dir;
  Daemon d(dir.path().string(), {"--cpu-slots", "2"});
  grpc::ClientContext ctx;
  d.Authorize(&ctx);
  trainer::v1::SubmitJobRequest req;
  *req.mutable_spec() = Spec("max_steps: 10");
  req.mutable_resources()->set_ranks(3);
  trainer::v1::SubmitJobResponse resp;
  grpc::Status s = d.stub().SubmitJob(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("resources.ranks: 3 ranks need as many CPU slots; this trainerd has 2"));

  // A layer-wise optimizer steps before gradients could be averaged: one rank only.
  grpc::ClientContext ctx2;
  d.Authorize(&ctx2);
  *req.mutable_spec() = Spec("max_steps: 10, optim: galore_adamw_layerwise, optim_target_modules: [layers]");
  req.mutable_resources()->set_ranks(2);
  s = d.stub().SubmitJob(&ctx2, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("resources.ranks: galore_adamw_layerwise"));
}

TEST(Gang, EachGpuRankSeesItsOwnGpus) {
  TempDir dir;
  // GPUs are counted, not probed, when given: on a machine without any the ranks see
  // their CUDA_VISIBLE_DEVICES but LibTorch finds no CUDA and trains on the CPU.
  Daemon d(dir.path().string(), {"--cpu-slots", "3", "--gpus", "2"});
  grpc::ClientContext ctx;
  d.Authorize(&ctx);
  trainer::v1::SubmitJobRequest req;
  *req.mutable_spec() = Spec("max_steps: 20, save_strategy: 'no'");
  req.mutable_resources()->set_ranks(2);
  req.mutable_resources()->set_gpus_per_rank(1);
  trainer::v1::SubmitJobResponse resp;
  ASSERT_TRUE(d.stub().SubmitJob(&ctx, req, &resp).ok());
  Job job = WaitFor(d, resp.job_id(), Finished);
  ASSERT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
  EXPECT_THAT(job.attempts(0).rank_gpus(), ::testing::ElementsAre("0", "1"));
}

}  // namespace
}  // namespace trainerd
