// Bounds on a job spec: what makes a spec too large or too strange to run, checked before
// anything is allocated. The same checks run in trainerd's SubmitJob and in the worker,
// so both accept exactly the same specs.
//
// Structural bounds hold for every field (found by walking the message): numbers are
// finite and of normal magnitude (no inf, NaN or subnormals), strings and lists are
// short, the encoded spec is at most kMaxSpecBytes, sizes are under fixed ceilings. The
// memory a job needs is estimated in memory_estimate.h.
#ifndef TRAINERD_SPEC_SPEC_BOUNDS_H_
#define TRAINERD_SPEC_SPEC_BOUNDS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "trainer/v1/job_spec.pb.h"

namespace trainerd {

inline constexpr size_t kMaxSpecBytes = 1 << 20;       // the whole spec, encoded
inline constexpr size_t kMaxSpecStringBytes = 4096;    // any one string (paths, names, ...)
inline constexpr int kMaxSpecListItems = 4096;         // any one repeated field
inline constexpr int kMaxSpecNesting = 16;             // messages and Struct values inside each other

struct SpecLimits {
  int64_t max_job_memory_bytes = 0;  // 0: no limit
  int32_t max_threads = 0;           // torch_num_threads cap; 0: no limit
};

// Appends "field: what is wrong" for every bound `spec` (defaults applied) breaks.
void FindBoundsProblems(const trainer::v1::JobSpec& spec, const SpecLimits& limits,
                        std::vector<std::string>* problems);

}  // namespace trainerd

#endif  // TRAINERD_SPEC_SPEC_BOUNDS_H_
