// HF's optim_target_modules rule, in one place for the validator and the worker: an
// entry names a weight when it is part of the weight's name, or when it matches the
// whole module path (the name without ".weight") or the whole name as a regular
// expression. Expressions go through RE2 (linear time, no recursion, bounded memory),
// so a hostile pattern cannot hang or crash the daemon or the worker.
#ifndef TRAINERD_SPEC_TARGET_MODULES_H_
#define TRAINERD_SPEC_TARGET_MODULES_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace re2 {
class RE2;
}

namespace trainerd {

// The longest optim_target_modules entry accepted.
inline constexpr size_t kMaxTargetPatternBytes = 1024;

// OK when `pattern` is short enough and compiles as an RE2 expression; otherwise
// INVALID_ARGUMENT saying why (the pattern itself is not repeated).
absl::Status CheckTargetPattern(const std::string& pattern);

// The compiled optim_target_modules of one run.
class TargetModules {
 public:
  explicit TargetModules(const std::vector<std::string>& entries);
  ~TargetModules();
  TargetModules(const TargetModules&) = delete;
  TargetModules& operator=(const TargetModules&) = delete;

  // Whether the weight called `name` is targeted. Entries that do not compile match
  // as substrings only (the validator has already refused them).
  bool Matches(const std::string& name) const;

 private:
  std::vector<std::string> entries_;
  std::vector<std::unique_ptr<re2::RE2>> patterns_;  // null where an entry does not compile
};

}  // namespace trainerd

#endif  // TRAINERD_SPEC_TARGET_MODULES_H_
