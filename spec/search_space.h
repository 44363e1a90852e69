// A sweep's search space (issue 32): dotted job-spec fields to vary, each a
// `{type: uniform | log_uniform | int | categorical, min, max, values, step}` (HF's
// hp_space and Determined's hyperparameters in one form), checked by field, and the
// trials' values drawn from it: at random (deterministically from a seed and the trial's
// number, the same on every machine) or as a grid.
//
// A trial's values are job-spec overrides ("training_args.learning_rate=0.0003"), the
// form spec_loader.h applies, so that a field the job spec does not have is refused by
// the same code that refuses it in a spec.
#ifndef TRAINERD_SPEC_SEARCH_SPACE_H_
#define TRAINERD_SPEC_SEARCH_SPACE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace trainerd {

struct SearchParameter {
  enum class Type { kUniform, kLogUniform, kInt, kCategorical };
  std::string field;  // dotted, e.g. "training_args.learning_rate"
  Type type = Type::kUniform;
  double min = 0, max = 0;
  // The grid's spacing: uniform and int add it (int's is 1 unless given), log_uniform
  // multiplies by it (10: 1e-4, 1e-3, 1e-2). Random draws ignore it.
  double step = 0;
  std::vector<std::string> values;  // categorical: each as YAML ("16", "cosine", "[64, 32]")
};

// Every problem of `space`, each naming "search_space.<field>.<what>" (min > max, a log
// of a non-positive number, no values, a step that is not positive, a field twice);
// OK when there is none.
absl::Status CheckSearchSpace(const std::vector<SearchParameter>& space);

// Trial `trial`'s values drawn at random: the same for the same seed and trial number.
std::vector<std::string> SampleTrial(const std::vector<SearchParameter>& space, uint64_t seed, int64_t trial);

// Every combination of the space's values, the first parameter varying slowest.
// INVALID_ARGUMENT naming a parameter with no finite grid (uniform or log_uniform
// without a step) or a grid of more than `max_points` points.
absl::StatusOr<std::vector<std::vector<std::string>>> GridTrials(const std::vector<SearchParameter>& space,
                                                                 int64_t max_points = 10000);

}  // namespace trainerd

#endif  // TRAINERD_SPEC_SEARCH_SPACE_H_
