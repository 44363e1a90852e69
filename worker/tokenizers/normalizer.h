// Normalizers of tokenizer.json ("normalizer"): what the text becomes before it is split
// into words. Offsets are not tracked (trainerd needs ids, not alignments), so a
// normalizer maps a string to a string.
#ifndef TRAINERD_WORKER_TOKENIZERS_NORMALIZER_H_
#define TRAINERD_WORKER_TOKENIZERS_NORMALIZER_H_

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace trainerd {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual absl::StatusOr<std::string> Normalize(const std::string& text) const = 0;
};

// The normalizer `j` describes (null: none, returns null). Types: NFC, NFD, NFKC, NFKD,
// Lowercase, Strip, StripAccents, Replace, Prepend, BertNormalizer, Sequence. Errors
// name `where` and the field.
absl::StatusOr<std::unique_ptr<Normalizer>> MakeNormalizer(const nlohmann::json& j, const std::string& where);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TOKENIZERS_NORMALIZER_H_
