// Validation of job specs. The same rules run in trainer-worker, in trainerd's SubmitJob
// and in `trainer-cli validate`.
#ifndef TRAINERD_SPEC_SPEC_VALIDATOR_H_
#define TRAINERD_SPEC_SPEC_VALIDATOR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "spec/spec_policy.h"
#include "spec/memory_estimate.h"
#include "trainer/v1/job_spec.pb.h"

namespace trainerd {

struct SpecCheckOptions {
  // Check the data and model files: that they exist, and what their first bytes say
  // (spec/input_checks.h). Off where the spec will run on another machine.
  bool check_files = true;
  // The GPUs each rank of the job gets; -1: not known here (not checked).
  int32_t gpus_per_rank = -1;
  // The job's ranks (resources.ranks): the memory limit holds for each of them, and
  // sharding (fsdp, optimizer_sharding) divides the model among them.
  int32_t ranks = 1;
  // Where the job's files may be and how large it may grow (see spec_policy.h).
  SpecPolicy policy;
};

struct SpecCheckResult {
  std::vector<std::string> problems;  // empty: the spec is valid
  // What each rank would hold while training, where the checks got that far (the model
  // and its files are sound).
  std::optional<RankMemory> memory_per_rank;
};

// Every problem of a spec whose defaults have been applied, and its memory estimate.
SpecCheckResult CheckJobSpec(const trainer::v1::JobSpec& spec, const SpecCheckOptions& options = {});

// Returns every problem with a spec whose defaults have been applied, each as
// "field.path: what is wrong", e.g. "training_args.learning_rate: must be > 0".
// An empty result means the spec is valid.
std::vector<std::string> FindSpecProblems(const trainer::v1::JobSpec& spec,
                                          const SpecCheckOptions& options = {});

// FindSpecProblems as a Status: OK, or INVALID_ARGUMENT with one problem per line.
absl::Status ValidateJobSpec(const trainer::v1::JobSpec& spec,
                             const SpecCheckOptions& options = {});

// The optimizers (optim) and schedules (lr_scheduler_type) a spec may name: what the
// worker's factories build (tests check each one builds).
std::vector<std::string> SupportedOptimizers();
const std::vector<std::string>& SupportedSchedules();

// The keyword arguments each lr_scheduler_type accepts (empty for unknown types).
const std::vector<std::string>& SchedulerKwargNames(const std::string& scheduler_type);

}  // namespace trainerd

#endif  // TRAINERD_SPEC_SPEC_VALIDATOR_H_
