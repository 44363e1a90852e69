#include "spec/shard_size.h"

#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"

namespace trainerd {

absl::StatusOr<int64_t> ParseShardSize(const std::string& text) {
  const std::string upper = absl::AsciiStrToUpper(text);
  static const std::vector<std::pair<std::string, int64_t>> kUnits = {
      {"GIB", int64_t{1} << 30}, {"MIB", int64_t{1} << 20}, {"KIB", int64_t{1} << 10},
      {"GB", 1000000000},       {"MB", 1000000},           {"KB", 1000}};
  int64_t unit = 1;
  std::string digits = text;
  bool bits = false;
  for (const auto& [suffix, size] : kUnits) {
    if (absl::EndsWith(upper, suffix)) {
      unit = size;
      digits = text.substr(0, text.size() - suffix.size());
      bits = text.back() == 'b' && suffix.size() == 2;
      break;
    }
  }
  int64_t n = 0;
  if (!absl::SimpleAtoi(digits, &n) || n <= 0 || n > std::numeric_limits<int64_t>::max() / unit) {
    return absl::InvalidArgumentError("model.max_shard_size: not a size such as 5GB, 500MB or 4GiB");
  }
  const int64_t bytes = bits ? n * unit / 8 : n * unit;
  if (bytes < 1000) return absl::InvalidArgumentError("model.max_shard_size: must be at least 1KB");
  return bytes;
}

}  // namespace trainerd
