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

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/models/model.h"

namespace trainerd {

// Encodes `tensors` (names must be unique) with optional string metadata.
std::string EncodeSafetensors(const NamedTensors& tensors,
                              const std::map<std::string, std::string>& metadata = {});

// Decodes a whole safetensors file. Tensors are copied out of `bytes`. Returns
// DATA_LOSS for a truncated or inconsistent file.
absl::StatusOr<NamedTensors> DecodeSafetensors(absl::string_view bytes);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_SAFETENSORS_H_
