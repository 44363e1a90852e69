#include "worker/tokenizers/bounded_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/strings/str_cat.h"
#include "worker/tokenizers/unicode_text.h"

namespace trainerd {
namespace {

// Steps (backtracking calls) and nesting one match may take: far above what the
// tokenizers' patterns need on any text (they are linear), far below a runaway.
constexpr uint32_t kMatchLimit = 1'000'000;
constexpr uint32_t kDepthLimit = 10'000;

}  // namespace

struct BoundedRegex::Compiled {
  pcre2_code* code = nullptr;
  pcre2_match_context* context = nullptr;
  ~Compiled() {
    pcre2_match_context_free(context);
    pcre2_code_free(code);
  }
};

absl::StatusOr<BoundedRegex> BoundedRegex::Compile(const std::string& pattern) {
  auto compiled = std::make_shared<Compiled>();
  int error = 0;
  PCRE2_SIZE offset = 0;
  compiled->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset, nullptr);
  if (compiled->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    return absl::InvalidArgumentError(
        absl::StrCat("regex: ", reinterpret_cast<const char*>(message), " at offset ", offset));
  }
  compiled->context = pcre2_match_context_create(nullptr);
  if (compiled->context == nullptr) return absl::ResourceExhaustedError("regex: out of memory");
  pcre2_set_match_limit(compiled->context, kMatchLimit);
  pcre2_set_depth_limit(compiled->context, kDepthLimit);
  return BoundedRegex(std::move(compiled));
}

absl::StatusOr<std::vector<std::pair<size_t, size_t>>> BoundedRegex::FindAll(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> data(
      pcre2_match_data_create_from_pattern(compiled_->code, nullptr), &pcre2_match_data_free);
  if (data == nullptr) return absl::ResourceExhaustedError("regex: out of memory");
  size_t start = 0;
  while (start <= text.size()) {
    const int rc = pcre2_match(compiled_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), start, 0,
                               data.get(), compiled_->context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT) {
      return absl::ResourceExhaustedError("regex: a match took more than its limit of steps on this text");
    }
    if (rc < 0) return absl::InternalError(absl::StrCat("regex: match failed (PCRE2 error ", rc, ")"));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
    const size_t begin = ovector[0], end = ovector[1];
    if (end > begin) {
      matches.emplace_back(begin, end);
      start = end;
    } else {
      // An empty match: step over one character.
      start = begin + (begin < text.size() ? Utf8Length(static_cast<unsigned char>(text[begin])) : 1);
    }
  }
  return matches;
}

}  // namespace trainerd
