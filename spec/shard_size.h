// HF's max_shard_size, in one place for the validator and the worker: "5GB", "500MB"
// (powers of 10), "4GiB", "512MiB" (powers of 2), or a number of bytes; a lower-case
// "b" counts bits, as transformers' convert_file_size_to_int does.
#ifndef TRAINERD_SPEC_SHARD_SIZE_H_
#define TRAINERD_SPEC_SHARD_SIZE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace trainerd {

// save_pretrained's default.
inline constexpr char kDefaultMaxShardSize[] = "5GB";

// The size in bytes; INVALID_ARGUMENT for anything else (or a size under 1 KB).
absl::StatusOr<int64_t> ParseShardSize(const std::string& text);

}  // namespace trainerd

#endif  // TRAINERD_SPEC_SHARD_SIZE_H_
