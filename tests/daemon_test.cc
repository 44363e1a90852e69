// End to end: a real trainerd on a loopback port, real trainer-worker processes, a real
// SQLite file, real (tiny) training.
#include <limits>
#include <random>

#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <grpcpp/generic/generic_stub.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "protocol/training_record.h"
#include "tests/daemon_test_util.h"
#include "tests/log_followers.h"
#include "tests/spec_fuzz_util.h"

namespace trainerd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::Daemon;
using testing::TempDir;
using trainer::v1::Job;
using trainer::v1::JobState;

using testing::Checkpoints;
using testing::ExpectContiguous;
using testing::Finished;
using testing::Get;
using testing::Logs;
using testing::Spec;
using testing::Submit;
using testing::WaitFor;

// A relative --data-root is made absolute when trainerd starts: its workers, which start
// in their attempt's folder, find their spec (before, every job failed with exit 2).
TEST(Daemon, JobRunsUnderARelativeDataRoot) {
  TempDir dir;
  const std::string relative = std::filesystem::relative(dir.path() / "root").string();
  ASSERT_NE(relative.front(), '/');
  Daemon d(relative);
  const std::string id = Submit(d, Spec("max_steps: 5"));
  const Job job = WaitFor(d, id, Finished);
  EXPECT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
}

TEST(Daemon, JobRunsToSuccessWithLogsMetricsAndCheckpoints) {
  TempDir dir;
  Daemon d(dir.path().string());
  const std::string id = Submit(d, Spec("max_steps: 40, save_steps: 10, eval_strategy: steps, eval_steps: 20"),
                                0, "tiny");
  // Following the logs ends when the job ends.
  const auto followed = Logs(d, id, /*follow=*/true);
  Job job = WaitFor(d, id, Finished);
  ASSERT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
  EXPECT_EQ(job.name(), "tiny");
  ASSERT_EQ(job.attempts_size(), 1);
  EXPECT_EQ(job.attempts(0).reason(), "exited 0");
  EXPECT_EQ(job.progress().step(), 40);
  EXPECT_GT(job.progress().eval_metrics().at("eval_accuracy"), 0.3);

  ExpectContiguous(followed);
  const auto all = Logs(d, id, /*follow=*/false);
  EXPECT_EQ(all.size(), followed.size());
  bool saw_step_line = false;
  for (const auto& l : all) saw_step_line |= l.text().find("train step 40/40") != std::string::npos;
  EXPECT_TRUE(saw_step_line);
  EXPECT_EQ(Logs(d, id, false, 5).front().seq(), 5);

  const trainer::v1::GetMetricsResponse metrics = testing::Metrics(d, id, "loss", "train");
  EXPECT_EQ(metrics.points_size(), 8);  // every 5 of 40 steps

  const auto checkpoints = Checkpoints(d, id);
  ASSERT_EQ(checkpoints.size(), 4u);
  EXPECT_EQ(checkpoints.back().step(), 40);
  EXPECT_GT(checkpoints.back().size_bytes(), 0);
  EXPECT_THAT(checkpoints.back().checksum(), HasSubstr("crc32:"));
}

// 200 clients following a running job's logs hold no thread of trainerd's each (the
// callback API and one pump), and every one of them gets the job's end.
TEST(Daemon, JobRunsWithTwoHundredFollowersOnAFewThreads) {
  TempDir dir;
  Daemon d(dir.path().string());
  const std::string id = Submit(d, Spec("max_steps: 100000, logging_steps: 50, save_strategy: 'no'"));
  WaitFor(d, id, [](const Job& j) { return j.progress().step() > 0; });
  const int64_t before = testing::Use(d.pid()).threads;
  constexpr int kFollowers = 200;
  testing::LogFollowers followers({&d.stub()}, id, kFollowers, [&d](grpc::ClientContext* c) { d.Authorize(c); });
  ASSERT_EQ(followers.WaitStarted(std::chrono::seconds(60)), kFollowers);
  EXPECT_LT(testing::Use(d.pid()).threads - before, 20) << before << " threads before";
  testing::Cancel(d, id);
  EXPECT_EQ(followers.Drain(std::chrono::seconds(60)), kFollowers);  // every follow ended OK with the job
}

TEST(Daemon, BadSpecsAreRejectedWithFieldErrors) {
  TempDir dir;
  Daemon d(dir.path().string());
  grpc::ClientContext ctx;
  d.Authorize(&ctx);
  trainer::v1::SubmitJobRequest req;
  *req.mutable_spec() = Spec("learning_rate: -1, optim: adam");
  req.mutable_spec()->mutable_data()->mutable_train()->set_path("/no/such/file");
  trainer::v1::SubmitJobResponse resp;
  grpc::Status s = d.stub().SubmitJob(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("training_args.learning_rate: must be > 0"));
  EXPECT_THAT(s.error_message(), HasSubstr("training_args.optim: \"adam\" is not supported"));
  EXPECT_THAT(s.error_message(), HasSubstr("data.train.path: is not under a folder this trainerd allows"));

  grpc::ClientContext ctx2;
  d.Authorize(&ctx2);
  trainer::v1::SubmitJobRequest custom;
  *custom.mutable_spec() = Spec("max_steps: 1");
  custom.set_worker_program("/bin/true");
  s = d.stub().SubmitJob(&ctx2, custom, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("worker_program"));

  grpc::ClientContext ctx3;
  d.Authorize(&ctx3);
  trainer::v1::GetJobRequest get;
  get.set_job_id("nope");
  Job job;
  EXPECT_EQ(d.stub().GetJob(&ctx3, get, &job).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST(Daemon, CancelStopsTheWorkerAfterACheckpoint) {
  TempDir dir;
  Daemon d(dir.path().string());
  // 800 training examples in batches of 32: an epoch is 25 steps, each evaluated.
  const std::string id = Submit(d, Spec("max_steps: 100000, save_steps: 100000, eval_strategy: epoch"));
  WaitFor(d, id, [](const Job& j) { return j.progress().step() >= 10; });
  const Job cancelling = testing::Cancel(d, id);
  EXPECT_EQ(cancelling.state(), trainer::v1::CANCELLING);
  Job job = WaitFor(d, id, Finished, 30);
  EXPECT_EQ(job.state(), trainer::v1::CANCELLED);
  EXPECT_EQ(job.attempts(0).reason(), "cancelled");
  EXPECT_EQ(job.attempts(0).exit_code(), 3);  // the worker saved a checkpoint and stopped
  EXPECT_EQ(job.attempts(0).failed_rank(), -1);  // stopped, not failed
  EXPECT_FALSE(Checkpoints(d, id).empty());
  // It stopped at once: no evaluation of the unfinished epoch, no train_end record (the
  // run has not ended; its resumption would write one).
  const std::string log = testing::ReadFile(job.output_dir() + "/trainer_log.jsonl");
  for (const std::string& line : std::vector<std::string>(absl::StrSplit(log, '\n'))) {
    EXPECT_THAT(line, Not(HasSubstr("\"kind\":\"train_end\"")));
    auto record = ParseTrainingRecord(line);
    if (record && record->kind == "eval") {
      EXPECT_EQ(record->step % 25, 0) << line;
    }
  }
}

TEST(Daemon, AJobStopsAtItsTimeLimitAfterACheckpointAndResumeContinuesIt) {
  TempDir dir;
  Daemon d(dir.path().string(), {"--grace-period", "3"});
  grpc::ClientContext ctx;
  d.Authorize(&ctx);
  trainer::v1::SubmitJobRequest req;
  *req.mutable_spec() = Spec("max_steps: 100000, save_steps: 100000");
  req.mutable_resources()->set_time_limit_s(2);  // not longer than the grace period
  trainer::v1::SubmitJobResponse resp;
  grpc::Status s = d.stub().SubmitJob(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("resources.time_limit_s: must be longer than trainerd's grace period"));

  req.mutable_resources()->set_time_limit_s(7);  // SIGTERM 3 s before: at 4 s
  grpc::ClientContext ctx2;
  d.Authorize(&ctx2);
  ASSERT_TRUE(d.stub().SubmitJob(&ctx2, req, &resp).ok());
  const std::string id = resp.job_id();
  Job job = WaitFor(d, id, Finished, 30);
  ASSERT_EQ(job.state(), trainer::v1::FAILED);
  EXPECT_EQ(job.restarts(), 0);  // a limit is not a failure to retry
  ASSERT_EQ(job.attempts_size(), 1);
  EXPECT_THAT(job.attempts(0).reason(), HasSubstr("time limit reached"));
  EXPECT_THAT(job.error(), HasSubstr("time limit reached"));
  EXPECT_EQ(job.attempts(0).exit_code(), 3);  // the worker saved a checkpoint and stopped
  const int64_t ran_ms = job.attempts(0).ended_unix_ms() - job.attempts(0).started_unix_ms();
  EXPECT_GE(ran_ms, 4000);
  EXPECT_LT(ran_ms, 7000);
  ASSERT_FALSE(Checkpoints(d, id).empty());

  grpc::ClientContext ctx3;
  d.Authorize(&ctx3);
  trainer::v1::ResumeJobRequest resume;
  resume.set_job_id(id);
  Job resumed;
  ASSERT_TRUE(d.stub().ResumeJob(&ctx3, resume, &resumed).ok());
  job = WaitFor(d, id, [](const Job& j) { return j.attempts_size() == 2 && Finished(j); }, 30);
  EXPECT_FALSE(job.attempts(1).resumed_from().empty());
  EXPECT_THAT(job.attempts(1).reason(), HasSubstr("time limit reached"));  // each attempt has the limit
  EXPECT_GT(job.progress().step(), 0);
}

TEST(Daemon, KilledWorkerRestartsFromItsCheckpointAndSucceeds) {
  TempDir dir;
  Daemon d(dir.path().string());
  const std::string id = Submit(d, Spec("max_steps: 1500, save_steps: 50, logging_steps: 50"));
  Job job = WaitFor(d, id, [&](const Job& j) { return !Checkpoints(d, id).empty() && j.attempts_size() == 1; });
  ASSERT_GT(job.attempts(0).pid(), 0);
  ::kill(job.attempts(0).pid(), SIGKILL);
  job = WaitFor(d, id, Finished);
  ASSERT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
  ASSERT_EQ(job.attempts_size(), 2);
  EXPECT_EQ(job.restarts(), 1);
  // Not "out of memory": the kernel's OOM killer did not run (nothing here fills memory).
  EXPECT_EQ(job.attempts(0).reason(), "killed by SIGKILL");
  EXPECT_EQ(job.error(), "");  // it succeeded: what attempt 1 met stays in its reason
  EXPECT_EQ(job.attempts(0).failed_rank(), 0);
  // The folder the worker resumed from, and the step its training began at.
  const std::string resumed_from = job.attempts(1).resumed_from();
  EXPECT_THAT(resumed_from, HasSubstr(job.output_dir() + "/checkpoint-"));
  ASSERT_TRUE(job.attempts(1).has_start_step());
  EXPECT_EQ(absl::StrCat(job.output_dir(), "/checkpoint-", job.attempts(1).start_step()), resumed_from);
  bool resumed = false;
  for (const auto& l : Logs(d, id, false)) resumed |= l.text().find("Resuming from") != std::string::npos;
  EXPECT_TRUE(resumed);
  ExpectContiguous(Logs(d, id, false));

  // The loss history as the run stands: every logged step once (1500 / 50), attempt 1's
  // up to the checkpoint, attempt 2's after it.
  const trainer::v1::GetMetricsResponse metrics = testing::Metrics(d, id, "loss");
  std::set<int64_t> steps;
  for (const auto& p : metrics.points()) {
    EXPECT_TRUE(steps.insert(p.step()).second) << "step " << p.step() << " twice";
    EXPECT_EQ(p.attempt(), p.step() <= job.attempts(1).start_step() ? 1 : 2) << "step " << p.step();
  }
  EXPECT_EQ(steps.size(), 30u);
}

// Killed before its first checkpoint, a job starts over: trainer_log.jsonl keeps both
// runs (trainerd reads it by offset: a worker under trainerd never empties it), each
// beginning with a train_begin at step 0, and the metrics history is the new run's.
TEST(Daemon, AJobKilledBeforeItsFirstCheckpointStartsOverAndItsLogKeepsBothRuns) {
  TempDir dir;
  Daemon d(dir.path().string());
  const std::string id = Submit(d, Spec("max_steps: 3000, save_strategy: 'no', logging_steps: 20"));
  Job job = WaitFor(d, id, [](const Job& j) { return j.progress().step() >= 40; });
  ::kill(job.attempts(0).pid(), SIGKILL);
  job = WaitFor(d, id, Finished);
  ASSERT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
  ASSERT_EQ(job.attempts_size(), 2);
  EXPECT_EQ(job.attempts(1).resumed_from(), "");
  EXPECT_EQ(job.attempts(1).start_step(), 0);
  const std::string log = testing::ReadFile(job.output_dir() + "/trainer_log.jsonl");
  int begins = 0;
  for (const std::string& line : std::vector<std::string>(absl::StrSplit(log, '\n'))) {
    auto record = ParseTrainingRecord(line);
    if (record && record->kind == "train_begin") {
      ++begins;
      EXPECT_EQ(record->step, 0);
    }
  }
  EXPECT_EQ(begins, 2);
  const trainer::v1::GetMetricsResponse metrics = testing::Metrics(d, id, "loss");
  EXPECT_EQ(metrics.points_size(), 150);  // 3000 / 20, all of the second run
  for (const auto& p : metrics.points()) EXPECT_EQ(p.attempt(), 2);
}

TEST(Daemon, SurvivesItsOwnKillMinus9) {
  TempDir dir;
  auto d = std::make_unique<Daemon>(dir.path().string());
  const std::string id = Submit(*d, Spec("max_steps: 600, save_steps: 50", "{type: cnn, conv_channels: [4], hidden_sizes: [16]}"));
  WaitFor(*d, id, [](const Job& j) { return j.progress().step() >= 20; });
  const auto before = Logs(*d, id, false);
  EXPECT_EQ(d->Stop(SIGKILL), 128 + SIGKILL);
  // The worker keeps training while trainerd is down; a new trainerd re-attaches.
  d->Start();
  Job job = WaitFor(*d, id, Finished);
  ASSERT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
  EXPECT_EQ(job.attempts_size(), 1);
  const auto after = Logs(*d, id, false);
  ExpectContiguous(after);
  ASSERT_GE(after.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) EXPECT_EQ(after[i].text(), before[i].text());
  // Resuming a stream from the client's last sequence number continues without gaps.
  const auto tail = Logs(*d, id, false, before.size() + 1);
  ASSERT_FALSE(tail.empty());
  EXPECT_EQ(tail.front().seq(), static_cast<int64_t>(before.size() + 1));
}

TEST(Daemon, JobWhoseWorkerDiedWithTheDaemonRestartsFromCheckpoint) {
  TempDir dir;
  auto d = std::make_unique<Daemon>(dir.path().string());
  const std::string id = Submit(*d, Spec("max_steps: 1500, save_steps: 50, logging_steps: 50"));
  Job job = WaitFor(*d, id, [&](const Job& j) { return !Checkpoints(*d, id).empty(); });
  d->Stop(SIGKILL);
  d->KillWorkers();
  d->Start();
  job = WaitFor(*d, id, Finished);
  ASSERT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
  ASSERT_EQ(job.attempts_size(), 2);
  EXPECT_EQ(job.attempts(0).reason(), "worker lost while trainerd was down");
  EXPECT_EQ(job.restarts(), 0);  // not the job's fault
  EXPECT_THAT(job.attempts(1).resumed_from(), HasSubstr(job.output_dir() + "/checkpoint-"));
}

TEST(Daemon, OneSlotRunsJobsOneAfterTheOtherByPriority) {
  TempDir dir;
  Daemon d(dir.path().string(), {"--cpu-slots", "1"});
  const std::string first = Submit(d, Spec("max_steps: 250"));
  WaitFor(d, first, [](const Job& j) { return j.state() == trainer::v1::RUNNING; });
  const std::string low = Submit(d, Spec("max_steps: 10"), /*priority=*/0);
  const std::string high = Submit(d, Spec("max_steps: 10"), /*priority=*/10);
  EXPECT_EQ(Get(d, low).state(), trainer::v1::QUEUED);
  // Each says where it stands and why it waits, as squeue's REASON.
  const Job waiting_high = WaitFor(d, high, [](const Job& j) { return j.queue_position() > 0; }, 10);
  if (waiting_high.state() == trainer::v1::QUEUED) {
    EXPECT_EQ(waiting_high.queue_position(), 1);
    EXPECT_EQ(waiting_high.queue_reason(), "Resources: needs 1 CPU slot(s); 0 slot(s) free");
    const Job waiting_low = Get(d, low);
    EXPECT_EQ(waiting_low.queue_position(), 2);
    EXPECT_EQ(waiting_low.queue_reason(), "Priority: 1 job(s) ahead");
  }
  Job a = WaitFor(d, first, Finished), b = WaitFor(d, low, Finished), c = WaitFor(d, high, Finished);
  EXPECT_EQ(b.queue_position(), 0);  // no longer queued
  EXPECT_EQ(b.queue_reason(), "");
  ASSERT_EQ(b.state(), trainer::v1::SUCCEEDED);
  ASSERT_EQ(c.state(), trainer::v1::SUCCEEDED);
  // Never two at once, and the higher priority went first.
  EXPECT_GE(c.attempts(0).started_unix_ms(), a.attempts(0).ended_unix_ms());
  EXPECT_GE(b.attempts(0).started_unix_ms(), c.attempts(0).ended_unix_ms());
}

TEST(Daemon, SigtermStopsGracefullyAndTheJobResumesAtNextStart) {
  TempDir dir;
  auto d = std::make_unique<Daemon>(dir.path().string());
  const std::string id = Submit(*d, Spec("max_steps: 3000, save_steps: 100000, logging_steps: 50"));
  WaitFor(*d, id, [](const Job& j) { return j.progress().step() >= 50; });
  EXPECT_EQ(d->Stop(SIGTERM), 0);
  d->Start();
  Job job = WaitFor(*d, id, Finished);
  ASSERT_EQ(job.state(), trainer::v1::SUCCEEDED) << job.error();
  ASSERT_EQ(job.attempts_size(), 2);
  EXPECT_EQ(job.attempts(0).exit_code(), 3);
  EXPECT_EQ(job.attempts(0).failed_rank(), -1);  // a graceful shutdown is no rank's failure
  EXPECT_THAT(job.attempts(1).resumed_from(), HasSubstr("/checkpoint-"));
}

// The WorkerService, driven by hand for a custom worker program (from an allowed folder)
// that ignores SIGTERM: authentication, the job's files as the route of its results
// (forged checkpoint records ignored), and "stop" in the heartbeat answer once the job
// is cancelled.
TEST(Daemon, WorkerServiceAuthenticatesReportsAndAsksToStop) {
  TempDir dir;
  const std::string workers = dir / "workers";
  std::filesystem::create_directories(workers);
  testing::WriteFile(workers + "/stubborn", "#!/bin/sh\ntrap '' TERM\nwhile true; do sleep 1; done\n");
  std::filesystem::permissions(workers + "/stubborn", std::filesystem::perms::owner_all);
  Daemon d(dir / "root", {"--allow-worker-dir", workers, "--grace-period", "2"});
  grpc::ClientContext submit_ctx;
  d.Authorize(&submit_ctx);
  trainer::v1::SubmitJobRequest req;
  *req.mutable_spec() = Spec("max_steps: 10");
  req.set_worker_program(workers + "/stubborn");
  trainer::v1::SubmitJobResponse submitted;
  ASSERT_TRUE(d.stub().SubmitJob(&submit_ctx, req, &submitted).ok());
  const std::string id = submitted.job_id();
  WaitFor(d, id, [](const Job& j) { return j.state() == trainer::v1::RUNNING; });
  const std::string secret(absl::StripAsciiWhitespace(
      testing::ReadFile(absl::StrCat(d.data_root(), "/jobs/", id, "/attempt-1/.secret"))));
  ASSERT_EQ(secret.size(), 32u);

  auto worker = trainer::v1::WorkerService::NewStub(d.channel());
  auto call = [&](const std::string& with_secret, trainer::v1::HeartbeatResponse* resp) {
    grpc::ClientContext ctx;
    if (!with_secret.empty()) ctx.AddMetadata("x-trainerd-worker-secret", with_secret);
    trainer::v1::HeartbeatRequest hb;
    hb.set_job_id(id);
    hb.set_attempt(1);
    hb.set_step(7);
    return worker->Heartbeat(&ctx, hb, resp);
  };
  trainer::v1::HeartbeatResponse resp;
  EXPECT_EQ(call("", &resp).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(call(std::string(32, '0'), &resp).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(call(secret, &resp).ok());
  EXPECT_FALSE(resp.stop());
  EXPECT_GT(Get(d, id).attempts(0).last_heartbeat_unix_ms(), 0);

  // Everything else comes through the job's files: what a worker appends to
  // trainer_log.jsonl becomes metrics and checkpoints; a checkpoint record naming a
  // folder outside the job's output_dir (another job's, `..`, elsewhere) is ignored.
  const std::string output = Get(d, id).output_dir();
  std::filesystem::create_directories(output + "/checkpoint-7");
  testing::WriteFile(output + "/checkpoint-7/MANIFEST.json", "{}");
  std::string records = "{\"kind\":\"train\",\"time\":1,\"step\":7,\"max_steps\":10,\"epoch\":0.5,\"loss\":0.5}\n";
  for (const std::string& forged : {std::string("/somewhere/checkpoint-8"), output + "/../../other/output/checkpoint-8",
                                    std::string("relative/checkpoint-8"), output + std::string(5000, 'x')}) {
    records += "{\"kind\":\"checkpoint\",\"step\":8,\"size_bytes\":1,\"path\":\"" + forged + "\"}\n";
  }
  records += "{\"kind\":\"checkpoint\",\"step\":7,\"size_bytes\":1,\"path\":\"" + output + "/checkpoint-7\"}\n";
  testing::WriteFile(output + "/trainer_log.jsonl", records);
  WaitFor(d, id, [](const Job& j) { return j.progress().loss() == 0.5; });
  const auto checkpoints = Checkpoints(d, id);
  ASSERT_EQ(checkpoints.size(), 1u);
  EXPECT_EQ(checkpoints[0].step(), 7);

  // The forgeries and refusals are in the audit log.
  grpc::ClientContext audit_ctx;
  d.Authorize(&audit_ctx);
  trainer::v1::ListAuditEventsResponse audit;
  ASSERT_TRUE(d.stub().ListAuditEvents(&audit_ctx, trainer::v1::ListAuditEventsRequest(), &audit).ok());
  std::map<std::string, int> refusals;
  for (const auto& e : audit.events()) ++refusals[e.action() + " " + e.code()];
  EXPECT_GE(refusals["Heartbeat UNAUTHENTICATED"], 1);

  testing::Cancel(d, id);
  ASSERT_TRUE(call(secret, &resp).ok());  // the script ignores SIGTERM: still running
  EXPECT_TRUE(resp.stop());
  EXPECT_EQ(resp.reason(), "cancelled");
  Job job = WaitFor(d, id, Finished, 20);  // SIGKILL after the 2 s grace period
  EXPECT_EQ(job.state(), trainer::v1::CANCELLED);
}

// Hostile submissions: each is refused with INVALID_ARGUMENT naming the field, and the
// daemon stays up.
TEST(Daemon, BadSpecsFromHostileCallersAreRefused) {
  TempDir dir;
  Daemon d(dir / "root", {"--max-job-memory", "2G"});
  auto submit = [&](trainer::v1::SubmitJobRequest req) {
    grpc::ClientContext ctx;
    d.Authorize(&ctx);
    trainer::v1::SubmitJobResponse resp;
    return d.stub().SubmitJob(&ctx, req, &resp);
  };
  auto expect_refused = [&](const trainer::v1::SubmitJobRequest& req, const std::string& field) {
    grpc::Status s = submit(req);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << field;
    EXPECT_THAT(s.error_message(), HasSubstr(field));
    EXPECT_LT(s.error_message().size(), 2000u);
  };
  trainer::v1::SubmitJobRequest base;
  *base.mutable_spec() = Spec("max_steps: 1");

  auto name = base;
  name.set_name(std::string(5 << 20, 'n'));
  expect_refused(name, "name: is 5242880 bytes long; at most 256");

  auto bomb = base;
  std::string pattern(100000, '(');
  pattern += "a";
  for (int i = 0; i < 100000; ++i) pattern += ")*";
  bomb.mutable_spec()->mutable_training_args()->set_optim("galore_adamw");
  bomb.mutable_spec()->mutable_training_args()->add_optim_target_modules(pattern);
  expect_refused(bomb, "training_args.optim_target_modules[0]: is 300001 bytes long");

  auto inf = base;
  inf.mutable_spec()->mutable_training_args()->set_learning_rate(std::numeric_limits<double>::infinity());
  expect_refused(inf, "training_args.learning_rate: must be a finite number");

  auto huge = base;
  huge.mutable_spec()->mutable_model()->clear_hidden_sizes();
  huge.mutable_spec()->mutable_model()->add_hidden_sizes(1 << 20);
  huge.mutable_spec()->mutable_model()->add_hidden_sizes(1 << 20);
  expect_refused(huge, "model: the job would need about");

  auto outside = base;
  outside.mutable_spec()->mutable_data()->mutable_train()->set_path(d.data_root() + "/trainerd.db");
  expect_refused(outside, "data.train.path: is not under a folder this trainerd allows");

  auto hub = base;
  hub.mutable_spec()->mutable_training_args()->set_hub_dir(d.data_root() + "/jobs");
  expect_refused(hub, "training_args.hub_dir: is not under the registry folder");

  grpc::ClientContext lctx;
  d.Authorize(&lctx);
  trainer::v1::ListJobsRequest list;
  list.set_page_token("not-a-token");
  trainer::v1::ListJobsResponse listed;
  grpc::Status s = d.stub().ListJobs(&lctx, list, &listed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("page_token"));

  // Still up, and a good job still runs.
  const std::string id = Submit(d, Spec("max_steps: 2"));
  EXPECT_EQ(WaitFor(d, id, Finished).state(), trainer::v1::SUCCEEDED);
}

// 1,000 generated specs against a real trainerd: every answer is OK or
// INVALID_ARGUMENT naming a field, and trainerd is still up afterwards.
TEST(Daemon, BadSpecsFuzzedNeverCrashTrainerd) {
  TempDir dir;
  // No slots for the jobs that happen to be valid: they stay queued, nothing trains.
  Daemon d(dir / "root", {"--cpu-slots", "1", "--max-job-memory", "4G"});
  std::mt19937_64 rng(2026);
  int ok = 0, refused = 0;
  for (int n = 0; n < 1000; ++n) {
    trainer::v1::SubmitJobRequest req;
    *req.mutable_spec() = Spec("max_steps: 1");
    const int fields = 1 + static_cast<int>(rng() % 8);
    for (int i = 0; i < fields; ++i) testing::SetRandomField(req.mutable_spec(), rng, 0);
    grpc::ClientContext ctx;
    d.Authorize(&ctx);
    trainer::v1::SubmitJobResponse resp;
    grpc::Status s = d.stub().SubmitJob(&ctx, req, &resp);
    if (s.ok()) {
      ++ok;
      testing::Cancel(d, resp.job_id());
      continue;
    }
    ++refused;
    if (req.ByteSizeLong() > 8 * 1024 * 1024) {
      // 5,000 strings of 5,000 bytes: gRPC refuses a message over trainerd's limit.
      EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message().substr(0, 300);
      continue;
    }
    ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message().substr(0, 300);
    const std::string& m = s.error_message();
    const std::string field = m.substr(0, m.find_first_of(".[:"));
    EXPECT_TRUE(field == "training_args" || field == "model" || field == "data" || field == "loss" ||
                field == "metrics" || field == "callbacks" || field == "spec" || field == "resources" ||
                field == "peft")
        << m.substr(0, 300);
  }
  std::printf("fuzzed submissions: %d accepted, %d refused\n", ok, refused);
  EXPECT_GT(refused, 500);
  grpc::ClientContext hctx;
  d.Authorize(&hctx);
  trainer::v1::ListJobsRequest list;
  trainer::v1::ListJobsResponse listed;
  EXPECT_TRUE(d.stub().ListJobs(&hctx, list, &listed).ok()) << "trainerd is still up";
}

// worker_program is resolved once at submission; a file replaced before the job starts
// is not run, and the job fails without retries.
TEST(Daemon, WorkerProgramReplacedAfterSubmissionIsNotRun) {
  TempDir dir;
  const std::string workers = dir / "workers";
  std::filesystem::create_directories(workers);
  testing::WriteFile(workers + "/hang", "#!/bin/sh\nexec sleep 600\n");
  testing::WriteFile(workers + "/ok", "#!/bin/sh\nexit 0\n");
  for (const char* name : {"/hang", "/ok"}) std::filesystem::permissions(workers + name, std::filesystem::perms::owner_all);
  std::filesystem::create_symlink(workers + "/ok", workers + "/link");
  Daemon d(dir / "root", {"--allow-worker-dir", workers, "--cpu-slots", "1", "--grace-period", "1"});
  auto submit = [&](const std::string& program) {
    grpc::ClientContext ctx;
    d.Authorize(&ctx);
    trainer::v1::SubmitJobRequest req;
    *req.mutable_spec() = Spec("max_steps: 10");
    req.set_worker_program(program);
    trainer::v1::SubmitJobResponse resp;
    EXPECT_TRUE(d.stub().SubmitJob(&ctx, req, &resp).ok());
    return resp.job_id();
  };
  const std::string blocker = submit(workers + "/hang");
  WaitFor(d, blocker, [](const Job& j) { return j.state() == trainer::v1::RUNNING; });
  const std::string queued = submit(workers + "/link");
  EXPECT_EQ(Get(d, queued).worker_program(), std::filesystem::canonical(workers + "/ok").string());
  // Replace the file (a new inode under the same name) while the job waits for a slot.
  testing::WriteFile(workers + "/ok.new", "#!/bin/sh\necho replaced\nexit 0\n");
  std::filesystem::permissions(workers + "/ok.new", std::filesystem::perms::owner_all);
  std::filesystem::rename(workers + "/ok.new", workers + "/ok");
  testing::Cancel(d, blocker);
  const Job job = WaitFor(d, queued, Finished, 30);
  EXPECT_EQ(job.state(), trainer::v1::FAILED);
  EXPECT_THAT(job.error(), HasSubstr("worker_program: the file was replaced after submission"));
  EXPECT_EQ(job.attempts_size(), 0);
}

// A job that grows far past its estimate hits the worker's RLIMIT_AS: it fails as
// "out of memory" and is not retried. (The estimate counts the CNN's first linear layer
// as if the image were 1x1; the real one holds 512 x 14 x 14 x 4096 weights, 1.6 GB.)
TEST(Daemon, WorkerOverItsMemoryLimitFailsWithoutRetries) {
  TempDir dir;
  Daemon d(dir / "root", {"--max-job-memory", "64M"});
  const std::string id =
      Submit(d, Spec("max_steps: 5", "{type: cnn, conv_channels: [512], hidden_sizes: [4096]}"));
  ASSERT_FALSE(id.empty());
  const Job job = WaitFor(d, id, Finished, 120);
  EXPECT_EQ(job.state(), trainer::v1::FAILED);
  ASSERT_EQ(job.attempts_size(), 1);
  EXPECT_EQ(job.restarts(), 0);
  EXPECT_EQ(job.attempts(0).exit_code(), 4);
  EXPECT_THAT(job.attempts(0).reason(), HasSubstr("out of memory"));
  const std::string log = testing::ReadFile(absl::StrCat(d.data_root(), "/jobs/", id, "/attempt-1/rank0.log"));
  EXPECT_THAT(log, HasSubstr("out of memory (limit "));
}

// A worker that hangs (no heartbeat of any kind) is killed; a job that keeps failing
// stops after max_restarts with the last error.
TEST(Daemon, HungWorkersAreKilledAndRestartsAreLimited) {
  TempDir dir;
  const std::string workers = dir / "workers";
  std::filesystem::create_directories(workers);
  testing::WriteFile(workers + "/hang", "#!/bin/sh\nexec sleep 600\n");
  testing::WriteFile(workers + "/crash", "#!/bin/sh\necho 'something broke' >&2\nexit 1\n");
  for (const char* name : {"/hang", "/crash"}) {
    std::filesystem::permissions(workers + name, std::filesystem::perms::owner_all);
  }
  Daemon d(dir / "root", {"--allow-worker-dir", workers, "--heartbeat-timeout", "2"});
  auto submit = [&](const std::string& program, int max_restarts) {
    grpc::ClientContext ctx;
    d.Authorize(&ctx);
    trainer::v1::SubmitJobRequest req;
    *req.mutable_spec() = Spec("max_steps: 10");
    req.set_worker_program(workers + program);
    req.set_max_restarts(max_restarts);
    trainer::v1::SubmitJobResponse resp;
    EXPECT_TRUE(d.stub().SubmitJob(&ctx, req, &resp).ok());
    return resp.job_id();
  };
  const std::string hung = submit("/hang", 0);
  Job job = WaitFor(d, hung, Finished, 30);
  EXPECT_EQ(job.state(), trainer::v1::FAILED);
  EXPECT_THAT(job.error(), HasSubstr("heartbeat lost"));

  const std::string crashing = submit("/crash", 2);
  job = WaitFor(d, crashing, Finished, 30);
  EXPECT_EQ(job.state(), trainer::v1::FAILED);
  EXPECT_EQ(job.attempts_size(), 3);
  EXPECT_EQ(job.restarts(), 2);
  EXPECT_EQ(job.error(), "attempt 3: exited 1");
  bool saw = false;
  for (const auto& l : Logs(d, crashing, false)) saw |= l.text() == "something broke";
  EXPECT_TRUE(saw);
}

// While another process holds the database's write lock, trainerd cannot save: the job
// shows store_error saying why, its attempt waits until the output its worker wrote is
// stored (no log line is skipped), and once the lock goes everything is saved: a
// restarted trainerd finds the job finished with all its logs.
TEST(Daemon, StateThatCannotBeSavedIsRetriedAndNeverLost) {
  TempDir dir;
  auto d = std::make_unique<Daemon>(dir / "root");
  const std::string id = Submit(*d, Spec("max_steps: 60, logging_steps: 10"));
  WaitFor(*d, id, [](const Job& j) { return j.state() == trainer::v1::RUNNING; });
  const std::string release = dir / "release";
  const std::string locker = absl::StrCat(
      "import os, sqlite3, time\n", "c = sqlite3.connect('", d->data_root(), "/trainerd.db', isolation_level=None)\n",
      "c.execute('BEGIN EXCLUSIVE')\n", "open('", dir / "locked", "', 'w').close()\n",
      "deadline = time.time() + 120\n",
      "while not os.path.exists('", release, "') and time.time() < deadline: time.sleep(0.05)\n",
      "c.execute('ROLLBACK')\n");
  testing::WriteFile(dir / "locker.py", locker);
  ASSERT_EQ(testing::RunCommand(absl::StrCat("python3 ", dir / "locker.py", " > /dev/null 2>&1 &")).exit_code, 0);
  for (int i = 0; i < 200 && !std::filesystem::exists(dir / "locked"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  Job job = WaitFor(*d, id, [](const Job& j) { return !j.store_error().empty(); }, 60);
  EXPECT_THAT(job.store_error(), HasSubstr("locked"));
  // The worker ends meanwhile; its attempt does not finish before its output is stored.
  const std::string log = absl::StrCat(d->data_root(), "/jobs/", id, "/attempt-1/rank0.log");
  for (int i = 0; i < 1200 && testing::ReadFile(log).find("train_end") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_EQ(Get(*d, id).state(), trainer::v1::RUNNING);
  testing::WriteFile(release, "");
  job = WaitFor(*d, id, Finished, 90);
  EXPECT_EQ(job.state(), trainer::v1::SUCCEEDED);
  job = WaitFor(*d, id, [](const Job& j) { return j.store_error().empty(); }, 60);
  d.reset();  // SIGKILL: only what was saved survives
  d = std::make_unique<Daemon>(dir / "root");
  job = Get(*d, id);
  EXPECT_EQ(job.state(), trainer::v1::SUCCEEDED);
  EXPECT_EQ(job.progress().step(), 60);
  const auto lines = Logs(*d, id, false);
  ExpectContiguous(lines);
  bool last_step = false;
  for (const auto& l : lines) last_step |= l.text().find("train step 60/60") != std::string::npos;
  EXPECT_TRUE(last_step) << "log lines read while the database was locked were kept";
}

// A data root on a file system that fills up (a 24 MB tmpfs; a checkpoint of this MLP
// with Adam's state is about 20 MB, more than the space left after the first): the
// failed save frees its space, the job ends FAILED with the worker's reason, the logs
// before it are kept, and all of it is still so after trainerd restarts.
TEST(Daemon, AFullDiskFailsTheJobWithItsReasonAndLosesNothing) {
  TempDir dir;
  const std::string root = dir / "root";
  std::filesystem::create_directories(root);
  if (testing::RunCommand("mount -t tmpfs -o size=24m trainerd-test " + root).exit_code != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root)";
  }
  struct Unmount {
    std::string path;
    ~Unmount() { testing::RunCommand("umount -l " + path); }
  } unmount{root};
  auto d = std::make_unique<Daemon>(root, std::vector<std::string>{"--max-restarts", "1"});
  const std::string id =
      Submit(*d, Spec("max_steps: 200, save_steps: 5, logging_steps: 1", "{type: mlp, hidden_sizes: [2048]}"));
  Job job = WaitFor(*d, id, Finished, 120);
  EXPECT_EQ(job.state(), trainer::v1::FAILED);
  EXPECT_THAT(job.error(), HasSubstr("No space left on device"));
  EXPECT_THAT(job.attempts(0).reason(), HasSubstr("No space left on device"));
  EXPECT_EQ(job.store_error(), "");  // the failed save freed its space: the state is on disk
  const auto logs = Logs(*d, id, false);
  ExpectContiguous(logs);
  bool logged_steps = false, logged_error = false;
  for (const auto& l : logs) {
    logged_steps |= l.text().find("train step 4/200") != std::string::npos;
    logged_error |= l.level() == "error" && l.text().find("No space left on device") != std::string::npos;
  }
  EXPECT_TRUE(logged_steps);
  EXPECT_TRUE(logged_error);
  EXPECT_EQ(d->Stop(SIGTERM), 0);
  d->Start();
  const Job after = testing::Get(*d, id);
  EXPECT_EQ(after.state(), trainer::v1::FAILED);
  EXPECT_EQ(after.error(), job.error());
  EXPECT_EQ(Logs(*d, id, false).size(), logs.size());
}

TEST(Daemon, RealWorkersHeartbeatOverTheWorkerService) {
  TempDir dir;
  Daemon d(dir.path().string());
  const std::string id = Submit(d, Spec("max_steps: 2000, logging_steps: 100"));
  Job job = WaitFor(d, id, [](const Job& j) { return j.attempts_size() > 0 && j.attempts(0).last_heartbeat_unix_ms() > 0; });
  EXPECT_GT(job.attempts(0).last_heartbeat_unix_ms(), 0);
  job = WaitFor(d, id, Finished);
  EXPECT_EQ(job.state(), trainer::v1::SUCCEEDED);
}

// GET http://127.0.0.1:port/path over a plain socket; returns the body.
std::string HttpGet(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "";
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
  (void)!::write(fd, request.data(), request.size());
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) response.append(buf, n);
  ::close(fd);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

TEST(Daemon, PrometheusMetricsAndHealth) {
  TempDir dir;
  Daemon d(dir.path().string());
  // Every outcome's counter is there from the start, at 0.
  const std::string fresh = HttpGet(d.metrics_port(), "/metrics");
  for (const char* outcome : {"succeeded", "failed", "cancelled"}) {
    EXPECT_THAT(fresh, HasSubstr(absl::StrCat("trainerd_jobs_finished_total{outcome=\"", outcome, "\"} 0")));
  }
  // A running job's series carry job_id and job_name (not `job`, the scrape target's).
  const std::string running = Submit(d, Spec("max_steps: 100000, logging_steps: 5, save_strategy: 'no'"), 0, "probe");
  WaitFor(d, running, [](const Job& j) { return j.progress().step() >= 5; });
  EXPECT_THAT(HttpGet(d.metrics_port(), "/metrics"),
              HasSubstr(absl::StrCat("trainerd_job_step{job_id=\"", running, "\",job_name=\"probe\"}")));
  testing::Cancel(d, running);
  WaitFor(d, running, Finished);

  const std::string id = Submit(d, Spec("max_steps: 20"));
  WaitFor(d, id, Finished);
  Get(d, id);
  Logs(d, id, /*follow=*/false);
  // A stream's duration is recorded when the server has finished it, which may be just
  // after the client has read its end.
  std::string metrics = HttpGet(d.metrics_port(), "/metrics");
  for (int i = 0; i < 100 && !absl::StrContains(metrics, "trainerd_grpc_stream_duration_seconds_bucket"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    metrics = HttpGet(d.metrics_port(), "/metrics");
  }
  EXPECT_THAT(metrics, HasSubstr("trainerd_jobs{state=\"SUCCEEDED\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("trainerd_jobs_submitted_total 2"));
  EXPECT_THAT(metrics, HasSubstr("trainerd_jobs_finished_total{outcome=\"succeeded\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("trainerd_jobs_finished_total{outcome=\"cancelled\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("trainerd_queue_length 0"));
  EXPECT_THAT(metrics, HasSubstr("trainerd_slots_in_use{kind=\"cpu\"} 0"));
  EXPECT_THAT(metrics, HasSubstr("trainerd_grpc_requests_total{code=\"OK\",method=\"GetJob\"}"));
  EXPECT_THAT(metrics, HasSubstr("trainerd_grpc_request_duration_seconds_bucket{method=\"SubmitJob\""));
  // Streams have a histogram of their own, outside the latency one.
  EXPECT_THAT(metrics, HasSubstr("trainerd_grpc_stream_duration_seconds_bucket{method=\"StreamLogs\""));
  EXPECT_THAT(metrics, Not(HasSubstr("trainerd_grpc_request_duration_seconds_bucket{method=\"StreamLogs\"")));
  EXPECT_THAT(metrics, HasSubstr("trainerd_build_info{version=\"" TRAINERD_TEST_VERSION "\"} 1"));
  for (const char* process : {"process_cpu_seconds_total ", "process_resident_memory_bytes ", "process_open_fds ",
                              "process_max_fds ", "process_threads ", "process_start_time_seconds "}) {
    EXPECT_THAT(metrics, HasSubstr(process));
  }
  // Per-job series are gone once the job has ended.
  EXPECT_THAT(metrics, Not(HasSubstr("job_id=\"")));
  if (testing::RunCommand("command -v promtool").exit_code == 0) {
    testing::WriteFile(dir / "metrics.txt", metrics);
    auto check = testing::RunCommand("promtool check metrics < " + dir / "metrics.txt");
    EXPECT_EQ(check.exit_code, 0) << check.output;
  }
  // The standard grpc.health.v1 service answers SERVING (HealthCheckResponse{status: 1},
  // encoded by hand: field 1, varint 1).
  grpc::GenericStub generic(d.channel());
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  grpc::Slice empty_message(std::string(""));  // HealthCheckRequest{service: ""}
  grpc::ByteBuffer request(&empty_message, 1), response;
  grpc::Status status;
  auto call = generic.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", request, &cq);
  call->StartCall();
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  ASSERT_TRUE(cq.Next(&tag, &ok));
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const auto& slice : slices) bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));
  // ... and so does each service by name (HealthCheckRequest{service: name}: field 1).
  for (const std::string service : {"trainer.v1.JobService", "trainer.v1.WorkerService"}) {
    grpc::ClientContext sctx;
    grpc::Slice named(std::string("\x0a") + static_cast<char>(service.size()) + service);
    grpc::ByteBuffer named_request(&named, 1), named_response;
    grpc::Status named_status;
    auto named_call = generic.PrepareUnaryCall(&sctx, "/grpc.health.v1.Health/Check", named_request, &cq);
    named_call->StartCall();
    named_call->Finish(&named_response, &named_status, reinterpret_cast<void*>(1));
    ASSERT_TRUE(cq.Next(&tag, &ok));
    ASSERT_TRUE(named_status.ok()) << service << ": " << named_status.error_message();
    std::vector<grpc::Slice> named_slices;
    ASSERT_TRUE(named_response.Dump(&named_slices).ok());
    std::string named_bytes;
    for (const auto& slice : named_slices) named_bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    EXPECT_EQ(named_bytes, std::string("\x08\x01", 2)) << service;
  }

  // Server reflection, v1alpha and v1, lists the API (ServerReflectionRequest
  // {list_services: ""}: field 7, an empty string), so that generic tools such as grpcurl
  // work; v1 also sends the descriptor of the file that defines a service (field 4).
  auto reflect = [&](const std::string& version, const std::string& request_bytes) {
    grpc::ClientContext rctx;
    grpc::CompletionQueue rcq;
    auto stream = generic.PrepareCall(&rctx, "/grpc.reflection." + version + ".ServerReflection/ServerReflectionInfo",
                                      &rcq);
    auto next = [&] {
      void* t;
      bool good = false;
      rcq.Next(&t, &good);
      return good;
    };
    std::string answer;
    stream->StartCall(reinterpret_cast<void*>(1));
    grpc::Slice request_slice(request_bytes);
    if (next()) {
      stream->Write(grpc::ByteBuffer(&request_slice, 1), reinterpret_cast<void*>(2));
      grpc::ByteBuffer reflection;
      if (next()) stream->Read(&reflection, reinterpret_cast<void*>(3));
      std::vector<grpc::Slice> parts;
      if (next() && reflection.Dump(&parts).ok()) {
        for (const auto& slice : parts) answer.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
      }
      stream->WritesDone(reinterpret_cast<void*>(4));
      next();
    }
    grpc::Status finished;
    stream->Finish(&finished, reinterpret_cast<void*>(5));
    next();
    rcq.Shutdown();
    void* tag_left;
    bool ok_left;
    while (rcq.Next(&tag_left, &ok_left)) {
    }
    return answer;
  };
  for (const std::string version : {"v1alpha", "v1"}) {
    const std::string listed = reflect(version, std::string("\x3a\x00", 2));
    EXPECT_THAT(listed, HasSubstr("trainer.v1.JobService")) << version;
    EXPECT_THAT(listed, HasSubstr("grpc.health.v1.Health")) << version;
  }
  const std::string symbol = "trainer.v1.JobService";
  const std::string file = reflect("v1", std::string("\x22") + static_cast<char>(symbol.size()) + symbol);
  EXPECT_THAT(file, HasSubstr("trainer/v1/job_service.proto"));
  EXPECT_THAT(file, HasSubstr("trainer/v1/job_spec.proto"));  // its import comes along
}

}  // namespace
}  // namespace trainerd
