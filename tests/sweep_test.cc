// Sweeps end to end (issue 32): a real trainerd, real workers training a small MLP on
// Fashion-MNIST, a real SQLite file. A random search and a grid of the same values agree
// on the best learning rate; ASHA stops most trials at the first rung, for a fraction of
// the steps, with decisions equal to the pure AshaSearcher's; kill -9 of trainerd
// mid-sweep continues to the same result with no trial lost or run twice; the owner
// rules; bad spaces refused by name; the CLI and Prometheus.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "server/sweeps/asha_searcher.h"
#include "tests/daemon_test_util.h"
#include "trainer/v1/sweep_service.grpc.pb.h"

namespace trainerd::testing {
namespace {

using ::testing::HasSubstr;
using trainer::v1::Sweep;
using trainer::v1::TrialDecision;

// The job every trial starts from: a short run that evaluates at its end.
trainer::v1::JobSpec TrialJob(int max_steps) {
  return Spec(absl::StrCat("max_steps: ", max_steps, ", logging_steps: 4, save_strategy: \"no\""));
}

trainer::v1::SweepSpec LearningRateSweep(const std::string& searcher, int n_trials, int concurrent, uint64_t seed) {
  trainer::v1::SweepSpec spec;
  *spec.mutable_job() = TrialJob(24);
  auto* lr = spec.add_search_space();
  lr->set_field("training_args.learning_rate");
  lr->set_type("log_uniform");
  lr->set_min(1e-4);
  lr->set_max(0.5);
  spec.mutable_objective()->set_metric("eval_loss");
  spec.mutable_objective()->set_direction("minimize");
  spec.mutable_searcher()->set_name(searcher);
  spec.set_n_trials(n_trials);
  spec.set_max_concurrent_trials(concurrent);
  spec.set_seed(seed);
  return spec;
}

trainer::v1::SweepSpec AshaSweep(int n_trials, uint64_t seed) {
  trainer::v1::SweepSpec spec = LearningRateSweep("asha", n_trials, /*concurrent=*/1, seed);
  spec.mutable_searcher()->set_max_length(64);  // rungs at 4, 16 and 64 steps
  spec.mutable_searcher()->set_divisor(4);
  spec.mutable_searcher()->set_max_rungs(3);
  return spec;
}

class SweepClient {
 public:
  SweepClient(Daemon& d, std::string token = "") : d_(d), token_(std::move(token)) {
    stub_ = trainer::v1::SweepService::NewStub(d.channel());
  }
  void Reconnect() { stub_ = trainer::v1::SweepService::NewStub(d_.channel()); }

  grpc::Status Submit(const trainer::v1::SweepSpec& spec, trainer::v1::SubmitSweepResponse* response,
                      const std::string& name = "lr", bool validate_only = false) {
    grpc::ClientContext ctx;
    Authorize(&ctx);
    trainer::v1::SubmitSweepRequest request;
    *request.mutable_spec() = spec;
    request.set_name(name);
    request.set_validate_only(validate_only);
    return stub_->SubmitSweep(&ctx, request, response);
  }
  std::string Submit(const trainer::v1::SweepSpec& spec, const std::string& name = "lr") {
    trainer::v1::SubmitSweepResponse response;
    const grpc::Status s = Submit(spec, &response, name);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.sweep_id();
  }
  grpc::Status Get(const std::string& id, Sweep* sweep) {
    grpc::ClientContext ctx;
    Authorize(&ctx);
    trainer::v1::GetSweepRequest request;
    request.set_sweep_id(id);
    return stub_->GetSweep(&ctx, request, sweep);
  }
  grpc::Status Cancel(const std::string& id, Sweep* sweep) {
    grpc::ClientContext ctx;
    Authorize(&ctx);
    trainer::v1::CancelSweepRequest request;
    request.set_sweep_id(id);
    return stub_->CancelSweep(&ctx, request, sweep);
  }
  trainer::v1::ListSweepsResponse List(bool mine) {
    grpc::ClientContext ctx;
    Authorize(&ctx);
    trainer::v1::ListSweepsRequest request;
    request.set_mine(mine);
    trainer::v1::ListSweepsResponse response;
    EXPECT_TRUE(stub_->ListSweeps(&ctx, request, &response).ok());
    return response;
  }
  // Polls until the sweep has ended (or `until` holds), within `seconds`.
  Sweep Wait(const std::string& id, int seconds, const std::function<bool(const Sweep&)>& until = nullptr) {
    Sweep sweep;
    for (int i = 0; i < seconds * 10; ++i) {
      sweep.Clear();
      if (Get(id, &sweep).ok() && (until ? until(sweep) : sweep.state() != trainer::v1::SWEEP_RUNNING)) return sweep;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "sweep " << id << " did not get there in " << seconds << " s: "
                  << trainer::v1::SweepState_Name(sweep.state());
    return sweep;
  }

 private:
  void Authorize(grpc::ClientContext* ctx) {
    Daemon::AuthorizeAs(token_.empty() ? d_.admin_token() : token_, ctx);
  }
  Daemon& d_;
  std::string token_;
  std::unique_ptr<trainer::v1::SweepService::Stub> stub_;
};

std::string ValueOf(const trainer::v1::Trial& trial) { return trial.values(0).substr(trial.values(0).find('=') + 1); }

const trainer::v1::Trial& Best(const Sweep& sweep) {
  for (const auto& t : sweep.trials()) {
    if (t.number() == sweep.best_trial()) return t;
  }
  ADD_FAILURE() << "no best trial";
  return sweep.trials(0);
}

// Every decision of the sweep, in the order they were made.
std::vector<TrialDecision> Decisions(const Sweep& sweep) {
  std::vector<TrialDecision> all;
  for (const auto& t : sweep.trials()) all.insert(all.end(), t.decisions().begin(), t.decisions().end());
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.seq() < b.seq(); });
  return all;
}

TEST(Sweep, RandomSearchAndAGridOfItsValuesPickTheSameLearningRate) {
  TempDir dir;
  Daemon d(dir.path().string());
  SweepClient sweeps(d);
  const std::string random_id = sweeps.Submit(LearningRateSweep("random", 6, 2, 3), "random-lr");
  const Sweep random = sweeps.Wait(random_id, 240);
  ASSERT_EQ(random.state(), trainer::v1::SWEEP_COMPLETED) << random.error();
  ASSERT_EQ(random.trials_size(), 6);
  trainer::v1::SweepSpec grid = LearningRateSweep("grid", 0, 2, 0);
  auto* lr = grid.mutable_search_space(0);
  lr->set_type("categorical");
  lr->clear_min();
  lr->clear_max();
  for (const auto& t : random.trials()) {
    EXPECT_EQ(t.state(), trainer::v1::TRIAL_COMPLETED) << t.error();
    EXPECT_TRUE(t.has_objective());
    EXPECT_EQ(t.steps(), 24);
    lr->add_values(ValueOf(t));
    // A trial is an ordinary job of the sweep's owner, named after the sweep.
    const trainer::v1::Job job = Get(d, t.job_id());
    EXPECT_EQ(job.name(), absl::StrCat("random-lr-", t.number()));
    EXPECT_EQ(job.sweep_id(), random_id);
    EXPECT_EQ(job.trial_number(), t.number());
    EXPECT_EQ(job.state(), trainer::v1::SUCCEEDED);
  }
  const std::string grid_id = sweeps.Submit(grid, "grid-lr");
  const Sweep grid_sweep = sweeps.Wait(grid_id, 240);
  ASSERT_EQ(grid_sweep.state(), trainer::v1::SWEEP_COMPLETED) << grid_sweep.error();
  EXPECT_EQ(grid_sweep.spec().n_trials(), 6);  // every point of the grid
  ASSERT_GT(random.best_trial(), 0);
  ASSERT_GT(grid_sweep.best_trial(), 0);
  EXPECT_EQ(ValueOf(Best(random)), ValueOf(Best(grid_sweep)));
  EXPECT_NEAR(random.best_objective(), grid_sweep.best_objective(), 1e-6);
  EXPECT_LE(random.best_objective(), (*std::min_element(random.trials().begin(), random.trials().end(),
                                                        [](const auto& a, const auto& b) {
                                                          return a.objective() < b.objective();
                                                        })).objective());
  EXPECT_EQ(random.steps_trained(), 6 * 24);
  EXPECT_EQ(random.steps_without_stopping(), 6 * 24);  // nothing stopped early
  EXPECT_TRUE(std::filesystem::exists(random.best_checkpoint())) << random.best_checkpoint();

  // The CLI: the table sorted by the objective, the best trial, the plot.
  const std::string cli = absl::StrCat(BuildDir(), "/client/trainer-cli --server 127.0.0.1:", d.port(),
                                       " --token ", d.admin_token(), " sweep ");
  const CommandResult status = RunCommand(cli + "status " + random_id + " --plot");
  ASSERT_EQ(status.exit_code, 0) << status.output;
  EXPECT_THAT(status.output, HasSubstr(absl::StrCat("best: trial ", random.best_trial(), ", eval_loss")));
  EXPECT_THAT(status.output, HasSubstr("eval_loss against training_args.learning_rate"));
  EXPECT_THAT(status.output, HasSubstr("(log scale)"));
  const size_t table = status.output.find("TRIAL");
  ASSERT_NE(table, std::string::npos);
  EXPECT_EQ(status.output.find(absl::StrCat("\n", random.best_trial(), " ")), status.output.find('\n', table))
      << "the best trial comes first:\n" << status.output;
  const CommandResult list = RunCommand(cli + "list");
  EXPECT_THAT(list.output, HasSubstr(random_id));
  EXPECT_THAT(list.output, HasSubstr(grid_id));
  const CommandResult json = RunCommand(cli + "status " + grid_id + " --json");
  EXPECT_THAT(json.output, HasSubstr("\"best_trial\""));
  const std::string metrics = RunCommand(absl::StrCat("curl -s 127.0.0.1:", d.metrics_port(), "/metrics")).output;
  EXPECT_THAT(metrics, HasSubstr("trainerd_sweeps{state=\"completed\"} 2"));
}

// The decisions of an ASHA sweep, checked against the pure AshaSearcher fed the same
// results in the same order.
void ExpectDecisionsOfThePureSearcher(const Sweep& sweep) {
  AshaConfig config;
  config.max_length = sweep.spec().searcher().max_length();
  config.divisor = sweep.spec().searcher().divisor();
  config.max_rungs = sweep.spec().searcher().max_rungs();
  auto asha = AshaSearcher::Create(config);
  ASSERT_TRUE(asha.ok());
  for (const TrialDecision& d : Decisions(sweep)) {
    const AshaDecision again = asha->Report(std::to_string(d.trial()), d.rung(), d.objective());
    EXPECT_EQ(again.reason, d.reason()) << "decision " << d.seq();
    EXPECT_EQ(d.step(), asha->rung_lengths()[d.rung()]);
  }
}

TEST(Sweep, AshaStopsMostTrialsAtTheFirstRungForAFractionOfTheSteps) {
  TempDir dir;
  Daemon d(dir.path().string());
  SweepClient sweeps(d);
  const std::string id = sweeps.Submit(AshaSweep(16, 11), "asha");
  const Sweep sweep = sweeps.Wait(id, 420);
  ASSERT_EQ(sweep.state(), trainer::v1::SWEEP_COMPLETED) << sweep.error();
  ASSERT_EQ(sweep.trials_size(), 16);
  int stopped_first = 0, finished = 0;
  for (const auto& t : sweep.trials()) {
    ASSERT_FALSE(t.decisions().empty()) << t.error();
    const TrialDecision& last = *t.decisions().rbegin();
    if (last.outcome() == "stop" && last.rung() == 0) ++stopped_first;
    if (last.outcome() == "finished") ++finished;
    EXPECT_EQ(t.state(), last.outcome() == "finished" ? trainer::v1::TRIAL_COMPLETED : trainer::v1::TRIAL_STOPPED);
    EXPECT_EQ(t.steps(), last.step());
    EXPECT_THAT(last.reason(), HasSubstr(absl::StrCat("rung ", last.rung())));
    // Stopped with a checkpoint at its rung, so that it can still be continued by hand.
    EXPECT_TRUE(std::filesystem::exists(t.checkpoint())) << t.checkpoint();
    EXPECT_THAT(t.checkpoint(), HasSubstr(absl::StrCat("checkpoint-", last.step())));
  }
  EXPECT_GE(stopped_first, 12);
  EXPECT_GE(finished, 1);
  EXPECT_EQ(sweep.steps_without_stopping(), 16 * 64);
  EXPECT_LT(sweep.steps_trained(), 0.4 * sweep.steps_without_stopping()) << sweep.steps_trained();
  ExpectDecisionsOfThePureSearcher(sweep);

  // A stopped trial continues by hand to the sweep's full length.
  const trainer::v1::Trial* stopped = nullptr;
  for (const auto& t : sweep.trials()) {
    if (t.state() == trainer::v1::TRIAL_STOPPED) stopped = &t;
  }
  ASSERT_NE(stopped, nullptr);
  grpc::ClientContext ctx;
  d.Authorize(&ctx);
  trainer::v1::ResumeJobRequest resume;
  resume.set_job_id(stopped->job_id());
  trainer::v1::Job resumed;
  ASSERT_TRUE(d.stub().ResumeJob(&ctx, resume, &resumed).ok());
  const trainer::v1::Job done = WaitFor(d, stopped->job_id(), Finished);
  EXPECT_EQ(done.state(), trainer::v1::SUCCEEDED) << done.error();
  EXPECT_EQ(done.progress().step(), 64);
}

TEST(Sweep, KillNineOfTrainerdMidSweepContinuesToTheSameResult) {
  TempDir reference_dir, killed_dir;
  Daemon reference(reference_dir.path().string());
  Daemon killed(killed_dir.path().string());
  SweepClient reference_sweeps(reference), killed_sweeps(killed);
  const trainer::v1::SweepSpec spec = AshaSweep(8, 5);
  const std::string reference_id = reference_sweeps.Submit(spec, "ref");
  const std::string killed_id = killed_sweeps.Submit(spec, "ref");
  // Killed twice, at whatever the sweep is doing then: once a few decisions are made,
  // and again a moment after it came back.
  for (int decisions : {2, 5}) {
    killed_sweeps.Wait(killed_id, 240, [&](const Sweep& s) {
      return static_cast<int>(Decisions(s).size()) >= decisions || s.state() != trainer::v1::SWEEP_RUNNING;
    });
    EXPECT_EQ(killed.Stop(SIGKILL), 128 + SIGKILL);
    killed.Start();
    killed_sweeps.Reconnect();
  }
  const Sweep a = reference_sweeps.Wait(reference_id, 420);
  const Sweep b = killed_sweeps.Wait(killed_id, 420);
  ASSERT_EQ(a.state(), trainer::v1::SWEEP_COMPLETED);
  ASSERT_EQ(b.state(), trainer::v1::SWEEP_COMPLETED) << b.error();
  // No trial lost or run twice: one job per trial, each the sweep's.
  grpc::ClientContext ctx;
  killed.Authorize(&ctx);
  trainer::v1::ListJobsRequest all;
  all.set_page_size(1000);
  trainer::v1::ListJobsResponse jobs;
  ASSERT_TRUE(killed.stub().ListJobs(&ctx, all, &jobs).ok());
  std::multiset<int> trial_jobs;
  for (const auto& j : jobs.jobs()) {
    if (j.sweep_id() == killed_id) trial_jobs.insert(j.trial_number());
  }
  EXPECT_EQ(trial_jobs, (std::multiset<int>{1, 2, 3, 4, 5, 6, 7, 8}));
  // The same decisions, in the same order, on the same results.
  const std::vector<TrialDecision> da = Decisions(a), db = Decisions(b);
  ASSERT_EQ(da.size(), db.size());
  for (size_t i = 0; i < da.size(); ++i) {
    EXPECT_EQ(da[i].trial(), db[i].trial()) << i;
    EXPECT_EQ(da[i].rung(), db[i].rung()) << i;
    EXPECT_EQ(da[i].reason(), db[i].reason()) << i;
    EXPECT_NEAR(da[i].objective(), db[i].objective(), 1e-6 * std::abs(da[i].objective())) << i;
  }
  EXPECT_EQ(a.best_trial(), b.best_trial());
  EXPECT_EQ(a.steps_trained(), b.steps_trained());
  // Each restart picked the sweep up and replayed what it had decided.
  const std::string log = ReadFile(killed.data_root() + "/trainerd.log");
  EXPECT_THAT(log, HasSubstr(absl::StrCat("sweep=", killed_id, " continues:")));
  ExpectDecisionsOfThePureSearcher(b);
}

TEST(Sweep, OwnersAndAdminsOnlyAndCancelStopsTheTrials) {
  TempDir dir;
  Daemon d(dir.path().string(), WithHttp());
  const std::string alice = AddUser(d, "alice"), bob = AddUser(d, "bob");
  SweepClient as_alice(d, alice), as_bob(d, bob), as_admin(d);
  trainer::v1::SweepSpec spec = LearningRateSweep("random", 4, 2, 1);
  *spec.mutable_job() = TrialJob(100000);  // long: cancelled while they run
  const std::string id = as_alice.Submit(spec, "alices");
  Sweep sweep;
  EXPECT_EQ(as_bob.Get(id, &sweep).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(as_bob.Cancel(id, &sweep).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(as_bob.List(false).sweeps_size(), 0);
  EXPECT_EQ(as_admin.List(false).sweeps_size(), 1);
  EXPECT_EQ(as_admin.List(true).sweeps_size(), 0);
  ASSERT_TRUE(as_admin.Get(id, &sweep).ok());
  EXPECT_EQ(sweep.owner(), "alice");
  EXPECT_EQ(SweepClient(d, "trd_forged").Get(id, &sweep).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // The HTTP API answers the same, under the same rules.
  const std::string url = absl::StrCat("127.0.0.1:", d.http_port(), "/api/v1/sweeps");
  EXPECT_THAT(RunCommand(absl::StrCat("curl -s -H 'Authorization: Bearer ", alice, "' ", url, "/", id)).output,
              HasSubstr("\"name\":\"alices\""));
  EXPECT_THAT(RunCommand(absl::StrCat("curl -s -H 'Authorization: Bearer ", bob, "' ", url, "/", id)).output,
              HasSubstr("PERMISSION_DENIED"));
  EXPECT_THAT(RunCommand(absl::StrCat("curl -s -H 'Authorization: Bearer ", alice, "' ", url)).output,
              HasSubstr(id));

  sweep = as_alice.Wait(id, 120, [](const Sweep& s) { return s.trials_running() == 2; });
  for (const auto& t : sweep.trials()) {
    const trainer::v1::Job job = Get(d, t.job_id());
    EXPECT_EQ(job.owner(), "alice");
  }
  ASSERT_TRUE(as_alice.Cancel(id, &sweep).ok());
  EXPECT_EQ(sweep.state(), trainer::v1::SWEEP_CANCELLED);
  EXPECT_EQ(sweep.trials_size(), 2);  // no more start
  for (const auto& t : sweep.trials()) {
    EXPECT_EQ(t.state(), trainer::v1::TRIAL_CANCELLED);
    const trainer::v1::Job job = WaitFor(d, t.job_id(), Finished);
    EXPECT_EQ(job.state(), trainer::v1::CANCELLED);
  }
  EXPECT_THAT(RunCommand(absl::StrCat("curl -s 127.0.0.1:", d.metrics_port(), "/metrics")).output,
              HasSubstr("trainerd_sweeps{state=\"cancelled\"} 1"));
}

TEST(Sweep, AFailedTrialIsRecordedWithItsErrorAndTheSweepGoesOn) {
  TempDir dir;
  Daemon d(dir.path().string());
  SweepClient sweeps(d);
  trainer::v1::SweepSpec spec = LearningRateSweep("grid", 0, 1, 0);
  auto* lr = spec.mutable_search_space(0);
  lr->set_type("categorical");
  lr->clear_min();
  lr->clear_max();
  // The first point is checked at submission; the second is refused when its turn comes.
  for (const char* v : {"0.01", "-1", "0.001"}) lr->add_values(v);
  const Sweep sweep = sweeps.Wait(sweeps.Submit(spec, "mixed"), 240);
  ASSERT_EQ(sweep.state(), trainer::v1::SWEEP_COMPLETED) << sweep.error();
  ASSERT_EQ(sweep.trials_size(), 3);
  EXPECT_EQ(sweep.trials(0).state(), trainer::v1::TRIAL_COMPLETED);
  EXPECT_EQ(sweep.trials(1).state(), trainer::v1::TRIAL_FAILED);
  EXPECT_THAT(sweep.trials(1).error(), HasSubstr("its job was refused"));
  EXPECT_THAT(sweep.trials(1).error(), HasSubstr("learning_rate"));
  EXPECT_EQ(sweep.trials(2).state(), trainer::v1::TRIAL_COMPLETED);
  EXPECT_EQ(sweep.trials_ended(), 3);
  EXPECT_NE(sweep.best_trial(), 2);
}

TEST(Sweep, BadSpacesAreRefusedByName) {
  TempDir dir;
  Daemon d(dir.path().string());
  SweepClient sweeps(d);
  trainer::v1::SweepSpec spec = LearningRateSweep("random", 2, 1, 0);
  spec.mutable_search_space(0)->set_min(1);  // above max
  auto* warmup = spec.add_search_space();
  warmup->set_field("training_args.weight_decay");
  warmup->set_type("log_uniform");
  warmup->set_min(0);  // log of zero
  warmup->set_max(0.1);
  auto* typo = spec.add_search_space();
  typo->set_field("training_args.learning_rat");
  typo->set_type("uniform");
  typo->set_min(0);
  typo->set_max(1);
  auto* absent = spec.add_search_space();
  absent->set_field("optimizer.momentum");
  absent->set_type("uniform");
  absent->set_min(0);
  absent->set_max(1);
  trainer::v1::SubmitSweepResponse response;
  const grpc::Status s = sweeps.Submit(spec, &response);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("search_space.training_args.learning_rate.min: 1 is above max 0.5"));
  EXPECT_THAT(s.error_message(), HasSubstr("search_space.training_args.weight_decay.min: log_uniform needs a positive"));
  EXPECT_THAT(s.error_message(), HasSubstr("search_space.training_args.learning_rat: training_args.learning_rat: unknown"));
  EXPECT_THAT(s.error_message(), HasSubstr("search_space.optimizer.momentum: optimizer: unknown field"));
  // The first trial's job is checked as SubmitJob checks a job.
  trainer::v1::SweepSpec bad_job = LearningRateSweep("random", 2, 1, 0);
  bad_job.mutable_job()->mutable_training_args()->set_per_device_train_batch_size(-1);
  EXPECT_THAT(sweeps.Submit(bad_job, &response).error_message(), HasSubstr("per_device_train_batch_size"));
  // validate_only: checked, nothing started.
  response.Clear();
  ASSERT_TRUE(sweeps.Submit(LearningRateSweep("random", 2, 1, 0), &response, "v", true).ok());
  EXPECT_TRUE(response.sweep_id().empty());
  EXPECT_EQ(sweeps.List(false).sweeps_size(), 0);
}

}  // namespace
}  // namespace trainerd::testing
