// SweepStore: sweeps, their trials and the searcher's decisions, in trainerd's SQLite
// file (tables sweeps, trials and sweep_decisions: storage/schema.cc). A decision is
// written in one transaction with the trial it changes, so that after a crash a sweep
// finds every decision it made, in the order the results arrived, and replays them
// instead of deciding again.
//
// Thread-safe: one connection guarded by a mutex.
#ifndef TRAINERD_STORAGE_SWEEP_STORE_H_
#define TRAINERD_STORAGE_SWEEP_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "trainer/v1/sweep_service.pb.h"

struct sqlite3;

namespace trainerd {

class SweepStore {
 public:
  // Opens (creating if needed) the database at `path`, migrated to the current schema.
  static absl::StatusOr<std::unique_ptr<SweepStore>> Open(const std::string& path);
  ~SweepStore();

  // Inserts or replaces a sweep; its trials are stored apart (Sweep.trials is dropped).
  absl::Status PutSweep(const trainer::v1::Sweep& sweep);
  // NOT_FOUND when there is no such sweep. Without trials.
  absl::StatusOr<trainer::v1::Sweep> GetSweep(const std::string& id);
  // Newest first, at most `limit`; `owner_id` 0 = anybody's. Without trials.
  absl::StatusOr<std::vector<trainer::v1::Sweep>> ListSweeps(int64_t owner_id, int limit);
  // Sweeps in `state`, oldest first.
  absl::StatusOr<std::vector<trainer::v1::Sweep>> SweepsInState(trainer::v1::SweepState state);

  // How many sweeps are in each state.
  absl::StatusOr<std::map<trainer::v1::SweepState, int>> CountByState();

  // Inserts or replaces a trial of `sweep_id` (its decisions are stored apart).
  absl::Status PutTrial(const std::string& sweep_id, const trainer::v1::Trial& trial);
  // The sweep's trials by number, without decisions.
  absl::StatusOr<std::vector<trainer::v1::Trial>> Trials(const std::string& sweep_id);

  // Appends `decision` as the sweep's next (its seq is set: the last one's + 1) and
  // replaces `trial`, in one transaction. Returns the decision as stored.
  absl::StatusOr<trainer::v1::TrialDecision> AppendDecision(const std::string& sweep_id,
                                                            trainer::v1::TrialDecision decision,
                                                            const trainer::v1::Trial& trial);
  // The sweep's decisions in the order they were made.
  absl::StatusOr<std::vector<trainer::v1::TrialDecision>> Decisions(const std::string& sweep_id);

 private:
  explicit SweepStore(sqlite3* db) : db_(db) {}

  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
};

}  // namespace trainerd

#endif  // TRAINERD_STORAGE_SWEEP_STORE_H_
