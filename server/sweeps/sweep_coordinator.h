// SweepCoordinator: runs the sweeps (issue 32). It is the one manager of sweeps: it
// checks and records a new sweep, submits its trials as ordinary jobs of the sweep's
// owner (through the supervisor, so they queue and are placed like anyone's), follows
// them, asks the searcher what each rung result means, and acts on it.
//
// How a trial moves (asha): its job is submitted with stop_at_step at the first rung;
// the worker stops there with a checkpoint and the job ends SUCCEEDED. The coordinator
// reads the objective at that step, reports it to the AshaSearcher, records the
// decision (storage/sweep_store.h: with the trial, in one transaction), and then either
// resumes the job to the next rung or leaves it stopped. Random and grid trials run to
// their end. Everything it acts on is in SQLite, and each pass looks at what is (a
// job's state, the decisions recorded) rather than at what happened, so that after a
// crash the next pass finishes whatever the last one began: a trial recorded but not
// yet submitted finds its job by (sweep, trial number) before submitting; a decision
// recorded but not acted on is acted on; decisions are replayed, never made again.
//
// Threads: one coordinator thread passes over the running sweeps whenever a job
// changes (and at least every half second); the API calls Submit and Cancel (and reads
// through view(), which takes none of its locks).
// The sweeps it runs are guarded by one mutex, held while the supervisor and the stores
// are called (they never call back).
#ifndef TRAINERD_SERVER_SWEEPS_SWEEP_COORDINATOR_H_
#define TRAINERD_SERVER_SWEEPS_SWEEP_COORDINATOR_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/jobs/attempt_supervisor.h"
#include "server/jobs/job_admission.h"
#include "server/jobs/job_registry.h"
#include "server/sweeps/asha_searcher.h"
#include "server/sweeps/sweep_view.h"
#include "storage/job_store.h"
#include "storage/sweep_store.h"
#include "trainer/v1/sweep_service.pb.h"

namespace trainerd {

// What the sweeps stand at, for Prometheus.
struct SweepCounts {
  std::map<std::string, int> by_state;  // "running", "completed", "failed", "cancelling", "cancelled"
  std::map<std::string, int> trials_running;  // by running sweep id
};

class SweepCoordinator {
 public:
  // Every pointer outlives the coordinator. Trial jobs are read from `registry`, their
  // metrics from `output`, and submitted, resumed and cancelled through `supervisor`.
  // `on_counts` (optional) is told what the sweeps stand at after each change.
  SweepCoordinator(SweepStore* sweeps, JobRegistry* registry, JobStore* output, AttemptSupervisor* supervisor,
                   std::function<void(const SweepCounts&)> on_counts);
  // Stops the thread.
  ~SweepCoordinator();

  // Loads the running sweeps and replays their decisions; finishes the cancels a crash
  // cut short (CANCELLING sweeps). Call once, after the supervisor's Recover, before Start.
  absl::Status Recover() ABSL_LOCKS_EXCLUDED(mu_);
  void Start() ABSL_LOCKS_EXCLUDED(mu_);
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // Checks the request (every problem by field, the first trial's job as SubmitJob
  // would), records the sweep and submits its first trials. validate_only: checks only.
  absl::StatusOr<trainer::v1::SubmitSweepResponse> Submit(const trainer::v1::SubmitSweepRequest& request,
                                                          const Submitter& submitter) ABSL_LOCKS_EXCLUDED(mu_);
  // The sweeps as the API shows them (sweep_view.h): reads take no lock of this class.
  const SweepView& view() const { return view_; }
  // Cancels a running sweep: no more trials start, and the running ones are cancelled
  // (each saves a checkpoint). An ended sweep is answered as it is.
  absl::StatusOr<trainer::v1::Sweep> Cancel(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct ActiveSweep {
    trainer::v1::Sweep sweep;  // as stored, without trials
    std::vector<trainer::v1::Trial> trials;  // trial n at index n - 1
    std::optional<AshaSearcher> asha;
    std::map<std::pair<int32_t, int32_t>, trainer::v1::TrialDecision> decided;  // by (trial, rung)
  };

  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  // One pass over every running sweep; ends the ones whose trials have all ended.
  void ReconcileAll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Reconcile(ActiveSweep& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records the end of a sweep whose every trial has ended: FAILED when all failed.
  void EndSweep(ActiveSweep& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Follows one started trial's job; may record a decision. Returns whether the trial
  // still runs.
  bool FollowTrial(ActiveSweep& a, trainer::v1::Trial& trial) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A SUCCEEDED asha trial stopped at a rung: decides (or replays) and acts.
  void OnRungReached(ActiveSweep& a, trainer::v1::Trial& trial, const trainer::v1::Job& job)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Submits trial `number` (or adopts the job an earlier pass submitted for it).
  // `adopt`: look for that job first (a trial found SUBMITTING by a later pass).
  void StartTrial(ActiveSweep& a, trainer::v1::Trial& trial, bool adopt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends `trial` in `state` (with `error`), stored.
  void EndTrial(const ActiveSweep& a, trainer::v1::Trial& trial, trainer::v1::TrialState state,
                const std::string& error) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PutTrial(const ActiveSweep& a, const trainer::v1::Trial& trial) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Loads a stored sweep to run: its trials, its searcher and decisions replayed.
  absl::StatusOr<ActiveSweep> Load(const trainer::v1::Sweep& sweep);
  // The job request of trial `values` (validate_only as asked).
  absl::StatusOr<trainer::v1::SubmitJobRequest> TrialRequest(const trainer::v1::Sweep& sweep, int32_t number,
                                                            const std::vector<std::string>& values) const;
  // Tells on_counts_ what the sweeps stand at, when that changed since it was last told.
  void PublishCounts() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Cancels the trials of a CANCELLING sweep, then records it CANCELLED.
  void FinishCancel(ActiveSweep& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  SweepStore* const sweeps_;
  JobRegistry* const registry_;
  JobStore* const output_;
  AttemptSupervisor* const supervisor_;
  const std::function<void(const SweepCounts&)> on_counts_;
  const SweepView view_;

  absl::Mutex mu_;
  std::map<std::string, ActiveSweep> active_ ABSL_GUARDED_BY(mu_);  // the running sweeps, by id
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // What on_counts_ was last told, and whether a sweep started or ended since (then the
  // sweeps by state are counted again in the store).
  SweepCounts published_ ABSL_GUARDED_BY(mu_);
  bool sweeps_changed_ ABSL_GUARDED_BY(mu_) = true;
  std::thread thread_;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_SWEEPS_SWEEP_COORDINATOR_H_
