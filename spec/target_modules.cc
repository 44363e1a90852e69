#include "spec/target_modules.h"

#include <re2/re2.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace trainerd {
namespace {

// RE2 options for user patterns: errors are returned, not logged, and the compiled
// program's memory is capped (a few MB is plenty for weight names).
RE2::Options PatternOptions() {
  RE2::Options options;
  options.set_log_errors(false);
  options.set_max_mem(8 << 20);
  return options;
}

std::unique_ptr<re2::RE2> Compile(const std::string& pattern) {
  if (pattern.size() > kMaxTargetPatternBytes) return nullptr;
  auto re = std::make_unique<re2::RE2>(pattern, PatternOptions());
  if (!re->ok()) return nullptr;
  return re;
}

}  // namespace

absl::Status CheckTargetPattern(const std::string& pattern) {
  if (pattern.size() > kMaxTargetPatternBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("is ", pattern.size(), " bytes long; at most ", kMaxTargetPatternBytes, " are accepted"));
  }
  re2::RE2 re(pattern, PatternOptions());
  if (re.ok()) return absl::OkStatus();
  // RE2's own message quotes the pattern; say what is wrong without repeating it.
  const char* why = "syntax error";
  switch (re.error_code()) {
    case re2::RE2::ErrorPatternTooLarge: why = "too large (nested repetition?)"; break;
    case re2::RE2::ErrorRepeatSize: why = "a repetition count is too large"; break;
    case re2::RE2::ErrorMissingParen: why = "unbalanced parenthesis"; break;
    case re2::RE2::ErrorMissingBracket: why = "unbalanced bracket"; break;
    case re2::RE2::ErrorBadEscape: why = "bad escape sequence"; break;
    case re2::RE2::ErrorBadCharRange: why = "bad character range"; break;
    case re2::RE2::ErrorRepeatArgument: why = "nothing to repeat"; break;
    default: break;
  }
  return absl::InvalidArgumentError(absl::StrCat("not a regular expression: ", why));
}

TargetModules::TargetModules(const std::vector<std::string>& entries) : entries_(entries) {
  for (const std::string& e : entries_) patterns_.push_back(Compile(e));
}

TargetModules::~TargetModules() = default;

bool TargetModules::Matches(const std::string& name) const {
  std::string module = name;
  for (const char* suffix : {".weight", "_weight"}) {
    if (absl::EndsWith(module, suffix)) module.resize(module.size() - std::string(suffix).size());
  }
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (absl::StrContains(name, entries_[i])) return true;
    const re2::RE2* re = patterns_[i].get();
    if (re != nullptr && (re2::RE2::FullMatch(module, *re) || re2::RE2::FullMatch(name, *re))) return true;
  }
  return false;
}

}  // namespace trainerd
