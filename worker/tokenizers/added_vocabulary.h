// AddedVocabulary: tokenizer.json's "added_tokens" (special tokens such as <|im_start|>
// and [CLS], and tokens added after training). They are cut out of the text before
// anything else sees it: those with normalized false from the raw text, the others from
// the normalized text, leftmost and longest first, as the library's Aho-Corasick matcher
// finds them; lstrip/rstrip take the whitespace beside a match with it, and single_word
// ignores a match inside a word.
#ifndef TRAINERD_WORKER_TOKENIZERS_ADDED_VOCABULARY_H_
#define TRAINERD_WORKER_TOKENIZERS_ADDED_VOCABULARY_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "worker/tokenizers/normalizer.h"

namespace trainerd {

struct AddedToken {
  int64_t id = 0;
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
};

// A piece of the text: an added token (`id` set) or text for the pipeline.
struct TextPiece {
  std::string text;
  std::optional<int64_t> id;
};

class AddedVocabulary {
 public:
  // From the "added_tokens" list; `normalizer` (may be null) normalizes the contents of
  // tokens with normalized true, as they are matched in normalized text.
  static absl::StatusOr<AddedVocabulary> FromJson(const nlohmann::json& list, const Normalizer* normalizer,
                                                  const std::string& where);

  // `raw` cut at the added tokens; the other pieces come out normalized.
  absl::StatusOr<std::vector<TextPiece>> Split(const std::string& raw, const Normalizer* normalizer) const;

  const AddedToken* FindById(int64_t id) const;
  const AddedToken* FindByContent(const std::string& content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  // Cuts `text` at the tokens of `patterns` (content as matched -> index in tokens_).
  std::vector<TextPiece> CutAt(const std::string& text, const std::map<std::string, size_t>& patterns) const;

  std::vector<AddedToken> tokens_;
  std::map<std::string, size_t> raw_patterns_, normalized_patterns_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TOKENIZERS_ADDED_VOCABULARY_H_
