// The supervisor's pure logic: scheduling order, gang placement and the head-of-queue
// reservation; the state table; how an attempt's end is judged; what each rank is
// started with.
#include "server/jobs/scheduler.h"

#include <signal.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "protocol/worker_environment.h"
#include "protocol/worker_exit_codes.h"
#include "server/jobs/attempt_verdict.h"
#include "server/jobs/job_state.h"
#include "server/jobs/metric_history.h"
#include "server/jobs/rank_launch_plan.h"
#include "server/launch/slurm_batch_script.h"

namespace trainerd {
namespace {

using ::testing::HasSubstr;

TEST(Scheduler, PriorityThenSubmissionTime) {
  auto start = PickJobsToStart({{"old-low", 0, 1}, {"new-high", 5, 3}, {"old-high", 5, 2}}, {2, 0});
  EXPECT_EQ(start, (std::vector<std::string>{"old-high", "new-high"}));
}

TEST(Scheduler, TheHeadReservesSoSmallJobsCannotStarveIt) {
  // A 4-slot job at the head, 2 slots free: the 1-slot jobs behind it wait.
  auto start = PickJobsToStart({{"big", 9, 1, 4}, {"small", 0, 2, 1}, {"small2", 0, 3, 1}}, {2, 0});
  EXPECT_TRUE(start.empty());
  // Gang: all of a job's slots at once, or none.
  start = PickJobsToStart({{"big", 9, 1, 4}, {"small", 0, 2, 1}}, {4, 0});
  EXPECT_EQ(start, (std::vector<std::string>{"big"}));
  EXPECT_TRUE(PickJobsToStart({{"gpu", 0, 1, 1, 2}}, {8, 1}).empty());
}

TEST(Placement, PacksRanksOnTheFewestMachines) {
  std::vector<NodeSlots> nodes = {{"", 1, 0}, {"a", 3, 0}, {"b", 2, 0}};
  auto placed = PlaceRanks(4, 0, &nodes);
  ASSERT_TRUE(placed.has_value());
  EXPECT_EQ(*placed, (std::vector<std::string>{"a", "a", "a", "b"}));
  EXPECT_EQ(nodes[1].cpu_slots, 0);
  EXPECT_EQ(nodes[2].cpu_slots, 1);
  // 2 slots are left: a 3-rank gang does not fit and takes nothing.
  EXPECT_FALSE(PlaceRanks(3, 0, &nodes).has_value());
  EXPECT_EQ(nodes[0].cpu_slots + nodes[2].cpu_slots, 2);
}

TEST(Placement, RanksGoWhereTheirGpusAre) {
  // 4 CPU slots on "" but no GPUs: GPU ranks go to the nodes that have them.
  std::vector<NodeSlots> nodes = {{"", 4, 0}, {"a", 2, 1}, {"b", 2, 2}};
  auto placed = PlaceRanks(3, 1, &nodes);
  ASSERT_TRUE(placed.has_value());
  EXPECT_EQ(*placed, (std::vector<std::string>{"b", "b", "a"}));
  EXPECT_FALSE(PlaceRanks(1, 1, &nodes).has_value());
  EXPECT_EQ(PlaceRanks(2, 0, &nodes), (std::vector<std::string>{"", ""}));
}

TEST(JobState, TransitionTable) {
  using namespace trainer::v1;
  EXPECT_TRUE(CanTransition(QUEUED, STARTING));
  EXPECT_TRUE(CanTransition(RUNNING, RESTARTING));
  EXPECT_TRUE(CanTransition(FAILED, QUEUED));
  EXPECT_FALSE(CanTransition(SUCCEEDED, RUNNING));
  EXPECT_FALSE(CanTransition(QUEUED, RUNNING));
  EXPECT_FALSE(CanTransition(CANCELLED, CANCELLING));
  EXPECT_TRUE(IsTerminal(CANCELLED));
  EXPECT_FALSE(IsTerminal(RESTARTING));
}


AttemptEnd Ended(int exit_code, int signal = 0) {
  AttemptEnd end;
  end.attempt = 2;
  end.exit.exit_code = exit_code;
  end.exit.signal = signal;
  return end;
}

TEST(AttemptVerdict, FailuresRestartUntilTheLimitButABadSpecNever) {
  AttemptVerdict v = JudgeAttempt(Ended(1), 0, 3);
  EXPECT_EQ(v.next_state, trainer::v1::RESTARTING);
  EXPECT_TRUE(v.restart_counted);
  EXPECT_EQ(v.error, "attempt 2: exited 1");
  EXPECT_EQ(JudgeAttempt(Ended(1), 3, 3).next_state, trainer::v1::FAILED);
  v = JudgeAttempt(Ended(kWorkerExitInvalidSpec), 0, 3);
  EXPECT_EQ(v.next_state, trainer::v1::FAILED);
  EXPECT_EQ(v.reason, "exited 2: the worker rejected the spec");
  EXPECT_EQ(JudgeAttempt(Ended(kWorkerExitOutOfMemory), 0, 3).next_state, trainer::v1::FAILED);
  EXPECT_EQ(JudgeAttempt(Ended(0), 0, 3).next_state, trainer::v1::SUCCEEDED);
}

// SIGKILL is "out of memory" only when the kernel's OOM killer ran meanwhile.
// Every queued job's place and reason: what fits starts, the head that does not fit
// waits for resources, and everything behind it for priority.
TEST(Scheduler, PlanQueueSaysWhereEachJobStandsAndWhy) {
  auto spots = PlanQueue({{"small", 0, 2, 1}, {"first", 5, 1, 1}, {"big", 5, 3, 4, 2}, {"later", 0, 4, 1}}, {3, 1});
  ASSERT_EQ(spots.size(), 4u);
  EXPECT_EQ(spots[0].id, "first");
  EXPECT_EQ(spots[0].position, 1);
  EXPECT_EQ(spots[0].reason, "");  // starts now
  EXPECT_EQ(spots[1].id, "big");
  EXPECT_EQ(spots[1].reason, "Resources: needs 4 CPU slot(s) and 2 GPU(s); 2 slot(s) and 1 GPU(s) free");
  EXPECT_EQ(spots[2].id, "small");
  EXPECT_EQ(spots[2].position, 3);
  EXPECT_EQ(spots[2].reason, "Priority: 2 job(s) ahead");  // it would fit, but big holds the slots
  EXPECT_EQ(spots[3].reason, "Priority: 3 job(s) ahead");
  EXPECT_EQ(PickJobsToStart({{"small", 0, 2, 1}, {"first", 5, 1, 1}, {"big", 5, 3, 4, 2}}, {3, 1}),
            std::vector<std::string>{"first"});
}

TEST(AttemptVerdict, SigkillIsCalledOutOfMemoryOnlyAfterTheOomKiller) {
  ExitInfo killed{-1, SIGKILL, false};
  EXPECT_EQ(DescribeExit(killed), "killed by SIGKILL");
  killed.oom_killed = true;
  EXPECT_THAT(DescribeExit(killed), ::testing::HasSubstr("out of memory (the kernel's OOM killer"));
  EXPECT_GE(OomKillCount(), 0);  // /proc/vmstat has the counter on every kernel this runs on
}

trainer::v1::MetricPoint Point(const std::string& name, int64_t step, int32_t attempt) {
  trainer::v1::MetricPoint p;
  p.set_name(name);
  p.set_split("train");
  p.set_step(step);
  p.set_attempt(attempt);
  return p;
}

// Attempt 1 logged steps 10..40 and saved at 20; attempt 2 resumed from 20 and logged
// 30 again; attempt 3 has not begun training yet. The history is 10, 20 (attempt 1)
// and 30 (attempt 2); attempt 1's 30 and 40 are no longer the run's.
TEST(MetricHistory, AResumedAttemptReplacesWhatTheEarlierOneLoggedPastItsCheckpoint) {
  google::protobuf::RepeatedPtrField<trainer::v1::Attempt> attempts;
  attempts.Add()->set_number(1);
  attempts[0].set_start_step(0);
  attempts.Add()->set_number(2);
  attempts[1].set_start_step(20);
  attempts.Add()->set_number(3);  // starting: no start_step yet
  std::vector<trainer::v1::MetricPoint> points = {Point("loss", 10, 1), Point("loss", 20, 1), Point("loss", 30, 1),
                                                  Point("loss", 40, 1), Point("loss", 30, 2)};
  std::vector<trainer::v1::MetricPoint> history = CurrentHistory(points, attempts);
  std::vector<std::pair<int64_t, int32_t>> kept;
  for (const auto& p : history) kept.emplace_back(p.step(), p.attempt());
  EXPECT_EQ(kept, (std::vector<std::pair<int64_t, int32_t>>{{10, 1}, {20, 1}, {30, 2}}));
  // A restart without a checkpoint begins at 0: only the new attempt's points remain.
  attempts[2].set_start_step(0);
  points.push_back(Point("loss", 10, 3));
  history = CurrentHistory(points, attempts);
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].step(), 10);
  EXPECT_EQ(history[0].attempt(), 3);
}

TEST(AttemptVerdict, LostNodesCancelsAndShutdownsAreNotTheJobsFault) {
  AttemptEnd lost = Ended(-1, SIGKILL);
  lost.node_lost = true;
  lost.stop_reason = "rank 1: Slurm job 12 ended NODE_FAIL";
  AttemptVerdict v = JudgeAttempt(lost, 3, 3);  // no restarts left, still restarted
  EXPECT_EQ(v.next_state, trainer::v1::RESTARTING);
  EXPECT_FALSE(v.restart_counted);
  EXPECT_EQ(v.reason, lost.stop_reason);
  AttemptEnd cancelled = Ended(3);
  cancelled.stop_reason = kStopCancelled;
  EXPECT_EQ(JudgeAttempt(cancelled, 0, 3).next_state, trainer::v1::CANCELLED);
  AttemptEnd shutdown = Ended(3);
  shutdown.stop_reason = kStopShutdown;
  v = JudgeAttempt(shutdown, 0, 3);
  EXPECT_EQ(v.next_state, trainer::v1::RESTARTING);
  EXPECT_FALSE(v.restart_counted);
  AttemptEnd timed_out = Ended(3);  // stopped after a checkpoint at the time limit
  timed_out.stop_reason = kStopTimeLimit;
  v = JudgeAttempt(timed_out, 0, 3);
  EXPECT_EQ(v.next_state, trainer::v1::FAILED);  // not retried: a restart would get round the limit
  EXPECT_FALSE(v.restart_counted);
  EXPECT_THAT(v.error, HasSubstr("time limit reached"));
  AttemptEnd finished_in_time = Ended(0);
  finished_in_time.stop_reason = kStopTimeLimit;
  EXPECT_EQ(JudgeAttempt(finished_in_time, 0, 3).next_state, trainer::v1::SUCCEEDED);
  AttemptEnd unknown = Ended(-1);
  unknown.exit.status_unknown = true;
  EXPECT_EQ(JudgeAttempt(unknown, 0, 3).reason, "ended (exit status unknown)");
}

TEST(RankLaunchPlan, EachRankGetsItsTorchrunVariablesFilesAndGpus) {
  JobOptions options;
  options.data_root = "/data";
  options.worker_program = "/bin/trainer-worker";
  options.threads_per_slot = 4;
  trainer::v1::Job job;
  job.set_id("j1");
  job.mutable_resources()->set_ranks(3);
  job.mutable_resources()->set_gpus_per_rank(1);
  job.mutable_resources()->set_time_limit_s(600);
  AttemptLaunchPlan plan;
  plan.attempt = 2;
  plan.resume_from = "true";
  plan.nodes = {"", "", "n1"};
  plan.gpus = {{0}, {1}, {0}};
  plan.worker_address = "10.0.0.1:50051";
  plan.secret = "s3cret";
  plan.master_addr = "10.0.0.1";
  plan.master_port = 29500;
  std::vector<RankStart> starts = PlanRankStarts(job, plan, options);
  ASSERT_EQ(starts.size(), 3u);
  const RankStart& last = starts[2];
  EXPECT_EQ(last.id.rank, 2);
  EXPECT_EQ(last.node, "n1");
  EXPECT_EQ(last.launch.log_path, "/data/jobs/j1/attempt-2/rank2.log");
  EXPECT_EQ(last.launch.working_dir, "/data/jobs/j1/attempt-2");
  EXPECT_EQ(last.launch.env.at(kEnvRank), "2");
  EXPECT_EQ(last.gpus_per_rank, 1);  // what a cluster launcher asks the cluster for
  EXPECT_EQ(last.time_limit_s, 600);
  EXPECT_EQ(last.launch.env.at(kEnvLocalRank), "0");  // the first rank on its node
  EXPECT_EQ(last.launch.env.at(kEnvLocalWorldSize), "1");
  EXPECT_EQ(starts[1].launch.env.at(kEnvLocalRank), "1");
  EXPECT_EQ(starts[1].launch.env.at(kEnvLocalWorldSize), "2");
  EXPECT_EQ(last.launch.env.at(kEnvWorldSize), "3");
  EXPECT_EQ(last.launch.env.at(kEnvMasterAddr), "10.0.0.1");
  EXPECT_EQ(last.launch.env.at(kEnvMasterPort), "29500");
  EXPECT_EQ(last.launch.env.at(kEnvWorkerSecret), "s3cret");
  EXPECT_EQ(starts[1].launch.env.at("CUDA_VISIBLE_DEVICES"), "1");
  const WorkerCommandLine& command = last.launch.command;
  EXPECT_EQ(command.spec_path, "/data/jobs/j1/spec.json");
  EXPECT_THAT(command.overrides, ::testing::Contains("training_args.torch_num_threads=4"));
  EXPECT_FALSE(command.resume_from.empty());
  EXPECT_EQ(command.heartbeat_file, "/data/jobs/j1/attempt-2/heartbeat-2");
  const std::vector<std::string> args = command.Args();
  EXPECT_EQ(args[0], kWorkerFlagSpec);
  EXPECT_EQ(args[1], "/data/jobs/j1/spec.json");
  EXPECT_NE(std::find(args.begin(), args.end(), kWorkerFlagResume), args.end());
  EXPECT_EQ(args.back(), "/data/jobs/j1/attempt-2/heartbeat-2");
  const std::vector<std::string> without_resume = command.Args(/*with_resume=*/false);
  EXPECT_EQ(std::find(without_resume.begin(), without_resume.end(), kWorkerFlagResume), without_resume.end());
  EXPECT_EQ(last.launch.address_space_limit_bytes, 0);  // GPU ranks: CUDA maps its own
}

TEST(SlurmBatchScript, OneTaskPerRankWithItsOwnCommandLineAndSlurmsPlacement) {
  EXPECT_EQ(ShellQuote("it's $HOME"), "'it'\\''s $HOME'");
  std::vector<RankStart> ranks(2);
  for (int k = 0; k < 2; ++k) {
    ranks[k].id = RankId{"j1", 3, k};
    ranks[k].node = "slurm";
    ranks[k].launch.program = "/opt/trainer-worker";
    ranks[k].launch.command.spec_path = "/d/jobs/j1/spec.json";
    ranks[k].launch.command.resume_from = "/d/out/checkpoint-5";
    ranks[k].launch.command.heartbeat_file = k == 0 ? "hb" : "hb-1";
    ranks[k].launch.working_dir = "/d/jobs/j1/attempt-3";
    ranks[k].launch.log_path = absl::StrCat("/d/jobs/j1/attempt-3/rank", k, ".log");
    ranks[k].launch.env = {{kEnvRank, std::to_string(k)}, {kEnvLocalRank, std::to_string(k)},
                           {kEnvMasterAddr, ""}, {"CUDA_VISIBLE_DEVICES", ""}, {kEnvWorkerSecret, "s'cret"}};
  }
  SlurmJobOptions options;
  options.partition = "gpu";
  options.cpus_per_rank = 4;
  options.gpus_per_rank = 1;
  EXPECT_EQ(SlurmBatchScript(ranks, options, "r.sh").find("--time"), std::string::npos);  // the partition's limit
  options.time_limit_s = 3601;
  options.signal_ahead_s = 45;
  const std::string batch = SlurmBatchScript(ranks, options, "/d/jobs/j1/attempt-3/slurm-ranks.sh");
  for (const char* line : {"#SBATCH --nodes=2", "#SBATCH --ntasks=2", "#SBATCH --ntasks-per-node=1",
                           "#SBATCH --cpus-per-task=4", "#SBATCH --gpus-per-task=1", "#SBATCH --partition=gpu",
                           "#SBATCH --requeue", "#SBATCH --time=61", "#SBATCH --signal=TERM@45", "exec srun --kill-on-bad-exit=1 /bin/sh '/d/jobs/j1/attempt-3/slurm-ranks.sh'"}) {
    EXPECT_NE(batch.find(line), std::string::npos) << line << " in\n" << batch;
  }
  const std::string ranks_script = SlurmRankScript(ranks);
  EXPECT_NE(ranks_script.find("1)\n  export RANK='1'"), std::string::npos) << ranks_script;
  EXPECT_NE(ranks_script.find("export TRAINERD_WORKER_SECRET='s'\\''cret'"), std::string::npos);
  // The checkpoint it was planned to resume from, or after Slurm requeued it (a
  // preemption) the newest one.
  EXPECT_NE(ranks_script.find("  resume='/d/out/checkpoint-5'\n  if [ \"${SLURM_RESTART_COUNT:-0}\" -gt 0 ]; then "
                              "resume=true; fi\n"),
            std::string::npos)
      << ranks_script;
  EXPECT_NE(ranks_script.find("'--heartbeat-file' 'hb-1' ${resume:+--resume-from-checkpoint \"$resume\"} >> "
                              "'/d/jobs/j1/attempt-3/rank1.log' 2>&1"),
            std::string::npos)
      << ranks_script;
  EXPECT_NE(ranks_script.find("echo \"$status $SLURMD_NODENAME\" > '/d/jobs/j1/attempt-3/rank1.exit'"), std::string::npos);
  // Where the rank runs is Slurm's to say: trainerd's placement and GPU choice are left out.
  EXPECT_EQ(ranks_script.find("export CUDA_VISIBLE_DEVICES"), std::string::npos);
  EXPECT_EQ(ranks_script.find("export MASTER_ADDR"), std::string::npos);
  EXPECT_NE(ranks_script.find("LOCAL_RANK=\"$SLURM_LOCALID\""), std::string::npos);
}

}  // namespace
}  // namespace trainerd
