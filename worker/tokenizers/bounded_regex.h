// BoundedRegex: the regular expressions of tokenizer.json (Split patterns, the GPT-2
// pre-tokenizer's), which use look-ahead and Unicode classes (\p{L}, \s over Unicode),
// as the library's Oniguruma reads them. RE2 has no look-ahead, so this is PCRE2 in
// UTF and Unicode-property mode, with a limit on the work one match may take: a hostile
// text gets an error, never a match that runs away.
#ifndef TRAINERD_WORKER_TOKENIZERS_BOUNDED_REGEX_H_
#define TRAINERD_WORKER_TOKENIZERS_BOUNDED_REGEX_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace trainerd {

class BoundedRegex {
 public:
  // INVALID_ARGUMENT naming the pattern's error and offset.
  static absl::StatusOr<BoundedRegex> Compile(const std::string& pattern);

  // Every non-overlapping match in `text`, left to right, as byte ranges [begin, end).
  // An empty match advances by one character. RESOURCE_EXHAUSTED when a match needs more
  // than the limit's steps.
  absl::StatusOr<std::vector<std::pair<size_t, size_t>>> FindAll(std::string_view text) const;

 private:
  struct Compiled;
  explicit BoundedRegex(std::shared_ptr<const Compiled> compiled) : compiled_(std::move(compiled)) {}
  std::shared_ptr<const Compiled> compiled_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TOKENIZERS_BOUNDED_REGEX_H_
