// Checker: collects a spec's problems, each as "field.path: what is wrong", for the
// validator's parts (spec_validator.cc, training_args_checks.cc). Internal to spec/.
#ifndef TRAINERD_SPEC_SPEC_CHECKER_H_
#define TRAINERD_SPEC_SPEC_CHECKER_H_

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spec/spec_validator.h"

namespace trainerd {

inline bool OneOf(const std::string& value, const std::vector<std::string>& allowed) {
  return std::find(allowed.begin(), allowed.end(), value) != allowed.end();
}

inline std::string Choices(const std::vector<std::string>& allowed) {
  return absl::StrCat("must be one of ", absl::StrJoin(allowed, ", "));
}

class Checker {
 public:
  explicit Checker(const SpecCheckOptions& options) : options_(options) {}
  std::vector<std::string> problems;
  // Set by the check that sizes the model (CheckJobSpec returns it).
  std::optional<RankMemory> memory;

  const SpecCheckOptions& options() const { return options_; }
  // Records what each rank of the job would hold, and the problem when it is more than
  // the limit.
  void Memory(const ModelFootprint& model, const trainer::v1::JobSpec& spec) {
    memory = EstimateRankMemory(model, spec.training_args(), options_.ranks);
    const std::string problem =
        MemoryLimitProblem(model, spec.training_args(), *memory, options_.policy.limits.max_job_memory_bytes);
    if (!problem.empty()) problems.push_back(problem);
  }

  void Add(const std::string& field, const std::string& what) {
    problems.push_back(absl::StrCat(field, ": ", what));
  }
  void Positive(const std::string& field, double v) {
    if (!(v > 0)) Add(field, "must be > 0");
  }
  void NonNegative(const std::string& field, double v) {
    if (!(v >= 0)) Add(field, "must be >= 0");
  }
  void Choice(const std::string& field, const std::string& v,
              const std::vector<std::string>& allowed) {
    if (OneOf(v, allowed)) return;
    const std::string shown = v.size() <= 64 ? v : v.substr(0, 64) + "...";
    Add(field, absl::StrCat("\"", shown, "\" is not supported; ", Choices(allowed)));
  }
  void SkipFile(const std::string& field) { skip_files_.insert(field); }
  // Whether `field` was refused by the path policy: such a file is never opened.
  bool Skipped(const std::string& field) const { return skip_files_.count(field) > 0; }
  void File(const std::string& field, const std::string& path) {
    if (skip_files_.count(field)) return;
    if (options_.check_files && !path.empty() && !std::filesystem::exists(path)) {
      Add(field, absl::StrCat("no such file: ", path));
    }
  }
  // "steps" values that may be an integer count or a ratio in (0, 1) of total steps.
  void StepsOrRatio(const std::string& field, double v) {
    if (!(v > 0)) {
      Add(field, "must be > 0");
    } else if (v > 1 && v != static_cast<double>(static_cast<int64_t>(v))) {
      Add(field, "must be an integer, or a ratio < 1 of the total steps");
    }
  }

 private:
  SpecCheckOptions options_;
  std::set<std::string> skip_files_;
};

}  // namespace trainerd

#endif  // TRAINERD_SPEC_SPEC_CHECKER_H_
