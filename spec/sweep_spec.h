// A sweep's spec (issue 32; proto/trainer/v1/sweep_service.proto's SweepSpec): read from
// YAML or JSON, given its defaults, checked field by field, and turned into each
// trial's values and job spec. The CLI reads the file; trainerd checks what arrives and
// builds the trials, with the same functions.
//
// The file:
//   job: job.yaml                  # or the job spec itself, inline
//   search_space:
//     training_args.learning_rate: {type: log_uniform, min: 1e-5, max: 1e-2}
//     peft.r: {type: categorical, values: [8, 16, 64]}
//   objective: {metric: eval_loss, direction: minimize}
//   searcher: {name: asha, max_length: 1024, divisor: 4, max_rungs: 5}
//   n_trials: 16
//   max_concurrent_trials: 4
//   seed: 1
#ifndef TRAINERD_SPEC_SWEEP_SPEC_H_
#define TRAINERD_SPEC_SWEEP_SPEC_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "spec/search_space.h"
#include "trainer/v1/sweep_service.pb.h"

namespace trainerd {

inline constexpr int kMaxSweepTrials = 1000;
inline constexpr int kMaxConcurrentTrials = 100;

// Reads the sweep file at `path`: INVALID_ARGUMENT naming every problem by field (an
// unknown field, a value of the wrong type, a job file that does not load); relative
// paths (the job file, the job's data and model) are read from the sweep file's folder.
absl::StatusOr<trainer::v1::SweepSpec> LoadSweepSpecFile(const std::string& path,
                                                         std::vector<std::string>* warnings = nullptr);

// Fills what the user left out: searcher random, divisor 4, max_rungs 5, asha's
// max_length from the job's max_steps, direction minimize, max_concurrent_trials 2,
// and a grid's n_trials (every point).
void ApplySweepDefaults(trainer::v1::SweepSpec* spec);

// Every problem of a (defaulted) spec, each naming its field, in one INVALID_ARGUMENT:
// the search space (spec/search_space.h's checks, and each field tried on the job spec:
// "search_space.training_args.learning_rat: unknown field"), the objective (an
// evaluation metric of a job that evaluates), the searcher and the counts.
absl::Status CheckSweepSpec(const trainer::v1::SweepSpec& spec);

// The search space as spec/search_space.h's parameters (the types are checked by
// CheckSweepSpec; an unknown one reads as categorical here).
std::vector<SearchParameter> SearchSpaceOf(const trainer::v1::SweepSpec& spec);

// Trial `number`'s (1, 2, ...) values as job-spec overrides: drawn from `seed` (random,
// asha) or the grid's point (grid).
absl::StatusOr<std::vector<std::string>> TrialValues(const trainer::v1::SweepSpec& spec, int number);

// The job spec trial `values` run: the sweep's job with the values applied (asha: with
// max_steps = max_length, so that a trial's learning-rate schedule is the same whether
// or not it is stopped early).
absl::StatusOr<trainer::v1::JobSpec> TrialJobSpec(const trainer::v1::SweepSpec& spec,
                                                  const std::vector<std::string>& values);

}  // namespace trainerd

#endif  // TRAINERD_SPEC_SWEEP_SPEC_H_
