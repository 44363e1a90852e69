// SweepView: sweeps as the API shows them, read from the store without the coordinator's
// lock: each with its trials (their decisions, their jobs' live steps and newest
// checkpoints) and the summary (sweep_summary.h).
//
// Threads: any; it keeps no state of its own.
#ifndef TRAINERD_SERVER_SWEEPS_SWEEP_VIEW_H_
#define TRAINERD_SERVER_SWEEPS_SWEEP_VIEW_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/jobs/job_registry.h"
#include "storage/sweep_store.h"
#include "trainer/v1/sweep_service.pb.h"

namespace trainerd {

class SweepView {
 public:
  // Both pointers outlive the view.
  SweepView(SweepStore* sweeps, JobRegistry* registry) : sweeps_(sweeps), registry_(registry) {}

  // The sweep with every trial, its decisions and checkpoint, and the summary; NOT_FOUND
  // when there is no such sweep.
  absl::StatusOr<trainer::v1::Sweep> Get(const std::string& id) const;
  // Newest first, at most `limit`, each with its summary and without trials; `owner_id`
  // 0: anybody's.
  absl::StatusOr<std::vector<trainer::v1::Sweep>> List(int64_t owner_id, int limit) const;

 private:
  // Adds the stored trials (with live steps) and the summary; `detail`: also each
  // trial's decisions and checkpoint, and the trials stay in the answer.
  void Fill(trainer::v1::Sweep* sweep, bool detail) const;

  SweepStore* const sweeps_;
  JobRegistry* const registry_;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_SWEEPS_SWEEP_VIEW_H_
