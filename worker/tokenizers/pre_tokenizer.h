// Pre-tokenizers of tokenizer.json ("pre_tokenizer"): how a normalized piece of text is
// cut into words before the model tokenizes each one. Each pre-tokenizer cuts every
// piece it is given further, as the library's PreTokenizedString does.
#ifndef TRAINERD_WORKER_TOKENIZERS_PRE_TOKENIZER_H_
#define TRAINERD_WORKER_TOKENIZERS_PRE_TOKENIZER_H_

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace trainerd {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Cuts each of `pieces` further (in place). `first`: pieces[0] starts the text (not
  // after an added token), for Metaspace's prepend_scheme "first".
  virtual absl::Status PreTokenize(std::vector<std::string>* pieces, bool first) const = 0;
};

// The pre-tokenizer `j` describes (null: none, returns null). Types: ByteLevel, Split,
// Whitespace, WhitespaceSplit, Metaspace, Digits, BertPreTokenizer, Punctuation,
// CharDelimiterSplit, Sequence.
absl::StatusOr<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const nlohmann::json& j, const std::string& where);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TOKENIZERS_PRE_TOKENIZER_H_
