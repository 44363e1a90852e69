#include "server/sweeps/sweep_coordinator.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_join.h"
#include "protocol/training_record.h"
#include "server/jobs/job_state.h"
#include "server/jobs/metric_history.h"
#include "server/sweeps/sweep_summary.h"
#include "spec/sweep_spec.h"

namespace trainerd {
namespace {

using trainer::v1::Job;
using trainer::v1::Sweep;
using trainer::v1::SweepSpec;
using trainer::v1::Trial;
using trainer::v1::TrialDecision;
using trainer::v1::TrialState;

// A pass runs at least this often, also when no job changes.
constexpr auto kPassInterval = std::chrono::milliseconds(500);
constexpr auto kMinPassGap = std::chrono::milliseconds(100);
constexpr char kAsha[] = "asha";

AshaConfig AshaConfigOf(const SweepSpec& spec) {
  AshaConfig c;
  c.max_length = spec.searcher().max_length();
  c.divisor = spec.searcher().divisor();
  c.max_rungs = spec.searcher().max_rungs();
  c.maximize = spec.objective().direction() == "maximize";
  return c;
}

// The latest value of `metric` in the job's run as it stands (metric_history.h), when it
// was logged at `min_step` or later; nullopt when there is none.
absl::StatusOr<std::optional<double>> Objective(JobStore* output, const Job& job, const std::string& metric,
                                                int64_t min_step) {
  absl::StatusOr<std::vector<trainer::v1::MetricPoint>> points = output->ReadMetrics(job.id(), metric, kRecordEval);
  if (!points.ok()) return points.status();
  std::vector<trainer::v1::MetricPoint> history = CurrentHistory(std::move(*points), job.attempts());
  if (history.empty() || history.back().step() < min_step) return std::optional<double>();
  return std::optional<double>(history.back().value());
}

std::vector<trainer::v1::JobState> AllJobStates() {
  std::vector<trainer::v1::JobState> all;
  for (int s = trainer::v1::JobState_MIN; s <= trainer::v1::JobState_MAX; ++s) {
    if (s != trainer::v1::JOB_STATE_UNSPECIFIED && trainer::v1::JobState_IsValid(s)) {
      all.push_back(static_cast<trainer::v1::JobState>(s));
    }
  }
  return all;
}

// "running", "completed", ...: SWEEP_RUNNING's name as Prometheus and people read it.
std::string SweepStateName(trainer::v1::SweepState state) {
  return absl::AsciiStrToLower(absl::StripPrefix(trainer::v1::SweepState_Name(state), "SWEEP_"));
}

}  // namespace

SweepCoordinator::SweepCoordinator(SweepStore* sweeps, JobRegistry* registry, JobStore* output,
                                   AttemptSupervisor* supervisor, std::function<void(const SweepCounts&)> on_counts)
    : sweeps_(sweeps),
      registry_(registry),
      output_(output),
      supervisor_(supervisor),
      on_counts_(std::move(on_counts)),
      view_(sweeps, registry) {}

SweepCoordinator::~SweepCoordinator() { Stop(); }

void SweepCoordinator::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void SweepCoordinator::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void SweepCoordinator::Loop() {
  uint64_t seen = registry_->change_counter();
  while (true) {
    const auto pass = std::chrono::steady_clock::now();
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      ReconcileAll();
    }
    seen = registry_->WaitForChange(seen, kPassInterval);
    // Jobs change with every progress record: a pass at most every kMinPassGap.
    std::this_thread::sleep_until(pass + kMinPassGap);
  }
}

absl::StatusOr<SweepCoordinator::ActiveSweep> SweepCoordinator::Load(const Sweep& sweep) {
  ActiveSweep a;
  a.sweep = sweep;
  absl::StatusOr<std::vector<Trial>> trials = sweeps_->Trials(sweep.id());
  if (!trials.ok()) return trials.status();
  for (Trial& t : *trials) {
    if (t.number() != static_cast<int32_t>(a.trials.size()) + 1) {
      return absl::DataLossError(absl::StrCat("sweep ", sweep.id(), ": trial ", a.trials.size() + 1, " is missing"));
    }
    a.trials.push_back(std::move(t));
  }
  if (sweep.spec().searcher().name() != kAsha) return a;
  absl::StatusOr<AshaSearcher> asha = AshaSearcher::Create(AshaConfigOf(sweep.spec()));
  if (!asha.ok()) return asha.status();
  a.asha = std::move(*asha);
  absl::StatusOr<std::vector<TrialDecision>> decisions = sweeps_->Decisions(sweep.id());
  if (!decisions.ok()) return decisions.status();
  for (const TrialDecision& d : *decisions) {
    // Replayed in the order they were made, the reports rebuild the searcher as it was.
    const AshaDecision again = a.asha->Report(absl::StrCat(d.trial()), d.rung(), d.objective());
    if (again.outcome_name() != d.outcome()) {
      spdlog::error("sweep={} trial={} rung={}: replaying decision {} gives {}, not {}: keeping the recorded one",
                    sweep.id(), d.trial(), d.rung(), d.seq(), again.outcome_name(), d.outcome());
    }
    a.decided[{d.trial(), d.rung()}] = d;
  }
  return a;
}

absl::Status SweepCoordinator::Recover() {
  absl::StatusOr<std::vector<Sweep>> running = sweeps_->SweepsInState(trainer::v1::SWEEP_RUNNING);
  if (!running.ok()) return running.status();
  absl::StatusOr<std::vector<Sweep>> cancelling = sweeps_->SweepsInState(trainer::v1::SWEEP_CANCELLING);
  if (!cancelling.ok()) return cancelling.status();
  absl::MutexLock lock(&mu_);
  for (const Sweep& sweep : *running) {
    absl::StatusOr<ActiveSweep> loaded = Load(sweep);
    if (!loaded.ok()) return loaded.status();
    spdlog::info("sweep={} continues: {} trial(s) started, {} decision(s) replayed", sweep.id(),
                 loaded->trials.size(), loaded->decided.size());
    active_[sweep.id()] = std::move(*loaded);
  }
  // A cancel that trainerd's death cut short is finished.
  for (const Sweep& sweep : *cancelling) {
    absl::StatusOr<ActiveSweep> loaded = Load(sweep);
    if (!loaded.ok()) return loaded.status();
    FinishCancel(*loaded);
  }
  sweeps_changed_ = true;
  ReconcileAll();
  return absl::OkStatus();
}

absl::StatusOr<trainer::v1::SubmitJobRequest> SweepCoordinator::TrialRequest(
    const Sweep& sweep, int32_t number, const std::vector<std::string>& values) const {
  absl::StatusOr<trainer::v1::JobSpec> spec = TrialJobSpec(sweep.spec(), values);
  if (!spec.ok()) return spec.status();
  trainer::v1::SubmitJobRequest request;
  *request.mutable_spec() = std::move(*spec);
  request.set_name(absl::StrCat(sweep.name(), "-", number));
  request.set_priority(sweep.priority());
  *request.mutable_resources() = sweep.resources();
  if (sweep.max_restarts() >= 0) request.set_max_restarts(sweep.max_restarts());
  if (sweep.spec().searcher().name() == kAsha) {
    absl::StatusOr<AshaSearcher> asha = AshaSearcher::Create(AshaConfigOf(sweep.spec()));
    if (!asha.ok()) return asha.status();
    // Every rung ends with a checkpoint, the last (max_length, the job's end) too.
    request.set_stop_at_step(asha->rung_lengths().front());
  }
  return request;
}

absl::StatusOr<trainer::v1::SubmitSweepResponse> SweepCoordinator::Submit(
    const trainer::v1::SubmitSweepRequest& request, const Submitter& submitter) {
  trainer::v1::SubmitSweepResponse response;
  Sweep& sweep = *response.mutable_sweep();
  *sweep.mutable_spec() = request.spec();
  ApplySweepDefaults(sweep.mutable_spec());
  if (absl::Status s = CheckSweepSpec(sweep.spec()); !s.ok()) return s;
  sweep.set_name(request.name().empty() ? "sweep" : request.name());
  sweep.set_owner(submitter.user);
  sweep.set_owner_id(submitter.user_id);
  sweep.set_owner_admin(submitter.admin);
  sweep.set_priority(request.priority());
  *sweep.mutable_resources() = request.resources();
  sweep.set_max_restarts(request.has_max_restarts() ? request.max_restarts() : -1);
  sweep.set_state(trainer::v1::SWEEP_RUNNING);
  sweep.set_created_unix_ms(NowMs());
  sweep.set_updated_unix_ms(sweep.created_unix_ms());
  // The first trial's job, checked as SubmitJob checks a job: the rest differ only in
  // the values CheckSweepSpec tried.
  absl::StatusOr<std::vector<std::string>> values = TrialValues(sweep.spec(), 1);
  if (!values.ok()) return values.status();
  absl::StatusOr<trainer::v1::SubmitJobRequest> job = TrialRequest(sweep, 1, *values);
  if (!job.ok()) return job.status();
  job->set_validate_only(true);
  absl::StatusOr<trainer::v1::SubmitJobResponse> checked = supervisor_->Submit(*job, submitter);
  if (!checked.ok()) {
    return absl::Status(checked.status().code(),
                        absl::StrCat("job (as trial 1 runs it: ", absl::StrJoin(*values, ", "), "):\n",
                                     checked.status().message()));
  }
  for (const std::string& w : checked->warnings()) response.add_warnings(w);
  if (request.validate_only()) return response;

  sweep.set_id(NewId('s'));
  if (absl::Status s = sweeps_->PutSweep(sweep); !s.ok()) return s;
  response.set_sweep_id(sweep.id());
  spdlog::info("sweep={} submitted by {} name={} searcher={} n_trials={}", sweep.id(), submitter.user, sweep.name(),
               sweep.spec().searcher().name(), sweep.spec().n_trials());
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<ActiveSweep> loaded = Load(sweep);
    if (!loaded.ok()) return loaded.status();
    ActiveSweep& a = active_[sweep.id()] = std::move(*loaded);
    sweeps_changed_ = true;
    Reconcile(a);
    if (a.sweep.state() != trainer::v1::SWEEP_RUNNING) active_.erase(sweep.id());
    PublishCounts();
  }
  absl::StatusOr<Sweep> now = view_.Get(sweep.id());
  if (now.ok()) sweep = std::move(*now);
  return response;
}

void SweepCoordinator::ReconcileAll() {
  std::vector<std::string> ended;
  for (auto& [id, a] : active_) {
    Reconcile(a);
    if (a.sweep.state() != trainer::v1::SWEEP_RUNNING) ended.push_back(id);
  }
  for (const std::string& id : ended) active_.erase(id);
  PublishCounts();
}

void SweepCoordinator::Reconcile(ActiveSweep& a) {
  const SweepSpec& spec = a.sweep.spec();
  int running = 0;
  for (Trial& trial : a.trials) {
    if (!TrialEnded(trial.state()) && FollowTrial(a, trial)) ++running;
  }
  while (running < spec.max_concurrent_trials() && static_cast<int32_t>(a.trials.size()) < spec.n_trials()) {
    Trial trial;
    trial.set_number(static_cast<int32_t>(a.trials.size()) + 1);
    trial.set_rung(-1);
    trial.set_state(trainer::v1::TRIAL_SUBMITTING);
    absl::StatusOr<std::vector<std::string>> values = TrialValues(spec, trial.number());
    if (values.ok()) {
      for (const std::string& v : *values) trial.add_values(v);
    } else {
      trial.set_state(trainer::v1::TRIAL_FAILED);
      trial.set_error(std::string(values.status().message()));
    }
    // Recorded before its job is submitted: a crash in between finds the job by its
    // (sweep, trial) and adopts it instead of submitting a second one.
    if (absl::Status s = sweeps_->PutTrial(a.sweep.id(), trial); !s.ok()) {
      spdlog::error("sweep={}: cannot record trial {}: {}", a.sweep.id(), trial.number(), std::string(s.message()));
      return;  // the next pass tries again
    }
    a.trials.push_back(trial);
    Trial& added = a.trials.back();
    if (TrialEnded(added.state())) continue;
    StartTrial(a, added, /*adopt=*/false);
    if (added.state() == trainer::v1::TRIAL_SUBMITTING) return;  // trainerd is stopping: later
    if (!TrialEnded(added.state())) ++running;
  }
  if (running == 0 && static_cast<int32_t>(a.trials.size()) == spec.n_trials()) EndSweep(a);
}

void SweepCoordinator::EndSweep(ActiveSweep& a) {
  Sweep ended = a.sweep;
  int failed = 0;
  const Trial* first_failure = nullptr;
  for (const Trial& t : a.trials) {
    if (t.state() != trainer::v1::TRIAL_FAILED) continue;
    ++failed;
    if (first_failure == nullptr) first_failure = &t;
  }
  ended.set_state(failed == static_cast<int>(a.trials.size()) ? trainer::v1::SWEEP_FAILED
                                                              : trainer::v1::SWEEP_COMPLETED);
  if (first_failure != nullptr && ended.state() == trainer::v1::SWEEP_FAILED) {
    ended.set_error(absl::StrCat("every trial failed; trial ", first_failure->number(), ": ", first_failure->error()));
  }
  ended.set_updated_unix_ms(NowMs());
  if (absl::Status s = sweeps_->PutSweep(ended); !s.ok()) {
    spdlog::error("sweep={}: cannot record its end: {}", a.sweep.id(), std::string(s.message()));
    return;  // the next pass tries again
  }
  a.sweep = ended;
  sweeps_changed_ = true;
  spdlog::info("sweep={} ended {}: {} trial(s), {} failed", a.sweep.id(),
               trainer::v1::SweepState_Name(ended.state()), a.trials.size(), failed);
}

void SweepCoordinator::StartTrial(ActiveSweep& a, Trial& trial, bool adopt) {
  const Sweep& sweep = a.sweep;
  if (adopt) {  // an earlier pass may have submitted it and died before recording the job
    absl::StatusOr<std::vector<Job>> jobs = registry_->JobsInStates(AllJobStates());
    if (!jobs.ok()) return;
    for (const Job& job : *jobs) {
      if (job.sweep_id() != sweep.id() || job.trial_number() != trial.number()) continue;
      Trial adopted = trial;
      adopted.set_job_id(job.id());
      adopted.set_state(trainer::v1::TRIAL_RUNNING);
      PutTrial(a, adopted);
      trial = adopted;
      return;
    }
  }
  std::vector<std::string> values(trial.values().begin(), trial.values().end());
  absl::StatusOr<trainer::v1::SubmitJobRequest> request = TrialRequest(sweep, trial.number(), values);
  absl::StatusOr<trainer::v1::SubmitJobResponse> submitted =
      request.ok() ? supervisor_->Submit(*request, Submitter{sweep.owner(), sweep.owner_id(), sweep.owner_admin(),
                                                             sweep.id(), trial.number()})
                   : absl::StatusOr<trainer::v1::SubmitJobResponse>(request.status());
  if (absl::IsUnavailable(submitted.status())) return;  // shutting down: a later pass
  if (!submitted.ok()) {
    EndTrial(a, trial, trainer::v1::TRIAL_FAILED,
             absl::StrCat("its job was refused: ", submitted.status().message()));
    return;
  }
  Trial started = trial;
  started.set_job_id(submitted->job_id());
  started.set_state(trainer::v1::TRIAL_RUNNING);
  PutTrial(a, started);
  trial = started;  // also when the store failed: the job exists; a restart adopts it
  spdlog::info("sweep={} trial={} job={}: {}", sweep.id(), trial.number(), trial.job_id(),
               absl::StrJoin(trial.values(), " "));
}

bool SweepCoordinator::FollowTrial(ActiveSweep& a, Trial& trial) {
  if (trial.state() == trainer::v1::TRIAL_SUBMITTING) {
    StartTrial(a, trial, /*adopt=*/true);
    return !TrialEnded(trial.state());
  }
  absl::StatusOr<Job> job = registry_->Get(trial.job_id());
  if (absl::IsNotFound(job.status())) {
    EndTrial(a, trial, trainer::v1::TRIAL_FAILED, absl::StrCat("its job ", trial.job_id(), " was deleted"));
    return false;
  }
  if (!job.ok()) return true;  // the next pass looks again
  trial.set_steps(job->progress().step());
  switch (job->state()) {
    case trainer::v1::FAILED:
      EndTrial(a, trial, trainer::v1::TRIAL_FAILED, job->error().empty() ? "its job failed" : job->error());
      return false;
    case trainer::v1::CANCELLED:
      EndTrial(a, trial, trainer::v1::TRIAL_CANCELLED, "its job was cancelled");
      return false;
    case trainer::v1::SUCCEEDED:
      break;
    default:
      return true;
  }
  if (a.asha) {
    OnRungReached(a, trial, *job);
    return !TrialEnded(trial.state());
  }
  const std::string& metric = a.sweep.spec().objective().metric();
  absl::StatusOr<std::optional<double>> objective = Objective(output_, *job, metric, 0);
  if (!objective.ok()) return true;
  if (!objective->has_value()) {
    EndTrial(a, trial, trainer::v1::TRIAL_FAILED, absl::StrCat("its job never logged ", metric));
    return false;
  }
  trial.set_objective(**objective);
  EndTrial(a, trial, trainer::v1::TRIAL_COMPLETED, "");
  return false;
}

void SweepCoordinator::OnRungReached(ActiveSweep& a, Trial& trial, const Job& job) {
  const std::vector<int64_t>& rungs = a.asha->rung_lengths();
  const int64_t step = job.progress().step();
  const int rung = a.asha->RungAt(step);
  const std::string& metric = a.sweep.spec().objective().metric();
  if (rung < 0) {
    EndTrial(a, trial, trainer::v1::TRIAL_FAILED,
             absl::StrCat("its job ended at step ", step, ", before the first rung (", rungs.front(), " steps)"));
    return;
  }
  auto decided = a.decided.find({trial.number(), rung});
  if (decided == a.decided.end()) {
    absl::StatusOr<std::optional<double>> objective = Objective(output_, job, metric, rungs[rung]);
    if (!objective.ok()) return;  // the next pass reads again
    if (!objective->has_value()) {
      EndTrial(a, trial, trainer::v1::TRIAL_FAILED,
               absl::StrCat("its job logged no ", metric, " at step ", step, " (the rung's evaluation)"));
      return;
    }
    const AshaDecision made = a.asha->Report(absl::StrCat(trial.number()), rung, **objective);
    TrialDecision d;
    d.set_trial(trial.number());
    d.set_rung(rung);
    d.set_step(step);
    d.set_objective(**objective);
    d.set_outcome(made.outcome_name());
    d.set_reason(made.reason);
    d.set_time_unix_ms(NowMs());
    Trial decided_trial = trial;
    decided_trial.set_rung(rung);
    decided_trial.set_objective(**objective);
    if (made.outcome == AshaDecision::Outcome::kStop) decided_trial.set_state(trainer::v1::TRIAL_STOPPED);
    if (made.outcome == AshaDecision::Outcome::kFinished) decided_trial.set_state(trainer::v1::TRIAL_COMPLETED);
    absl::StatusOr<TrialDecision> stored = sweeps_->AppendDecision(a.sweep.id(), d, decided_trial);
    if (!stored.ok()) {
      // Not acted on: the next pass reports again, and the searcher answers the same.
      spdlog::error("sweep={} trial={}: cannot record the decision: {}", a.sweep.id(), trial.number(),
                    std::string(stored.status().message()));
      return;
    }
    trial = decided_trial;
    decided = a.decided.emplace(std::make_pair(trial.number(), rung), *stored).first;
    spdlog::info("sweep={} trial={} {}={} at step {}: {}", a.sweep.id(), trial.number(), metric, d.objective(), step,
                 d.reason());
  }
  if (decided->second.outcome() != "continue") return;
  // Continue: to the next rung, where it stops with a checkpoint again.
  absl::StatusOr<Job> resumed = supervisor_->Resume(job.id(), 0, rungs[rung + 1]);
  if (!resumed.ok()) {
    spdlog::warn("sweep={} trial={}: cannot resume job {} yet: {}", a.sweep.id(), trial.number(), job.id(),
                 std::string(resumed.status().message()));
  }
}

void SweepCoordinator::EndTrial(const ActiveSweep& a, Trial& trial, TrialState state, const std::string& error) {
  Trial ended = trial;
  ended.set_state(state);
  if (!error.empty()) ended.set_error(error);
  if (absl::Status s = sweeps_->PutTrial(a.sweep.id(), ended); !s.ok()) {
    spdlog::error("sweep={} trial={}: cannot record its end: {}", a.sweep.id(), trial.number(), std::string(s.message()));
    return;  // the next pass sees the same and tries again
  }
  trial = ended;
  if (state == trainer::v1::TRIAL_FAILED) {
    spdlog::warn("sweep={} trial={} failed: {}", a.sweep.id(), trial.number(), error);
  }
}

void SweepCoordinator::PutTrial(const ActiveSweep& a, const Trial& trial) {
  if (absl::Status s = sweeps_->PutTrial(a.sweep.id(), trial); !s.ok()) {
    spdlog::error("sweep={} trial={}: cannot record it: {}", a.sweep.id(), trial.number(), std::string(s.message()));
  }
}

absl::StatusOr<Sweep> SweepCoordinator::Cancel(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(id);
    if (it != active_.end()) {
      ActiveSweep& a = it->second;
      Sweep cancelling = a.sweep;
      cancelling.set_state(trainer::v1::SWEEP_CANCELLING);
      cancelling.set_updated_unix_ms(NowMs());
      // Recorded first: no trial starts again after a restart, which finishes the cancel.
      if (absl::Status s = sweeps_->PutSweep(cancelling); !s.ok()) return s;
      a.sweep = cancelling;
      FinishCancel(a);
      active_.erase(it);
      sweeps_changed_ = true;
      PublishCounts();
    }
  }
  return view_.Get(id);
}

void SweepCoordinator::FinishCancel(ActiveSweep& a) {
  bool all_ended = true;
  for (Trial& trial : a.trials) {
    if (TrialEnded(trial.state())) continue;
    if (!trial.job_id().empty()) (void)supervisor_->Cancel(trial.job_id());  // NOT_FOUND: already gone
    EndTrial(a, trial, trainer::v1::TRIAL_CANCELLED, "the sweep was cancelled");
    all_ended = all_ended && TrialEnded(trial.state());
  }
  if (!all_ended) return;  // a trial could not be recorded: the next start tries again
  Sweep cancelled = a.sweep;
  cancelled.set_state(trainer::v1::SWEEP_CANCELLED);
  cancelled.set_updated_unix_ms(NowMs());
  if (absl::Status s = sweeps_->PutSweep(cancelled); !s.ok()) {
    spdlog::error("sweep={}: cannot record its cancel: {}", a.sweep.id(), std::string(s.message()));
    return;
  }
  a.sweep = cancelled;
  spdlog::info("sweep={} cancelled", a.sweep.id());
}

void SweepCoordinator::PublishCounts() {
  if (!on_counts_) return;
  // The sweeps by state change only when one starts or ends: counted again then.
  const bool recount = sweeps_changed_;
  if (recount) {
    absl::StatusOr<std::map<trainer::v1::SweepState, int>> by_state = sweeps_->CountByState();
    if (!by_state.ok()) return;  // the next pass counts again
    published_.by_state.clear();
    for (const auto& [state, n] : *by_state) published_.by_state[SweepStateName(state)] = n;
    sweeps_changed_ = false;
  }
  std::map<std::string, int> trials_running;
  for (const auto& [id, a] : active_) {
    int running = 0;
    for (const Trial& t : a.trials) running += TrialEnded(t.state()) ? 0 : 1;
    trials_running[id] = running;
  }
  if (!recount && trials_running == published_.trials_running) return;
  published_.trials_running = std::move(trials_running);
  on_counts_(published_);
}

}  // namespace trainerd
