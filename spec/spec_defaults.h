// Hugging Face's TrainingArguments defaults, applied to a parsed spec.
#ifndef TRAINERD_SPEC_SPEC_DEFAULTS_H_
#define TRAINERD_SPEC_SPEC_DEFAULTS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/v1/job_spec.pb.h"

namespace trainerd {

// Defaults of the built-in text models and their data, read by the worker that builds
// them and by the validator that estimates their size.
inline constexpr int64_t kDefaultTextHiddenSize = 256;
inline constexpr int64_t kDefaultTextLayers = 4;
inline constexpr int64_t kDefaultTextHeads = 4;
inline constexpr int64_t kDefaultVocabSize = 8000;
inline constexpr int64_t kDefaultMaxSeqLength = 128;
// SwiGLU's inner width when the spec gives none: 8/3 of the hidden size, rounded up to 64.
inline constexpr int64_t DefaultIntermediateSize(int64_t hidden) { return (8 * hidden / 3 + 63) / 64 * 64; }

// One constant default of a TrainingArguments field, as the README's table writes it.
struct ArgumentDefault {
  const char* field;
  const char* value;
};
// The table ApplyDefaults applies, the README shows and spec_test checks against both.
const std::vector<ArgumentDefault>& TrainingArgumentDefaults();

// Fills every field the user left unset with HF's default (learning_rate 5e-5,
// num_train_epochs 3, max_grad_norm 1.0, ...), so that the stored spec says exactly what
// ran. Fields the user set are never changed. Idempotent.
void ApplyDefaults(trainer::v1::JobSpec* spec);

// Parses HF's `optim_args` string, "key=value, key=value", into numbers; true/false are
// read as 1/0. Returns INVALID_ARGUMENT naming the bad entry.
absl::StatusOr<std::map<std::string, double>> ParseOptimArgs(const std::string& text);

}  // namespace trainerd

#endif  // TRAINERD_SPEC_SPEC_DEFAULTS_H_
