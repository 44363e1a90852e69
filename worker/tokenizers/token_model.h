// The model of tokenizer.json ("model"): how one pre-tokenized word becomes vocabulary
// tokens. BPE (GPT-2, Llama-3, Qwen2, Mistral: byte-level or with byte fallback),
// WordPiece (BERT) and Unigram (T5, XLNet, ALBERT).
#ifndef TRAINERD_WORKER_TOKENIZERS_TOKEN_MODEL_H_
#define TRAINERD_WORKER_TOKENIZERS_TOKEN_MODEL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace trainerd {

struct Token {
  int64_t id;
  std::string text;
};

class TokenModel {
 public:
  virtual ~TokenModel() = default;
  // Appends the tokens of `word` to `out`.
  virtual absl::Status Tokenize(const std::string& word, std::vector<Token>* out) const = 0;
  // The vocabulary, both ways.
  std::optional<int64_t> TokenToId(const std::string& token) const;
  std::optional<std::string> IdToToken(int64_t id) const;
  // The largest id plus one.
  int64_t vocab_size() const { return by_id_.empty() ? 0 : by_id_.rbegin()->first + 1; }

 protected:
  // Adds a vocabulary entry (ids need not be dense).
  void AddToVocabulary(const std::string& token, int64_t id);
  // Adds `vocab`, an object of token: id (BPE's and WordPiece's "vocab"); `where` names it.
  absl::Status AddVocabularyObject(const nlohmann::json& vocab, const std::string& where);
  // The token's entry, or null.
  const int64_t* Find(const std::string& token) const;

 private:
  std::map<std::string, int64_t> by_token_;
  std::map<int64_t, std::string> by_id_;
};

// The model `j` describes ("type" BPE, WordPiece or Unigram; "type" may be absent from
// files that predate it, and is then guessed from the fields as the library does).
absl::StatusOr<std::unique_ptr<TokenModel>> MakeTokenModel(const nlohmann::json& j, const std::string& where);

// Each model's reader (bpe_model.cc, wordpiece_model.cc, unigram_model.cc).
absl::StatusOr<std::unique_ptr<TokenModel>> MakeBpeModel(const nlohmann::json& j, const std::string& where);
absl::StatusOr<std::unique_ptr<TokenModel>> MakeWordPieceModel(const nlohmann::json& j, const std::string& where);
absl::StatusOr<std::unique_ptr<TokenModel>> MakeUnigramModel(const nlohmann::json& j, const std::string& where);

// "<0x0A>": how byte-fallback vocabularies name a byte.
std::string ByteFallbackToken(unsigned char byte);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TOKENIZERS_TOKEN_MODEL_H_
