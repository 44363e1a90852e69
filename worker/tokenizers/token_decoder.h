// Decoders of tokenizer.json ("decoder"): tokens back to text. Each decoder maps the
// list of tokens to another (the library's decode_chain); the text is their
// concatenation.
#ifndef TRAINERD_WORKER_TOKENIZERS_TOKEN_DECODER_H_
#define TRAINERD_WORKER_TOKENIZERS_TOKEN_DECODER_H_

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace trainerd {

class TokenDecoder {
 public:
  virtual ~TokenDecoder() = default;
  virtual std::vector<std::string> DecodeChain(std::vector<std::string> tokens) const = 0;
};

// The decoder `j` describes (null: none, returns null: tokens are then joined with
// spaces). Types: ByteLevel, WordPiece, Metaspace, ByteFallback, Fuse, Strip, Replace,
// BPEDecoder, Sequence.
absl::StatusOr<std::unique_ptr<TokenDecoder>> MakeTokenDecoder(const nlohmann::json& j, const std::string& where);

// transformers' clean_up_tokenization: the spaces a word-level decoder leaves before
// punctuation and English contractions go (" ." -> ".", " n't" -> "n't").
std::string CleanUpTokenization(const std::string& text);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TOKENIZERS_TOKEN_DECODER_H_
