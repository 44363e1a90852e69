// The pad id of a sentencepiece tokenizer.model, read without sentencepiece (which only
// the worker loads): ModelProto.trainer_spec (field 2) . pad_id (field 43, -1 when not
// set, as sentencepiece's default). Checked against sentencepiece's own answer in tests.
#ifndef TRAINERD_SPEC_SENTENCEPIECE_PAD_H_
#define TRAINERD_SPEC_SENTENCEPIECE_PAD_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "spec/spec_policy.h"

namespace trainerd {

// The pad id of the model in `bytes` (a serialized ModelProto). INVALID_ARGUMENT when
// the bytes are not one.
absl::StatusOr<int64_t> SentencePiecePadIdOf(const std::string& bytes);

// The same for the file at `path`, opened confined to `roots` (at most 64 MiB).
absl::StatusOr<int64_t> SentencePiecePadId(const std::string& path, const ReadRoots& roots);

}  // namespace trainerd

#endif  // TRAINERD_SPEC_SENTENCEPIECE_PAD_H_
