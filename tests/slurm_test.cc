// The Slurm test cluster itself (tests/slurm_cluster.h): three real slurmd place a gang
// one rank per node with the variables trainerd's Slurm launcher derives torchrun's
// from, a batch job runs to its end, and a real trainer-worker trains under srun.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/daemon_test_util.h"
#include "tests/slurm_cluster.h"
#include "tests/test_util.h"

namespace trainerd {
namespace {

using ::testing::HasSubstr;

class Slurm : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    cluster_ = testing::SlurmCluster::Start(dir_.path().string(), 3, 2, &error);
    ASSERT_NE(cluster_, nullptr) << error;
  }
  // The final weights of `spec` trained by a gang of 3 under the local launcher: what a
  // gang on the cluster must end with.
  std::string LocalGangWeights(const trainer::v1::JobSpec& spec, const std::string& name) {
    testing::Daemon local(dir_ / ("local-" + name), {"--cpu-slots", "3"});
    trainer::v1::Job job = testing::WaitFor(local, testing::Submit(local, spec, 0, name, 3), testing::Finished, 180);
    EXPECT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
    return testing::ReadFile(job.output_dir() + "/model.safetensors");
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::SlurmCluster> cluster_;
};

TEST_F(Slurm, PlacesOneRankPerNodeWithItsVariables) {
  testing::CommandResult r = cluster_->Run(
      "timeout 60 srun -N3 -n3 --ntasks-per-node=1 sh -c "
      "'echo $SLURM_PROCID $SLURM_NODEID $SLURM_LOCALID $SLURM_NTASKS $SLURMD_NODENAME $SLURM_JOB_NODELIST' | sort");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "0 0 0 3 n1 n[1-3]\n1 1 0 3 n2 n[1-3]\n2 2 0 3 n3 n[1-3]\n");
}

TEST_F(Slurm, RunsABatchJobToItsEnd) {
  const std::string out = dir_ / "job.out";
  testing::WriteFile(dir_ / "job.sh", absl::StrCat("#!/bin/sh\n#SBATCH -N 2\n#SBATCH -n 2\n#SBATCH -o ", out,
                                                   "\nsrun sh -c 'echo rank $SLURM_PROCID'\n"));
  testing::CommandResult r = cluster_->Run("sbatch --parsable " + (dir_ / "job.sh"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string job = std::string(absl::StripAsciiWhitespace(r.output));
  // Gone from the queue when it ended (sbatch --wait polls only every few seconds).
  for (int i = 0; i < 300 && !cluster_->Run("squeue -h -j " + job).output.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::vector<std::string> lines = absl::StrSplit(testing::ReadFile(out), '\n', absl::SkipEmpty());
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines, (std::vector<std::string>{"rank 0", "rank 1"}));
}

TEST_F(Slurm, ATrainerWorkerTrainsUnderSrun) {
  const std::string d = testing::kFashionDir;
  testing::WriteFile(dir_ / "job.yaml",
                     absl::StrCat("training_args: {output_dir: ", dir_ / "out",
                                  ", max_steps: 5, per_device_train_batch_size: 16, logging_steps: 5, "
                                  "save_strategy: 'no', do_eval: false}\n"
                                  "model: {type: mlp, hidden_sizes: [16]}\n"
                                  "data: {train: {path: ", d, "/train-images-idx3-ubyte.gz, labels_path: ", d,
                                  "/train-labels-idx1-ubyte.gz, limit: 200}}\n"));
  const std::string worker = std::filesystem::absolute(testing::BuildDir() + "/worker/trainer-worker").string();
  testing::CommandResult r =
      cluster_->Run(absl::StrCat("timeout 120 srun -N1 -n1 -w n2 ", worker, " --spec ", dir_ / "job.yaml"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(testing::ReadFile(dir_ / "out/all_results.json"), HasSubstr("train_loss"));
}

// trainerd --launcher slurm: a 3-rank gang becomes one Slurm job, one rank per node, whose
// ranks find each other through Slurm's allocation and train to the end.
TEST_F(Slurm, TrainerdRunsAGangAsOneSlurmJob) {
  ::setenv("SLURM_CONF", cluster_->conf().c_str(), 1);  // trainerd's sbatch and squeue read it
  testing::Daemon d(dir_ / "root", {"--launcher", "slurm", "--cpu-slots", "1"});
  const std::string id = testing::Submit(d, testing::Spec("max_steps: 6, save_strategy: 'no'"), 0, "gang", 3);
  trainer::v1::Job job = testing::WaitFor(d, id, testing::Finished, 180);
  ASSERT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
  const std::string attempt = absl::StrCat(dir_ / "root", "/jobs/", id, "/attempt-1");
  EXPECT_THAT(testing::ReadFile(attempt + "/slurm-batch.sh"), HasSubstr("#SBATCH --nodes=3"));
  for (int rank = 0; rank < 3; ++rank) {
    EXPECT_EQ(testing::ReadFile(absl::StrCat(attempt, "/rank", rank, ".exit")), absl::StrCat("0 n", rank + 1, "\n"));
    EXPECT_THAT(testing::ReadFile(absl::StrCat(attempt, "/rank", rank, ".log")), HasSubstr("train_runtime"));
  }
  // Slurm placed the gang on all three nodes; the attempt records the Slurm job's id
  // and the state it was last seen in.
  const std::string slurm_id = job.attempts(0).cluster_job_id();
  ASSERT_FALSE(slurm_id.empty());
  testing::CommandResult nodes = cluster_->Run("scontrol -o show job " + slurm_id);
  EXPECT_THAT(nodes.output, HasSubstr("NodeList=n[1-3]"));
  EXPECT_THAT(nodes.output, HasSubstr("JobName=trainerd-" + id + "-1"));
  EXPECT_THAT(job.attempts(0).cluster_state(), HasSubstr("on n[1-3]"));
}

// Cancel through Slurm: the rank gets SIGTERM, saves a checkpoint and exits 3, the Slurm
// job ends, and the job is CANCELLED.
TEST_F(Slurm, CancelCheckpointsAndEndsTheSlurmJob) {
  ::setenv("SLURM_CONF", cluster_->conf().c_str(), 1);
  testing::Daemon d(dir_ / "root", {"--launcher", "slurm", "--cpu-slots", "1"});
  const std::string id = testing::Submit(d, testing::Spec("max_steps: 5000, save_steps: 2000, logging_steps: 20"));
  testing::WaitFor(d, id, [](const trainer::v1::Job& j) {
    return j.state() == trainer::v1::RUNNING && j.progress().step() >= 20;
  });
  grpc::ClientContext ctx;
  d.Authorize(&ctx);
  trainer::v1::CancelJobRequest cancel;
  cancel.set_job_id(id);
  trainer::v1::Job cancelling;
  ASSERT_TRUE(d.stub().CancelJob(&ctx, cancel, &cancelling).ok());
  trainer::v1::Job job = testing::WaitFor(d, id, testing::Finished, 120);
  EXPECT_EQ(job.state(), trainer::v1::CANCELLED) << job.error();
  const std::string attempt = absl::StrCat(dir_ / "root", "/jobs/", id, "/attempt-1");
  EXPECT_THAT(testing::ReadFile(attempt + "/rank0.exit"), ::testing::StartsWith("3 n"));  // stopped after saving
  EXPECT_FALSE(testing::Checkpoints(d, id).empty());
  EXPECT_TRUE(cluster_->Run("squeue -h").output.empty());
}

// A job's time limit: Slurm's batch job gets it (--time, with --signal the grace period
// ahead); trainerd's own clock, which starts when Slurm runs the gang, sends SIGTERM the
// grace period before it; the rank saves a checkpoint, and the job fails with the reason,
// no restart used.
TEST_F(Slurm, ATimeLimitStopsTheRanksAfterACheckpoint) {
  ::setenv("SLURM_CONF", cluster_->conf().c_str(), 1);
  testing::Daemon d(dir_ / "root", {"--launcher", "slurm", "--cpu-slots", "1", "--grace-period", "4"});
  grpc::ClientContext ctx;
  d.Authorize(&ctx);
  trainer::v1::SubmitJobRequest req;
  *req.mutable_spec() = testing::Spec("max_steps: 100000, save_steps: 100000, logging_steps: 20");
  req.mutable_resources()->set_time_limit_s(10);
  trainer::v1::SubmitJobResponse resp;
  ASSERT_TRUE(d.stub().SubmitJob(&ctx, req, &resp).ok());
  const std::string id = resp.job_id();
  trainer::v1::Job job = testing::WaitFor(d, id, testing::Finished, 120);
  ASSERT_EQ(job.state(), trainer::v1::FAILED);
  EXPECT_EQ(job.restarts(), 0);
  EXPECT_THAT(job.error(), HasSubstr("time limit reached"));
  const std::string attempt = absl::StrCat(dir_ / "root", "/jobs/", id, "/attempt-1");
  const std::string batch = testing::ReadFile(attempt + "/slurm-batch.sh");
  EXPECT_THAT(batch, HasSubstr("#SBATCH --time=1\n"));
  EXPECT_THAT(batch, HasSubstr("#SBATCH --signal=TERM@4\n"));
  EXPECT_THAT(testing::ReadFile(attempt + "/rank0.exit"), ::testing::StartsWith("3 n"));  // stopped after saving
  EXPECT_FALSE(testing::Checkpoints(d, id).empty());
  const int64_t ran_ms = job.attempts(0).ended_unix_ms() - job.attempts(0).started_unix_ms();
  EXPECT_GE(ran_ms, 6000);
  EXPECT_LT(ran_ms, 20000);
  EXPECT_TRUE(cluster_->Run("squeue -h").output.empty());
}

// A gang larger than the partition (one rank per node) is refused at submission, with the
// reason, instead of waiting in Slurm's queue forever.
TEST_F(Slurm, AGangLargerThanThePartitionIsRefusedAtSubmission) {
  ::setenv("SLURM_CONF", cluster_->conf().c_str(), 1);
  testing::Daemon d(dir_ / "root", {"--launcher", "slurm", "--cpu-slots", "1"});
  grpc::ClientContext ctx;
  d.Authorize(&ctx);
  trainer::v1::SubmitJobRequest req;
  *req.mutable_spec() = testing::Spec("max_steps: 5");
  req.mutable_resources()->set_ranks(4);
  trainer::v1::SubmitJobResponse resp;
  grpc::Status s = d.stub().SubmitJob(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("resources.ranks: 4 ranks need as many CPU slots; this trainerd has 3"));
  EXPECT_THAT(s.error_message(), HasSubstr("one per node of the partition"));
}

// The pids of the trainer-worker processes that run rank `rank` of job `id`.
std::vector<int> RankWorkers(const std::string& id, int rank) {
  std::vector<int> pids;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::string environ = testing::ReadFile(e.path().string() + "/environ");
    std::replace(environ.begin(), environ.end(), '\0', '\n');
    if (testing::ReadFile(e.path().string() + "/cmdline").find("trainer-worker") == std::string::npos) continue;
    if (environ.find("\nTRAINERD_JOB_ID=" + id + "\n") == std::string::npos) continue;
    if (environ.find(absl::StrCat("\nRANK=", rank, "\n")) == std::string::npos) continue;
    pids.push_back(std::atoi(e.path().filename().c_str()));
  }
  return pids;
}

// trainerd killed while its Slurm job runs: the restarted trainerd follows that Slurm
// job again by its recorded id (one attempt, never two copies), the job succeeds, and
// its log is contiguous.
TEST_F(Slurm, ARestartedTrainerdReattachesToItsSlurmJob) {
  ::setenv("SLURM_CONF", cluster_->conf().c_str(), 1);
  testing::Daemon d(dir_ / "root", {"--launcher", "slurm", "--cpu-slots", "1"});
  // Long enough that it cannot finish while trainerd restarts.
  const std::string id = testing::Submit(d, testing::Spec("max_steps: 10000, save_steps: 500, logging_steps: 500"));
  testing::WaitFor(d, id, [&](const trainer::v1::Job& j) {
    return j.state() == trainer::v1::RUNNING && !testing::Checkpoints(d, id).empty();
  });
  EXPECT_EQ(d.Stop(SIGKILL), 128 + SIGKILL);
  d.Start();
  bool overlapped = false;
  trainer::v1::Job job = testing::WaitFor(d, id, [&](const trainer::v1::Job& j) {
    overlapped = overlapped || RankWorkers(id, 0).size() > 1;
    return testing::Finished(j);
  }, 180);
  ASSERT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
  EXPECT_FALSE(overlapped);
  ASSERT_EQ(job.attempts_size(), 1) << job.DebugString();
  EXPECT_FALSE(job.attempts(0).cluster_job_id().empty());
  const auto lines = testing::Logs(d, id, false);
  testing::ExpectContiguous(lines);
  // Each step line once: nothing read twice or lost across the restart.
  std::map<std::string, int> steps;
  for (const auto& line : lines) {
    if (line.text().find("train step ") != std::string::npos) ++steps[line.text()];
  }
  for (const auto& [text, count] : steps) EXPECT_EQ(count, 1) << text;
  bool last = false;
  for (const auto& [text, count] : steps) last |= text.find("train step 10000/10000") != std::string::npos;
  EXPECT_TRUE(last);
}

// A rank killed with SIGKILL ends the Slurm job; the attempt says which rank on which
// node, and the job restarts from its checkpoint and finishes.
TEST_F(Slurm, AKilledRankRestartsTheJobFromItsCheckpoint) {
  ::setenv("SLURM_CONF", cluster_->conf().c_str(), 1);
  testing::Daemon d(dir_ / "root", {"--launcher", "slurm", "--cpu-slots", "1"});
  const std::string id = testing::Submit(d, testing::Spec("max_steps: 300, save_steps: 20, logging_steps: 20"), 0,
                                         "gang", 2);
  testing::WaitFor(d, id, [&](const trainer::v1::Job& j) {
    return j.state() == trainer::v1::RUNNING && !testing::Checkpoints(d, id).empty() && !RankWorkers(id, 1).empty();
  });
  ASSERT_EQ(::kill(RankWorkers(id, 1).at(0), SIGKILL), 0);
  trainer::v1::Job job = testing::WaitFor(d, id, testing::Finished, 180);
  ASSERT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
  ASSERT_GE(job.attempts_size(), 2);
  EXPECT_THAT(job.attempts(0).reason(), HasSubstr("rank 1 on n2 killed by SIGKILL"));
  EXPECT_EQ(job.attempts(0).failed_rank(), 1);
  EXPECT_THAT(job.attempts(1).resumed_from(), HasSubstr(job.output_dir() + "/checkpoint-"));
  EXPECT_EQ(job.restarts(), 1);
}

// A 3-rank gang, one rank per Slurm node, ends with the same weights as the same gang
// run by the local launcher on trainerd's machine.
TEST_F(Slurm, AGangEndsWithTheWeightsTheLocalLauncherGives) {
  const trainer::v1::JobSpec spec = testing::Spec("max_steps: 30, save_strategy: 'no'");
  const std::string reference = LocalGangWeights(spec, "gang");
  ::setenv("SLURM_CONF", cluster_->conf().c_str(), 1);
  testing::Daemon d(dir_ / "root", {"--launcher", "slurm", "--cpu-slots", "3"});
  trainer::v1::Job job = testing::WaitFor(d, testing::Submit(d, spec, 0, "gang", 3), testing::Finished, 180);
  ASSERT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
  EXPECT_THAT(job.attempts(0).cluster_state(), HasSubstr("on n[1-3]"));
  EXPECT_FALSE(reference.empty());
  EXPECT_EQ(testing::ReadFile(job.output_dir() + "/model.safetensors"), reference);
}

// fsdp full_shard with sharded checkpoints on three nodes: each rank writes its own
// slices into the checkpoint (the writers agree over their own process group), and the
// gang ends with the weights the local launcher's gang gives.
TEST_F(Slurm, AFullyShardedGangWritesItsShardsOnEveryNode) {
  const trainer::v1::JobSpec spec = testing::Spec(
      "max_steps: 12, save_steps: 6, fsdp: full_shard, fsdp_config: {state_dict_type: SHARDED_STATE_DICT}");
  const std::string reference = LocalGangWeights(spec, "fsdp");
  ::setenv("SLURM_CONF", cluster_->conf().c_str(), 1);
  testing::Daemon d(dir_ / "root", {"--launcher", "slurm", "--cpu-slots", "3"});
  trainer::v1::Job job = testing::WaitFor(d, testing::Submit(d, spec, 0, "fsdp", 3), testing::Finished, 180);
  ASSERT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
  EXPECT_THAT(job.attempts(0).cluster_state(), HasSubstr("on n[1-3]"));
  for (int rank = 0; rank < 3; ++rank) {
    EXPECT_TRUE(std::filesystem::exists(
        absl::StrCat(job.output_dir(), "/checkpoint-12/fsdp_shards/model-rank-0000", rank, "-of-00003.safetensors")));
  }
  EXPECT_FALSE(reference.empty());
  EXPECT_EQ(testing::ReadFile(job.output_dir() + "/model.safetensors"), reference);
}

// A higher-priority partition takes the nodes back: Slurm signals the ranks (they save a
// checkpoint and exit), requeues the job and runs it again when the nodes are free; the
// requeued run continues from that checkpoint. The job ends with the same weights as an
// uninterrupted local run, one attempt, one preemption and no restart counted.
TEST_F(Slurm, APreemptedJobContinuesFromItsCheckpointWithExactWeights) {
  // Long enough (some 6 s of training) that Slurm preempts it before it ends.
  const trainer::v1::JobSpec spec = testing::Spec("max_steps: 15000, save_steps: 1500, logging_steps: 1500");
  std::string reference;
  {
    testing::Daemon local(dir_ / "local", {"--cpu-slots", "1"});
    trainer::v1::Job job = testing::WaitFor(local, testing::Submit(local, spec), testing::Finished, 180);
    ASSERT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
    reference = testing::ReadFile(job.output_dir() + "/model.safetensors");
  }
  ::setenv("SLURM_CONF", cluster_->conf().c_str(), 1);
  testing::Daemon d(dir_ / "root", {"--launcher", "slurm", "--cpu-slots", "1"});
  const std::string id = testing::Submit(d, spec);
  testing::WaitFor(d, id, [&](const trainer::v1::Job&) { return !RankWorkers(id, 0).empty(); });
  testing::CommandResult high = cluster_->Run("sbatch --parsable -p high -N3 --wrap 'sleep 2'");
  ASSERT_EQ(high.exit_code, 0) << high.output;
  // Slurm holds a requeued job for two minutes (Reason=BeginTime); an operator's
  // `scontrol update StartTime=now` lets it run as soon as the nodes are free.
  trainer::v1::Job job = testing::WaitFor(d, id, [](const trainer::v1::Job& j) {
    return testing::Finished(j) || j.attempts(0).cluster_state().find("BeginTime") != std::string::npos;
  });
  if (!testing::Finished(job)) {
    testing::CommandResult now = cluster_->Run("scontrol update JobId=" + job.attempts(0).cluster_job_id() + " StartTime=now");
    EXPECT_EQ(now.exit_code, 0) << now.output;
  }
  job = testing::WaitFor(d, id, testing::Finished, 180);
  ASSERT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
  ASSERT_EQ(job.attempts_size(), 1) << job.DebugString();
  EXPECT_EQ(job.attempts(0).preemptions(), 1);
  EXPECT_EQ(job.restarts(), 0);
  const std::string log = testing::ReadFile(absl::StrCat(dir_ / "root", "/jobs/", id, "/attempt-1/rank0.log"));
  EXPECT_THAT(log, HasSubstr("Stopped by SIGTERM"));
  EXPECT_EQ(testing::ReadFile(job.output_dir() + "/model.safetensors"), reference);
}

}  // namespace
}  // namespace trainerd
