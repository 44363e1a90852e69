#include "server/daemon_metrics.h"

#include "server/jobs/job_state.h"

namespace trainerd {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using trainer::v1::JobState;

namespace {

// The states trainerd_sweeps has a series for (each from 0).
constexpr const char* kSweepStates[] = {"running", "completed", "failed", "cancelling", "cancelled"};

// trainerd_jobs_finished_total's outcome label: the final state in lower case.
std::string Outcome(JobState state) {
  std::string outcome = StateName(state);
  for (auto& c : outcome) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return outcome;
}

const char* CodeName(grpc::StatusCode code) {
  static const char* kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                                 "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
                                 "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i < 17 ? kNames[i] : "UNKNOWN";
}

// The labels of a job's own series. Not `job`: Prometheus keeps that name for the
// scrape target and would rename ours to exported_job.
std::map<std::string, std::string> JobLabels(const std::string& id, const std::string& name) {
  return {{"job_id", id}, {"job_name", name}};
}

}  // namespace

DaemonMetrics::DaemonMetrics(int32_t cpu_slots, int32_t gpus, const std::string& version)
    : registry_(std::make_shared<prometheus::Registry>()),
      jobs_(BuildGauge().Name("trainerd_jobs").Help("Jobs by state").Register(*registry_)),
      queue_length_(BuildGauge().Name("trainerd_queue_length").Help("Jobs waiting for slots (queued or restarting)")
                        .Register(*registry_).Add({})),
      submitted_(BuildCounter().Name("trainerd_jobs_submitted_total").Help("Jobs submitted")
                     .Register(*registry_).Add({})),
      finished_(BuildCounter().Name("trainerd_jobs_finished_total").Help("Jobs finished, by outcome")
                    .Register(*registry_)),
      restarts_(BuildCounter().Name("trainerd_attempt_restarts_total")
                    .Help("Failed attempts restarted from a checkpoint").Register(*registry_).Add({})),
      slots_(BuildGauge().Name("trainerd_slots").Help("Slots this trainerd schedules, by kind").Register(*registry_)),
      slots_in_use_(BuildGauge().Name("trainerd_slots_in_use").Help("Slots in use, by kind").Register(*registry_)),
      requests_(BuildCounter().Name("trainerd_grpc_requests_total").Help("gRPC requests by method and status code")
                    .Register(*registry_)),
      latency_(BuildHistogram().Name("trainerd_grpc_request_duration_seconds")
                   .Help("gRPC request latency by method (streaming calls are not in it)").Register(*registry_)),
      stream_duration_(BuildHistogram().Name("trainerd_grpc_stream_duration_seconds")
                           .Help("How long followers (StreamLogs, WatchJob) stayed, by method")
                           .Register(*registry_)),
      job_loss_(BuildGauge().Name("trainerd_job_training_loss").Help("Latest training loss of a running job")
                    .Register(*registry_)),
      job_lr_(BuildGauge().Name("trainerd_job_learning_rate").Help("Latest learning rate of a running job")
                  .Register(*registry_)),
      job_samples_(BuildGauge().Name("trainerd_job_samples_per_second")
                       .Help("Latest training throughput of a running job").Register(*registry_)),
      job_step_(BuildGauge().Name("trainerd_job_step").Help("Latest optimizer step of a running job")
                    .Register(*registry_)),
      sweeps_(BuildGauge().Name("trainerd_sweeps").Help("Sweeps by state").Register(*registry_)),
      sweep_trials_running_(BuildGauge()
                                .Name("trainerd_sweep_trials_running")
                                .Help("Trials of a running sweep that are queued, running or waiting at a rung")
                                .Register(*registry_)) {
  for (const char* state : kSweepStates) sweeps_.Add({{"state", state}}).Set(0);
  slots_.Add({{"kind", "cpu"}}).Set(cpu_slots);
  slots_.Add({{"kind", "gpu"}}).Set(gpus);
  slots_in_use_.Add({{"kind", "cpu"}}).Set(0);
  slots_in_use_.Add({{"kind", "gpu"}}).Set(0);
  for (int s = trainer::v1::QUEUED; s <= trainer::v1::CANCELLED; ++s) {
    jobs_.Add({{"state", StateName(static_cast<JobState>(s))}}).Set(0);
  }
  // Every outcome from 0, so that increase() sees the first one.
  for (JobState s : {trainer::v1::SUCCEEDED, trainer::v1::FAILED, trainer::v1::CANCELLED}) {
    finished_.Add({{"outcome", Outcome(s)}});
  }
  BuildGauge().Name("trainerd_build_info").Help("trainerd's version (the value is always 1)")
      .Register(*registry_).Add({{"version", version}}).Set(1);
}

void DaemonMetrics::OnRpc(const std::string& method, grpc::StatusCode code, double seconds, bool streamed) {
  requests_.Add({{"method", method}, {"code", CodeName(code)}}).Increment();
  if (streamed) {
    stream_duration_
        .Add({{"method", method}}, prometheus::Histogram::BucketBoundaries{1, 10, 60, 300, 1800, 3600, 14400, 86400})
        .Observe(seconds);
    return;
  }
  latency_.Add({{"method", method}},
               prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                       0.25, 0.5, 1, 5})
      .Observe(seconds);
}

void DaemonMetrics::OnJobChanged(const trainer::v1::Job& job) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_seen_.find(job.id());
  if (it == jobs_seen_.end()) {
    if (job.state() == trainer::v1::QUEUED && job.attempts_size() == 0) submitted_.Increment();
  } else {
    jobs_.Add({{"state", StateName(it->second.state)}}).Decrement();
  }
  const int32_t ranks = std::max(1, job.resources().ranks());
  jobs_seen_[job.id()] = {job.state(), ranks, ranks * job.resources().gpus_per_rank()};
  jobs_.Add({{"state", StateName(job.state())}}).Increment();
  int waiting = 0, cpu = 0, gpus = 0;
  for (const auto& [id, t] : jobs_seen_) {
    waiting += t.state == trainer::v1::QUEUED || t.state == trainer::v1::RESTARTING;
    if (HasWorkers(t.state)) {
      cpu += t.cpu_slots;
      gpus += t.gpus;
    }
  }
  queue_length_.Set(waiting);
  slots_in_use_.Add({{"kind", "cpu"}}).Set(cpu);
  slots_in_use_.Add({{"kind", "gpu"}}).Set(gpus);
  if (job.state() == trainer::v1::RUNNING && job.progress().step() > 0) {
    const std::map<std::string, std::string> labels = JobLabels(job.id(), job.name());
    // A value the job has not logged yet gets no series (rather than a false 0).
    const trainer::v1::Progress& p = job.progress();
    if (p.has_loss()) job_loss_.Add(labels).Set(p.loss());
    if (p.has_learning_rate()) job_lr_.Add(labels).Set(p.learning_rate());
    if (p.has_samples_per_second()) job_samples_.Add(labels).Set(p.samples_per_second());
    job_step_.Add(labels).Set(static_cast<double>(p.step()));
  }
}

void DaemonMetrics::OnJobFinished(const trainer::v1::Job& job) {
  finished_.Add({{"outcome", Outcome(job.state())}}).Increment();
  // Per-job series end with the job, so their number stays bounded.
  const std::map<std::string, std::string> labels = JobLabels(job.id(), job.name());
  for (auto* family : {&job_loss_, &job_lr_, &job_samples_, &job_step_}) {
    if (family->Has(labels)) family->Remove(&family->Add(labels));
  }
}

void DaemonMetrics::OnRestart() { restarts_.Increment(); }

void DaemonMetrics::OnSweeps(const std::map<std::string, int>& by_state,
                             const std::map<std::string, int>& trials_running) {
  absl::MutexLock lock(&mu_);
  for (const char* state : kSweepStates) {
    auto it = by_state.find(state);
    sweeps_.Add({{"state", state}}).Set(it == by_state.end() ? 0 : it->second);
  }
  // A sweep's series ends with the sweep.
  for (const auto& [id, running] : sweep_trials_seen_) {
    if (trials_running.count(id) == 0) sweep_trials_running_.Remove(&sweep_trials_running_.Add({{"sweep", id}}));
  }
  for (const auto& [id, running] : trials_running) sweep_trials_running_.Add({{"sweep", id}}).Set(running);
  sweep_trials_seen_ = trials_running;
}

}  // namespace trainerd
