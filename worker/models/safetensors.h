// The safetensors format (https://github.com/huggingface/safetensors), written and read
// here from its specification so that Python's `safetensors.torch.load_file` reads our
// weights:
//   8 bytes   N, the header size, unsigned little-endian
//   N bytes   a UTF-8 JSON object: {"<name>": {"dtype": "F32", "shape": [..],
//             "data_offsets": [begin, end]}, ..., "__metadata__": {"k": "v"}}, padded
//             with spaces to a multiple of 8 bytes
//   rest      the tensors' bytes, little-endian, row-major, back to back
#ifndef TRAINERD_WORKER_MODELS_SAFETENSORS_H_
#define TRAINERD_WORKER_MODELS_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/models/model.h"

namespace trainerd {

// The file's first bytes (the size and the JSON header) for tensors of `layout`'s names,
// dtypes and shapes, in that order (the tensors need not hold data). `data_begin`, when
// given, receives where each tensor's bytes start, counted from the header's end.
std::string SafetensorsHeader(const NamedTensors& layout, const std::map<std::string, std::string>& metadata,
                              std::vector<uint64_t>* data_begin = nullptr);

// Encodes `tensors` (names must be unique) with optional string metadata.
std::string EncodeSafetensors(const NamedTensors& tensors,
                              const std::map<std::string, std::string>& metadata = {});

// One tensor of a safetensors file: its bytes are [begin, end) of the file.
struct SafetensorsEntry {
  std::string name;
  torch::ScalarType dtype = torch::kFloat;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

// The tensors of the safetensors file `bytes` (the whole file, which may be mapped:
// nothing is copied), checked against its size. DATA_LOSS for a truncated or
// inconsistent file.
absl::StatusOr<std::vector<SafetensorsEntry>> ParseSafetensors(absl::string_view bytes);

// Decodes a whole safetensors file. Tensors are copied out of `bytes`. Returns
// DATA_LOSS for a truncated or inconsistent file.
absl::StatusOr<NamedTensors> DecodeSafetensors(absl::string_view bytes);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_SAFETENSORS_H_
