// AshaSearcher: asynchronous successive halving as Determined's adaptive ASHA runs it,
// stopping-based, as a pure decision procedure (issue 32's sweeps build on it; a sweep
// records each decision, so that replaying the same reports gives the same ones).
//
// Rung i (0 .. max_rungs-1) is at max_length / divisor^(max_rungs-1-i) steps. When a
// trial reports the objective at a rung, it goes on only while it ranks in the top
// max(floor(n / divisor), 1) of the n trials that have reached that rung so far, the
// report included; else it stops there. Decisions are made as reports arrive, never
// waiting for a whole rung. A trial that reaches the last rung has finished.
//
// Threads: none of its own; not thread-safe (its owner serialises reports).
#ifndef TRAINERD_SERVER_SWEEPS_ASHA_SEARCHER_H_
#define TRAINERD_SERVER_SWEEPS_ASHA_SEARCHER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace trainerd {

struct AshaConfig {
  int64_t max_length = 0;  // steps of a trial that is never stopped
  int divisor = 4;
  int max_rungs = 5;
  bool maximize = false;  // HF's direction: "maximize", else "minimize"
};

struct AshaDecision {
  enum class Outcome { kContinue, kStop, kFinished };
  Outcome outcome = Outcome::kContinue;
  int rung = 0;     // where the report was made
  int rank = 0;     // the trial's rank at that rung (1 = best; ties share a rank)
  int reached = 0;  // trials that have reached the rung, this one included
  int cut = 0;      // the ranks that go on: max(floor(reached / divisor), 1)
  // "stopped at rung 2: rank 7 of 12, cut at 3", "goes on from rung 0: rank 1 of 3, cut
  // at 1", "finished at rung 4 (1024 steps): rank 2 of 2".
  std::string reason;

  // "continue", "stop" or "finished": the outcome as a sweep records it.
  const char* outcome_name() const {
    return outcome == Outcome::kContinue ? "continue" : outcome == Outcome::kStop ? "stop" : "finished";
  }
};

class AshaSearcher {
 public:
  // INVALID_ARGUMENT, naming the field, for a config that has no rungs.
  static absl::StatusOr<AshaSearcher> Create(const AshaConfig& config);

  // Each rung's length in steps, from the first; the last is max_length. Rungs shorter
  // than one step are dropped from the front (a small max_length has fewer rungs).
  const std::vector<int64_t>& rung_lengths() const { return rung_lengths_; }
  // The rung a trial that has trained `steps` steps reports at (-1: none yet).
  int RungAt(int64_t steps) const;
  // Records `trial`'s objective at `rung` and decides. A trial reports each rung once:
  // a second report at the same rung is decided again from the first one's value (so a
  // replay after a restart never changes a decision). A NaN objective ranks last.
  AshaDecision Report(const std::string& trial, int rung, double objective);

 private:
  explicit AshaSearcher(AshaConfig config, std::vector<int64_t> rung_lengths)
      : config_(config), rung_lengths_(std::move(rung_lengths)), results_(rung_lengths_.size()) {}

  AshaConfig config_;
  std::vector<int64_t> rung_lengths_;
  std::vector<std::map<std::string, double>> results_;  // per rung: trial -> objective
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_SWEEPS_ASHA_SEARCHER_H_
