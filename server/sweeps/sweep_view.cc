#include "server/sweeps/sweep_view.h"

#include "server/sweeps/sweep_summary.h"

namespace trainerd {
namespace {

using trainer::v1::Job;
using trainer::v1::Sweep;
using trainer::v1::Trial;
using trainer::v1::TrialDecision;

// The newest checkpoint folder of a job; a job that saved none has its final model in
// its output_dir.
std::string NewestCheckpoint(JobRegistry* registry, const Job& job) {
  if (!job.best_checkpoint().empty()) return job.best_checkpoint();
  absl::StatusOr<std::vector<trainer::v1::Checkpoint>> list = registry->Checkpoints(job.id());
  if (!list.ok() || list->empty()) return job.output_dir();
  const trainer::v1::Checkpoint* newest = &list->front();
  for (const auto& c : *list) {
    if (c.step() > newest->step()) newest = &c;
  }
  return newest->path();
}

}  // namespace

void SweepView::Fill(Sweep* sweep, bool detail) const {
  absl::StatusOr<std::vector<Trial>> trials = sweeps_->Trials(sweep->id());
  std::vector<TrialDecision> decisions;
  if (detail) {
    absl::StatusOr<std::vector<TrialDecision>> stored = sweeps_->Decisions(sweep->id());
    if (stored.ok()) decisions = std::move(*stored);
  }
  if (!trials.ok()) return;  // the summary stays empty
  for (TrialDecision& d : decisions) {  // in order: trial n is at n - 1
    const int32_t at = d.trial() - 1;
    if (at >= 0 && at < static_cast<int32_t>(trials->size()) && (*trials)[at].number() == d.trial()) {
      *(*trials)[at].add_decisions() = std::move(d);
    }
  }
  for (Trial& trial : *trials) {
    // An ended trial's steps were stored with its end; only running ones are read live.
    if (trial.job_id().empty() || (!detail && TrialEnded(trial.state()))) continue;
    absl::StatusOr<Job> job = registry_->Get(trial.job_id());
    if (!job.ok()) continue;
    trial.set_steps(job->progress().step());  // live, between the stored changes
    if (detail) trial.set_checkpoint(NewestCheckpoint(registry_, *job));
  }
  sweep->clear_trials();
  for (Trial& trial : *trials) *sweep->add_trials() = std::move(trial);
  SummarizeSweep(sweep);
  if (!detail) sweep->clear_trials();
}

absl::StatusOr<Sweep> SweepView::Get(const std::string& id) const {
  absl::StatusOr<Sweep> sweep = sweeps_->GetSweep(id);
  if (!sweep.ok()) return sweep.status();
  Fill(&*sweep, /*detail=*/true);
  return sweep;
}

absl::StatusOr<std::vector<Sweep>> SweepView::List(int64_t owner_id, int limit) const {
  absl::StatusOr<std::vector<Sweep>> sweeps = sweeps_->ListSweeps(owner_id, limit);
  if (!sweeps.ok()) return sweeps.status();
  for (Sweep& sweep : *sweeps) Fill(&sweep, /*detail=*/false);
  return sweeps;
}

}  // namespace trainerd
